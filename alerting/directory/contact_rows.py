"""Rows of a contacts CSV: each checked in Python into a row to stage or issues to report.

Only an unusable phone number rejects a row; any other bad value is dropped from that row with a
warning, so a contact is never lost over, say, a malformed latitude. Parsing and checking cost
~15 µs a row (the phone number's part is small thanks to `MsisdnParser`'s quick path), so a big
file is parsed and checked in blocks by worker processes, one per core, while this process cuts
the file into blocks of lines and COPYs the results: `checked_chunks` hides which.
"""

from __future__ import annotations

import collections
import csv
import io
import math
import multiprocessing
import os
import re
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from json.encoder import encode_basestring
from typing import NamedTuple

from alerting.base.errors import InvalidInput
from alerting.base.phones import MsisdnParser, sms_doubts
from alerting.directory.contact_csv import LABELS, Block, CsvFile, Layout, block_records, header_key

MAX_NAME_CHARS = 200
MAX_GROUP_CHARS = 100
MAX_VALUE_CHARS = 1000
GROUP_SEPARATOR = "|"
CHUNK_ROWS = 5_000
PARALLEL_MIN_BYTES = 4 * 1024 * 1024  # below this, starting worker processes costs more than it saves
LANGUAGES = {"es": "es", "espanol": "es", "castellano": "es", "spanish": "es",
             "en": "en", "ingles": "en", "english": "en"}
_LANGUAGE_CODE = re.compile(r"^([a-z]{2})(?:[-_][a-z]{2})?$")
_LABEL_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_json_string = encode_basestring  # a str as a JSON string literal (C), as json.dumps writes it


class Issue(NamedTuple):
    """One line of the rejects report."""

    row: int  # as a spreadsheet numbers it: the header is row 1
    column: str  # the file's own header
    value: str
    reason: str
    outcome: str  # "rejected" | "warning" | "duplicate"


class GoodRow(NamedTuple):
    row: int
    msisdn: str
    name: str | None  # None: not given, keep what the directory has
    language: str | None
    attributes: str | None  # a JSON object, or None when the row has none
    locations: list[tuple[str, float, float]]  # (label, lon, lat)
    groups: list[str]
    more_numbers: list[tuple[int, str]]  # (position 2 or 3, E.164) of the row's further numbers


class RowChecker:
    """Checks records against a Layout; `check` returns the row to stage (or None) and its issues."""

    def __init__(self, layout: Layout, region: str, dynamic_groups: frozenset[str]) -> None:
        self.layout, self.region, self.dynamic_groups = layout, region, dynamic_groups
        self.width = len(layout.headers)
        self._numbers = MsisdnParser(region)
        self._attribute_keys = [(_json_string(key) + ": ", i) for key, i in layout.attributes]

    def check(self, row: int, cells: list[str]) -> tuple[GoodRow | None, list[Issue]]:
        lay, issues = self.layout, []
        headers = lay.headers
        if len(cells) > self.width and any(c.strip() for c in cells[self.width:]):
            return None, [Issue(row, "", ", ".join(cells[self.width:])[:200],
                                f"{len(cells)} values but {self.width} columns "
                                "(an unquoted comma or semicolon inside a value?)", "rejected")]
        if len(cells) < self.width:
            cells = cells + [""] * (self.width - len(cells))
        joined = "".join(cells)
        if "\ufffd" in joined or "\x00" in joined:  # PostgreSQL text cannot hold NUL
            for i, cell in enumerate(cells[: self.width]):
                if "\ufffd" in cell or "\x00" in cell:
                    return None, [Issue(row, headers[i], cell[:200].replace("\x00", "\\0"),
                                        "not valid UTF-8 text; save the file as CSV UTF-8", "rejected")]
        raw_phone = cells[lay.phone]
        try:
            number = self._numbers.parse(raw_phone)
        except InvalidInput as exc:
            reason = exc.field_errors.get("phone", exc.message)
            return None, [Issue(row, headers[lay.phone], raw_phone, reason, "rejected")]
        for doubt in sms_doubts(number, self.region):  # imported all the same: the operator decides
            issues.append(Issue(row, headers[lay.phone], raw_phone, doubt, "warning"))
        more = self._more_numbers(row, cells, number.e164, issues) if lay.more_phones else []
        name = self._name(row, cells, issues)
        language = self._language(row, cells, issues)
        attributes = []  # JSON members, "key": "value", in column order; blank cells are not stored
        for key, i in self._attribute_keys:
            if value := cells[i].strip():
                if len(value) > MAX_VALUE_CHARS:
                    issues.append(Issue(row, headers[i], cells[i][:200], f"longer than {MAX_VALUE_CHARS} characters; "
                                        "not imported", "warning"))
                else:
                    attributes.append(key + _json_string(value))
        locations = self._locations(row, cells, issues)
        groups = self._groups(row, cells, issues)
        attrs = "{" + ", ".join(attributes) + "}" if attributes else None
        return GoodRow(row, number.e164, name, language, attrs, locations, groups, more), issues

    def _more_numbers(self, row: int, cells: list[str], first: str, issues: list[Issue]) -> list[tuple[int, str]]:
        """The row's second and third numbers, each checked like the first; a bad one is dropped
        with a warning naming its column (the contact is imported with the others). Blank: the
        directory keeps what it has at that position."""
        headers, found = self.layout.headers, []
        seen = {first: headers[self.layout.phone]}
        for position, i in self.layout.more_phones:
            raw = cells[i]
            if not raw.strip():
                continue
            try:
                number = self._numbers.parse(raw)
            except InvalidInput as exc:
                reason = dict(exc.details.get("fields", {})).get("phone", exc.message)  # type: ignore[call-overload]
                issues.append(Issue(row, headers[i], raw, f"{reason}; this number not imported", "warning"))
                continue
            if number.e164 in seen:
                issues.append(Issue(row, headers[i], raw, f'the same number as column "{seen[number.e164]}"; '
                                    "not imported twice", "warning"))
                continue
            for doubt in sms_doubts(number, self.region):
                issues.append(Issue(row, headers[i], raw, doubt, "warning"))
            seen[number.e164] = headers[i]
            found.append((position, number.e164))
        return found

    def _name(self, row: int, cells: list[str], issues: list[Issue]) -> str | None:
        if self.layout.name is None:
            return None
        name = " ".join(cells[self.layout.name].split())
        if len(name) > MAX_NAME_CHARS:
            issues.append(Issue(row, self.layout.headers[self.layout.name], name[:200],
                                f"longer than {MAX_NAME_CHARS} characters; cut", "warning"))
            name = name[:MAX_NAME_CHARS]
        return name or None

    def _language(self, row: int, cells: list[str], issues: list[Issue]) -> str | None:
        if self.layout.language is None:
            return None
        raw = cells[self.layout.language]
        if (quick := raw.strip().lower()) in LANGUAGES:
            return LANGUAGES[quick]
        key = header_key(raw)
        if not key:
            return None
        if key in LANGUAGES:
            return LANGUAGES[key]
        if m := _LANGUAGE_CODE.match(raw.strip().lower()):
            return m.group(1)
        issues.append(Issue(row, self.layout.headers[self.layout.language], raw,
                            "unknown language (use es, en or another two-letter code); not imported", "warning"))
        return None

    def _locations(self, row: int, cells: list[str], issues: list[Issue]) -> list[tuple[str, float, float]]:
        lay, found = self.layout, {}
        for fixed_label, lat_i, lon_i in lay.locations:
            raw_lat, raw_lon = cells[lat_i].strip(), cells[lon_i].strip()
            if not raw_lat and not raw_lon:
                continue
            label = fixed_label or self._label(row, cells, issues)
            if label is None:
                continue
            lat, lon = _coordinate(raw_lat, 90.0), _coordinate(raw_lon, 180.0)
            if lat is None or lon is None:
                bad = lat_i if lat is None else lon_i
                limit = 90 if lat is None else 180
                issues.append(Issue(row, lay.headers[bad], cells[bad],
                                    f"not a coordinate in degrees between -{limit} and {limit}; location not imported",
                                    "warning"))
            elif lat == 0.0 and lon == 0.0:
                issues.append(Issue(row, lay.headers[lat_i], f"{raw_lat} {raw_lon}",
                                    "0,0 is not a real address (an empty cell exported as 0?); location not imported",
                                    "warning"))
            else:
                found[label] = (label, lon, lat)
        return list(found.values())

    def _label(self, row: int, cells: list[str], issues: list[Issue]) -> str | None:
        if self.layout.label is None:
            return "home"
        raw = cells[self.layout.label]
        key = header_key(raw)
        if not key:
            return "home"
        label = LABELS.get(key, key)
        if _LABEL_RE.match(label):
            return label
        issues.append(Issue(row, self.layout.headers[self.layout.label], raw,
                            "a location label is up to 32 letters, digits or _; location not imported", "warning"))
        return None

    def _groups(self, row: int, cells: list[str], issues: list[Issue]) -> list[str]:
        if self.layout.group is None:
            return []
        names: list[str] = []
        header = self.layout.headers[self.layout.group]
        for part in cells[self.layout.group].split(GROUP_SEPARATOR):
            name = " ".join(part.split())
            if not name or name in names:
                continue
            if len(name) > MAX_GROUP_CHARS:
                issues.append(Issue(row, header, name[:200],
                                    f"a group name is at most {MAX_GROUP_CHARS} characters; not added", "warning"))
            elif name in self.dynamic_groups:
                issues.append(Issue(row, header, name, "is a dynamic group (members come from its criterion); "
                                    "not added", "warning"))
            else:
                names.append(name)
        return names


def _coordinate(raw: str, limit: float) -> float | None:
    text = raw.replace(",", ".") if "," in raw and "." not in raw else raw  # "-33,45" from a Spanish locale
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and -limit <= value <= limit else None


class CheckedChunk(NamedTuple):
    """A chunk of checked rows, encoded for COPY … (FORMAT csv) into the staging tables."""

    contacts: str  # row_no, msisdn, name, language, attributes
    locations: str  # row_no, msisdn, label, lon, lat
    groups: str  # msisdn, name
    rows: int  # records read (blank ones are not records)
    good: int
    issues: list[Issue]
    refusal: str | None = None  # the block is not valid CSV: the whole file is refused, saying why
    numbers: str = ""  # row_no, msisdn, position, number: the rows' second and third numbers


def check_chunk(checker: RowChecker, rows: list[tuple[int, list[str]]]) -> CheckedChunk:
    """Check `rows` and encode the good ones for staging."""
    buffers = io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()
    contacts, locations, groups, numbers = (csv.writer(b, lineterminator="\n") for b in buffers)
    issues: list[Issue] = []
    good = 0
    for row, cells in rows:
        checked, found = checker.check(row, cells)
        issues.extend(found)
        if checked is None:
            continue
        good += 1
        contacts.writerow(checked[:5])
        for label, lon, lat in checked.locations:
            locations.writerow((row, checked.msisdn, label, repr(lon), repr(lat)))
        for name in checked.groups:
            groups.writerow((checked.msisdn, name))
        for position, number in checked.more_numbers:
            numbers.writerow((row, checked.msisdn, position, number))
    return CheckedChunk(buffers[0].getvalue(), buffers[1].getvalue(), buffers[2].getvalue(), len(rows), good, issues,
                        numbers=buffers[3].getvalue())


def check_block(checker: RowChecker, block: Block) -> CheckedChunk:
    """Parse `block` (unless the reader did) and check its rows; a CSV error comes back as `refusal`."""
    try:
        records = block_records(block)
    except InvalidInput as exc:
        return CheckedChunk("", "", "", 0, 0, [], refusal=exc.field_errors["file"])
    return check_chunk(checker, records)


def checked_chunks(csv_file: CsvFile, checker: RowChecker, *, max_rows: int,
                   workers: int | None = None) -> Iterator[CheckedChunk]:
    """The file's rows, checked, in file order, a chunk at a time.

    The reading process only cuts the file into blocks of lines (`CsvFile.blocks`); parsing and
    checking them happens in worker processes when the file is big enough and there is more than
    one core, so this process is free to COPY. Workers are spawned, not forked (a forked child
    would share the database connection), so the program's main module must guard its entry
    point with `if __name__ == "__main__":` (console scripts, pytest, gunicorn and RQ do).
    Raises InvalidInput past `max_rows` or for a file that turns out not to be valid CSV.
    """
    rows = 0
    for chunk in _checked(csv_file, checker, workers):
        if chunk.refusal is not None:
            raise InvalidInput(f"file: {chunk.refusal}", fields={"file": chunk.refusal})
        rows += chunk.rows
        if rows > max_rows:
            raise InvalidInput(f"file: more than the {max_rows:,} rows an import accepts; split the file",
                               fields={"file": f"more than {max_rows:,} rows"})
        yield chunk


def _checked(csv_file: CsvFile, checker: RowChecker, workers: int | None) -> Iterator[CheckedChunk]:
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    blocks = csv_file.blocks(CHUNK_ROWS)
    # A daemonic process (a multiprocessing worker itself) may not start children.
    if workers < 2 or (csv_file.size or 0) < PARALLEL_MIN_BYTES or multiprocessing.current_process().daemon:
        for block in blocks:
            yield check_block(checker, block)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(checker.layout, checker.region, checker.dynamic_groups)) as pool:
        pending: collections.deque[Future[CheckedChunk]] = collections.deque()
        try:
            for block in blocks:
                pending.append(pool.submit(_check_in_worker, block))
                if len(pending) >= 2 * workers:  # bounded: memory stays flat whatever the file size
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


_worker_checker: RowChecker | None = None


def _start_worker(layout: Layout, region: str, dynamic_groups: frozenset[str]) -> None:
    global _worker_checker
    _worker_checker = RowChecker(layout, region, dynamic_groups)


def _check_in_worker(block: Block) -> CheckedChunk:
    assert _worker_checker is not None
    return check_block(_worker_checker, block)
