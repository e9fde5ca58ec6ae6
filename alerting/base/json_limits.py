"""JSON from outside, read within bounds: a size and a nesting depth, refused by name, never a 500.

Python's json parser recurses once per level: 100,000 `[` in a request body raised RecursionError
(a 500). `parse_json` measures the nesting first, over the bytes (strings skipped, brackets
counted, all in C: about 0.1 s for 10 MB), and refuses what is deeper than `max_depth` or larger
than `max_bytes` with InvalidInput naming the field: the REST API's body, the console's JSON
fields (a criterion, a drawn zone), its JSON calls, and GeoJSON files.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from alerting.base.errors import InvalidInput

MAX_DEPTH = 32  # GeoJSON needs 7 (a MultiPolygon in a FeatureCollection); a criterion at most 12
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\x02\x02")
_STEP = [0, 1, -1] + [0] * 253


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets inside strings ignored)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS).translate(_STEPS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def parse_json(raw: str | bytes, *, field: str = "body", max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """`raw` parsed, or InvalidInput naming `field`: larger than `max_bytes`, nested deeper than
    `max_depth`, or not JSON (with the parser's reason)."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > max_bytes:
        raise InvalidInput(f"{field}: larger than {max_bytes:,} bytes",
                           fields={field: f"larger than {max_bytes:,} bytes"})
    depth = nesting_depth(data)
    if depth > max_depth:
        raise InvalidInput(f"{field}: nested {depth:,} levels deep; at most {max_depth}",
                           fields={field: f"nested deeper than {max_depth} levels"})
    try:
        return json.loads(data)
    except RecursionError:  # unreachable after the depth check; kept so a parser change cannot 500
        raise InvalidInput(f"{field}: nested too deep", fields={field: "nested too deep"}) from None
    except ValueError as exc:
        raise InvalidInput(f"{field}: not valid JSON ({exc})", fields={field: f"not valid JSON: {exc}"}) from None
