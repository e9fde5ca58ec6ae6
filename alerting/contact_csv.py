"""Reading a contacts CSV: refusing what is not one, mapping its columns, checking each row.

Pure Python, no database: `open_contacts_csv` streams the file (never reads it whole), and
`RowChecker.check` turns one record into a `GoodRow` for staging plus any `Issue`s to report.
Only an unusable phone number rejects a row; any other bad value is dropped from that row with a
warning, so a contact is never lost over, say, a malformed latitude.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from alerting.errors import InvalidInput
from alerting.phones import parse_msisdn

HEAD_BYTES = 64 * 1024
MAX_NAME_CHARS = 200
MAX_GROUP_CHARS = 100
MAX_ATTRIBUTE_NAME = 64  # as the criterion language accepts
MAX_VALUE_CHARS = 1000
GROUP_SEPARATOR = "|"

_PHONE = {"telefono", "phone", "celular", "movil", "mobile", "msisdn", "fono", "tel", "cel", "numero",
          "telefono_movil", "telefono_celular", "numero_celular", "phone_number", "mobile_number"}
_NAME = {"nombre", "name", "nombre_completo", "full_name"}
_LANGUAGE = {"idioma", "language", "lang", "lengua"}
_GROUP = {"grupo", "group", "grupos", "groups"}
_LABEL = {"label", "etiqueta", "lugar", "ubicacion", "tipo_ubicacion"}
_LAT = ("latitude", "latitud", "lat")
_LON = ("longitude", "longitud", "long", "lng", "lon")
_LAT_OR_LON = re.compile(r"^(latitude|latitud|lat|longitude|longitud|long|lng|lon)_([a-z0-9_]{1,32})$")
LABELS = {"casa": "home", "hogar": "home", "domicilio": "home", "particular": "home", "trabajo": "work",
          "oficina": "work", "laboral": "work", "cuartel": "station", "estacion": "station",
          "base": "station", "home": "home", "work": "work", "station": "station"}
_LABEL_RE = re.compile(r"^[a-z0-9_]{1,32}$")
LANGUAGES = {"es": "es", "espanol": "es", "castellano": "es", "spanish": "es",
             "en": "en", "ingles": "en", "english": "en"}
_LANGUAGE_CODE = re.compile(r"^([a-z]{2})(?:[-_][a-z]{2})?$")
_SIGNATURES = ((b"PK\x03\x04", "a ZIP archive or Excel workbook (.xlsx); save it as CSV UTF-8"),
               (b"\xd0\xcf\x11\xe0", "an old Excel/Office file (.xls); save it as CSV UTF-8"),
               (b"%PDF", "a PDF document"),
               (b"\xff\xfe", "UTF-16 text; save it as CSV UTF-8"),
               (b"\xfe\xff", "UTF-16 text; save it as CSV UTF-8"))


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


@dataclass
class Layout:
    """Which column means what, by index into each record."""

    headers: list[str]
    phone: int
    name: int | None = None
    language: int | None = None
    group: int | None = None
    label: int | None = None
    # (label or None for "the label column, else home", lat index, lon index)
    locations: list[tuple[str | None, int, int]] = field(default_factory=list)
    attributes: list[tuple[str, int]] = field(default_factory=list)


def header_key(header: str) -> str:
    """`Teléfono Móvil ` → `telefono_movil`: lower case, no accents, words joined by `_`."""
    text = unicodedata.normalize("NFKD", header.strip().lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def map_columns(headers: list[str]) -> Layout:
    """Map a header row to a Layout. Raises InvalidInput(fields={"file": reason}) if unusable."""
    keys = [header_key(h) for h in headers]
    roles: dict[str, list[int]] = {}
    pairs: dict[str, dict[str, int]] = {}
    attributes: list[tuple[str, int]] = []
    for i, key in enumerate(keys):
        if not key:
            continue  # a blank header: a spreadsheet's stray column
        for role, names in (("phone", _PHONE), ("name", _NAME), ("language", _LANGUAGE),
                            ("group", _GROUP), ("label", _LABEL)):
            if key in names:
                roles.setdefault(role, []).append(i)
                break
        else:
            if key in _LAT or key in _LON:
                pairs.setdefault("", {})["lat" if key in _LAT else "lon"] = i
            elif m := _LAT_OR_LON.match(key):
                pairs.setdefault(m.group(2), {})["lat" if m.group(1) in _LAT else "lon"] = i
            elif len(key) > MAX_ATTRIBUTE_NAME:
                raise _refuse(f'column "{headers[i]}" has a name longer than {MAX_ATTRIBUTE_NAME} characters')
            else:
                attributes.append((key, i))
    found = ", ".join(f'"{h}"' for h in headers if h.strip()) or "none"
    if "phone" not in roles:
        raise _refuse(f"no phone column (expected telefono, teléfono, celular, movil or phone); columns: {found}")
    for role, idx in roles.items():
        if len(idx) > 1:
            raise _refuse(f"more than one {role} column: " + ", ".join(f'"{headers[i]}"' for i in idx))
    seen: set[str] = set()
    for key, _i in attributes:
        if key in seen:
            raise _refuse(f'two columns are both named "{key}" once accents and spaces are ignored')
        seen.add(key)
    layout = Layout(headers, roles["phone"][0], attributes=attributes,
                    **{r: idx[0] for r, idx in roles.items() if r != "phone"})
    for suffix, pair in pairs.items():
        if len(pair) != 2:
            have = headers[next(iter(pair.values()))]
            raise _refuse(f'column "{have}" has no matching {"longitude" if "lat" in pair else "latitude"} column')
        label = None if suffix == "" else LABELS.get(suffix, suffix)
        layout.locations.append((label, pair["lat"], pair["lon"]))
    return layout


class CsvFile:
    """An open contacts CSV: its layout, its records (row number, cells) and how far it has been read."""

    def __init__(self, binary: IO[bytes], name: str, size: int | None, max_bytes: int) -> None:
        self.name, self.size = name, size
        source = _Source(binary, max_bytes)
        head = source.head()
        _refuse_non_text(head)
        self._source = source
        text = io.TextIOWrapper(io.BufferedReader(source), encoding="utf-8-sig", errors="replace", newline="")
        first_line = head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()[0] if head.strip() else ""
        self.delimiter = sniff_delimiter(first_line)
        self._reader = csv.reader(text, delimiter=self.delimiter)
        try:
            headers = next(self._reader)
        except csv.Error as exc:
            raise _refuse(f"the header row is not valid CSV ({exc})") from None
        self.layout = map_columns(headers)

    @property
    def bytes_read(self) -> int:
        return self._source.count

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """(row number, cells) for each non-blank record; a broken quote refuses the file.

        Rows are numbered as a spreadsheet shows them: the header is row 1, blank rows count.
        """
        reader, row = self._reader, 1
        try:
            for cells in reader:
                row += 1
                if cells and any(cells):
                    yield row, cells
        except csv.Error as exc:
            raise _refuse(f"not valid CSV at row {row + 1} (line {reader.line_num}): {exc}") from None


def open_contacts_csv(source: str | Path | IO[bytes], max_bytes: int) -> tuple[CsvFile, IO[bytes] | None]:
    """Open a path or a binary stream as a contacts CSV. Returns the file and what to close.

    Raises InvalidInput(fields={"file": reason}) for an empty, binary, non-UTF-8 or oversized file,
    or one with no phone column.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise _refuse(f"{size:,} bytes is more than the {max_bytes:,} an import accepts; split the file")
            handle = path.open("rb")
        except OSError as exc:
            raise _refuse(f"cannot read {path}: {exc.strerror}") from None
        try:
            return CsvFile(handle, path.name, size, max_bytes), handle
        except BaseException:
            handle.close()
            raise
    return CsvFile(source, getattr(source, "name", None) or "upload.csv", None, max_bytes), None


def sniff_delimiter(first_line: str) -> str:
    """Comma, semicolon or tab: whichever splits the header into the most columns (comma on a tie)."""
    best, best_count = ",", 0
    for delimiter in (",", ";", "\t"):
        count = len(next(csv.reader([first_line], delimiter=delimiter), []))
        if count > best_count:
            best, best_count = delimiter, count
    return best


class RowChecker:
    """Checks records against a Layout; `check` returns the row to stage (or None) and its issues."""

    def __init__(self, layout: Layout, region: str, dynamic_groups: frozenset[str]) -> None:
        self.layout, self.region, self.dynamic_groups = layout, region, dynamic_groups
        self.width = len(layout.headers)

    def check(self, row: int, cells: list[str]) -> tuple[GoodRow | None, list[Issue]]:
        lay, issues = self.layout, []
        headers = lay.headers
        if len(cells) > self.width and any(c.strip() for c in cells[self.width:]):
            return None, [Issue(row, "", ", ".join(cells[self.width:])[:200],
                                f"{len(cells)} values but {self.width} columns "
                                "(an unquoted comma or semicolon inside a value?)", "rejected")]
        if len(cells) < self.width:
            cells = cells + [""] * (self.width - len(cells))
        for i, cell in enumerate(cells[: self.width]):
            if "\ufffd" in cell:
                return None, [Issue(row, headers[i], cell[:200], "not valid UTF-8; save the file as CSV UTF-8",
                                    "rejected")]
        raw_phone = cells[lay.phone]
        try:
            number = parse_msisdn(raw_phone, self.region)
        except InvalidInput as exc:
            reason = dict(exc.details.get("fields", {})).get("phone", exc.message)  # type: ignore[call-overload]
            return None, [Issue(row, headers[lay.phone], raw_phone, reason, "rejected")]
        if not number.mobile:
            issues.append(Issue(row, headers[lay.phone], raw_phone,
                                f"not a mobile number ({number.kind.replace('_', ' ')}); SMS may not reach it",
                                "warning"))
        name = self._name(row, cells, issues)
        language = self._language(row, cells, issues)
        attributes = {key: v for key, i in lay.attributes if (v := cells[i].strip())}
        for key, i in lay.attributes:
            if len(attributes.get(key, "")) > MAX_VALUE_CHARS:
                issues.append(Issue(row, headers[i], cells[i][:200], f"longer than {MAX_VALUE_CHARS} characters; "
                                    "not imported", "warning"))
                del attributes[key]
        locations = self._locations(row, cells, issues)
        groups = self._groups(row, cells, issues)
        attrs = json.dumps(attributes, ensure_ascii=False) if attributes else None
        return GoodRow(row, number.e164, name, language, attrs, locations, groups), issues

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


class _Source(io.RawIOBase):
    """The file's bytes: its first chunk kept for checks, then the rest; counted and capped."""

    def __init__(self, binary: IO[bytes], max_bytes: int) -> None:
        self._binary, self._max = binary, max_bytes
        self._head = b""
        self._pending = memoryview(b"")
        self.count = 0

    def head(self) -> bytes:
        chunks, size = [], 0
        while size < HEAD_BYTES:
            chunk = self._binary.read(HEAD_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        self._head = b"".join(chunks)
        self._pending = memoryview(self._head)
        return self._head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pending:
            n = min(len(buffer), len(self._pending))
            buffer[:n] = self._pending[:n]
            self._pending = self._pending[n:]
        else:
            data = self._binary.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self.count += n
        if self.count > self._max:
            raise _refuse(f"more than the {self._max:,} bytes an import accepts; split the file")
        return n


def _refuse_non_text(head: bytes) -> None:
    if not head.strip() or head.strip() == codecs.BOM_UTF8:
        raise _refuse("the file is empty")
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise _refuse(f"this is {what}, not a CSV text file")
    if b"\x00" in head:
        raise _refuse("this is a binary file (it contains NUL bytes), not a CSV text file")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=len(head) < HEAD_BYTES)
    except UnicodeDecodeError as exc:
        raise _refuse(f"not UTF-8 text (byte 0x{head[exc.start]:02x} at offset {exc.start}); "
                      "save it as CSV UTF-8") from None
    if len(head) == HEAD_BYTES and b"\n" not in head and b"\r" not in head:
        raise _refuse(f"no line break in the first {HEAD_BYTES // 1024} KB: not a CSV file")


def _refuse(reason: str) -> InvalidInput:
    return InvalidInput(f"file: {reason}", fields={"file": reason})
