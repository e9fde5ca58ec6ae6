"""CSV files a spreadsheet opens without running anything in them (OWASP "CSV injection").

Every CSV Sirena writes for people goes through `writer()`: the audit exports (console download
and `sirena audit export`) and the contact import's rejects report. A text cell that starts with
`=`, `+`, `-`, `@`, a tab or a carriage return is written with a single quote in front, so
Excel, LibreOffice and Sheets show it as text instead of evaluating it (`=HYPERLINK(...)` typed as
a user name at sign-in stays a user name). There is no exception for phone numbers: `+56912345678`
is written `'+56912345678`, which a spreadsheet shows as `+56912345678`, as text (it would
otherwise turn it into the number 56912345678, dropping the plus). Numbers written as numbers
(ints, not text) are left alone: `-3` is not a formula.

The quote is reversible: a text cell that starts with a quote followed by one of those
characters or by another quote gets one more quote, and `read_cell` takes exactly one off such a
cell. Sirena's own readers (`audit verify` of a CSV export, the import report shown by the API)
get back exactly what was written, so an export's hashes still check.

Not for the COPY buffers of the contact import (alerting/directory/contact_rows.py): those feed PostgreSQL,
never a person, and must carry the values unchanged.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def safe_cell(value: Any) -> Any:
    """The cell as written: a quote in front of text that a spreadsheet would evaluate (or that
    already starts with a quote followed by such a character, so `read_cell` undoes it exactly)."""
    if isinstance(value, str) and value and (
            value.startswith(FORMULA_STARTS) or (value[0] == QUOTE and value[1:2] in (*FORMULA_STARTS, QUOTE))):
        return QUOTE + value
    return value


def read_cell(cell: str) -> str:
    """A cell as `safe_cell` was given it: one leading quote taken off where `safe_cell` added one."""
    if cell[:1] == QUOTE and cell[1:2] in (*FORMULA_STARTS, QUOTE):
        return cell[1:]
    return cell


class SafeWriter:
    """csv.writer whose rows pass through `safe_cell`. Rows end in CRLF (RFC 4180), and that is not
    a choice: Python's csv quotes a cell holding a line break only if the break is part of the line
    terminator, so with "\n" alone a bare "\r" in a user agent split the row in two."""

    def __init__(self, out: TextIO, **options: Any) -> None:
        if options.setdefault("lineterminator", "\r\n") != "\r\n":
            raise ValueError("Sirena's CSV rows end in CRLF, so that every line break inside a cell is quoted")
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: TextIO, **options: Any) -> SafeWriter:
    """A CSV writer (csv.writer's options) that neutralises formula cells. Use it for every CSV people open."""
    return SafeWriter(out, **options)


def reader(source: Iterable[str], **options: Any) -> Iterator[list[str]]:
    """csv.reader over a file `writer` wrote, each cell as it was before `safe_cell`."""
    for row in csv.reader(source, **options):
        yield [read_cell(cell) for cell in row]


def dict_reader(source: Iterable[str]) -> Iterator[dict[str, str]]:
    """csv.DictReader over a file `writer` wrote (a header row first), cells as before `safe_cell`."""
    rows = reader(source)
    header = next(rows, None)
    if header is None:
        return
    for row in rows:
        yield dict(zip(header, row, strict=False))
