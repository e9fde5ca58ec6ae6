"""JSON from outside is read within a size and a nesting depth, refused by name (never a RecursionError)."""

from __future__ import annotations

import json

import pytest

from alerting.base.errors import InvalidInput
from alerting.base.json_limits import MAX_DEPTH, nesting_depth, parse_json


def test_depth_counts_arrays_and_objects_but_not_brackets_inside_strings():
    assert nesting_depth(b"1") == 0
    assert nesting_depth(b'{"a": [1, {"b": [[2]]}]}') == 5
    assert nesting_depth(json.dumps({"a": "[[[[{{{{", "b": "\\\"[[[", "c": [["]]]]"]]}).encode()) == 3


def test_a_hundred_thousand_brackets_are_refused_naming_the_field():
    with pytest.raises(InvalidInput) as refused:
        parse_json("[" * 100_000 + "]" * 100_000, field="geojson", max_bytes=10**6)
    assert refused.value.details["fields"] == {"geojson": f"nested deeper than {MAX_DEPTH} levels"}
    with pytest.raises(InvalidInput) as unclosed:  # not even valid JSON: still refused, not recursed into
        parse_json("[" * 100_000, max_bytes=10**6)
    assert "body" in unclosed.value.details["fields"]


def test_size_and_syntax_are_named_and_the_limit_itself_is_accepted():
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(deep, max_bytes=1000) is not None
    with pytest.raises(InvalidInput, match="criterion: larger than 10 bytes"):
        parse_json('{"attr": "x"}', field="criterion", max_bytes=10)
    with pytest.raises(InvalidInput, match="criterion: not valid JSON"):
        parse_json("{nope", field="criterion", max_bytes=100)
