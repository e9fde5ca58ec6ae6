"""Opening a contacts CSV: refusing what is not one, sniffing the delimiter, mapping the columns.

Pure Python, no database. `open_contacts_csv` streams the file (it is never read whole) and
`map_columns` says which column is the phone, the name, a location…; `alerting.directory.contact_rows`
checks the rows.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from alerting.base.errors import InvalidInput

HEAD_BYTES = 64 * 1024
MAX_ATTRIBUTE_NAME = 64  # as the criterion language accepts

_PHONE = {"telefono", "phone", "celular", "movil", "mobile", "msisdn", "fono", "tel", "cel", "numero",
          "telefono_movil", "telefono_celular", "numero_celular", "phone_number", "mobile_number"}
# A contact's second and third numbers (alerting.directory.contact_numbers): `telefono2`, `phone_3`,
# `celular 2`, `segundo teléfono`, `other phone`… (header_key spelling); `telefono1` is the first.
_MORE_PHONE = re.compile(r"^(?:telefono|phone|celular|movil|mobile|msisdn|fono|tel|cel|numero|phone_number|"
                         r"mobile_number|numero_celular|telefono_movil)_?([123])$")
_MORE_PHONE_WORDS = {"segundo_telefono": 2, "telefono_alternativo": 2, "otro_telefono": 2, "second_phone": 2,
                     "other_phone": 2, "alternate_phone": 2, "alternative_phone": 2, "tercer_telefono": 3,
                     "third_phone": 3}
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
_SIGNATURES = ((b"PK\x03\x04", "a ZIP archive or Excel workbook (.xlsx); save it as CSV UTF-8"),
               (b"\xd0\xcf\x11\xe0", "an old Excel/Office file (.xls); save it as CSV UTF-8"),
               (b"%PDF", "a PDF document"),
               (b"\xff\xfe", "UTF-16 text; save it as CSV UTF-8"),
               (b"\xfe\xff", "UTF-16 text; save it as CSV UTF-8"))


@dataclass
class Layout:
    """Which column means what, by index into each record."""

    headers: list[str]
    phone: int
    # (position 2 or 3, index) of the columns of a contact's further numbers
    more_phones: list[tuple[int, int]] = field(default_factory=list)
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
    more: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        if not key:
            continue  # a blank header: a spreadsheet's stray column
        position = int(m.group(1)) if (m := _MORE_PHONE.match(key)) else _MORE_PHONE_WORDS.get(key)
        if position == 1:
            roles.setdefault("phone", []).append(i)
            continue
        if position is not None:
            more.setdefault(position, []).append(i)
            continue
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
    for role, idx in [*roles.items(), *((f"phone {p}", idx) for p, idx in more.items())]:
        if len(idx) > 1:
            raise _refuse(f"more than one {role} column: " + ", ".join(f'"{headers[i]}"' for i in idx))
    seen: set[str] = set()
    for key, _i in attributes:
        if key in seen:
            raise _refuse(f'two columns are both named "{key}" once accents and spaces are ignored')
        seen.add(key)
    first = {role: idx[0] for role, idx in roles.items()}
    layout = Layout(headers, first["phone"], more_phones=sorted((p, idx[0]) for p, idx in more.items()),
                    attributes=attributes, name=first.get("name"), language=first.get("language"),
                    group=first.get("group"), label=first.get("label"))
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
        self._text = text
        self._reader = csv.reader(text, delimiter=self.delimiter)
        try:
            headers = next(self._reader)
        except csv.Error as exc:
            raise _refuse(f"the header row is not valid CSV ({exc})") from None
        self.layout = map_columns(headers)

    @property
    def bytes_read(self) -> int:
        return self._source.count

    def blocks(self, size: int) -> Iterator[Block]:
        """The rest of the file after the header, `size` lines at a time, in order.

        A block without a quote character is passed on as its lines: each line is then one record,
        and `block_records` parses it wherever it is cheapest (a worker process). A block with one
        is parsed here, as a record may span lines; it may then run past `size` lines to finish
        its last record. Raises InvalidInput for a broken quote.
        """
        text, row, line = self._text, 1, self._reader.line_num
        while lines := list(itertools.islice(text, size)):
            if '"' not in "".join(lines):
                yield Block(self.delimiter, row + 1, line + 1, lines, None)
                row, line = row + len(lines), line + len(lines)
                continue
            feed = _Feed(lines, text)
            reader, records, first_row = csv.reader(feed, delimiter=self.delimiter), [], row + 1
            try:
                for cells in reader:
                    row += 1
                    if cells and any(cells):
                        records.append((row, cells))
                    if feed.consumed >= len(lines):
                        break
            except csv.Error as exc:
                raise _refuse(f"not valid CSV at row {row + 1} (line {line + feed.consumed}): {exc}") from None
            yield Block(self.delimiter, first_row, line + 1, None, records)
            line += feed.consumed


class Block(NamedTuple):
    """Consecutive rows of a contacts CSV: raw `lines` (one record each) or parsed `records`."""

    delimiter: str
    first_row: int  # as a spreadsheet numbers rows: the header is row 1, blank rows count
    first_line: int
    lines: list[str] | None
    records: list[tuple[int, list[str]]] | None


def block_records(block: Block) -> list[tuple[int, list[str]]]:
    """(row number, cells) of each non-blank record of `block`. Raises InvalidInput for bad CSV."""
    if block.records is not None:
        return block.records
    assert block.lines is not None
    records, row = [], block.first_row - 1
    reader = csv.reader(block.lines, delimiter=block.delimiter)
    try:
        for cells in reader:
            row += 1
            if cells and any(cells):
                records.append((row, cells))
    except csv.Error as exc:  # e.g. a value over the csv module's field size limit
        raise _refuse(f"not valid CSV at row {row + 1} (line {block.first_line + row + 1 - block.first_row}): "
                      f"{exc}") from None
    return records


class _Feed:
    """The lines of a block, then (only to finish a record that spans its end) the rest of the file."""

    def __init__(self, lines: list[str], rest: Iterator[str]) -> None:
        self._lines, self._rest, self.consumed = lines, rest, 0

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        self.consumed += 1
        if self.consumed <= len(self._lines):
            return self._lines[self.consumed - 1]
        try:
            return next(self._rest)
        except StopIteration:
            self.consumed -= 1
            raise


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
    name = getattr(source, "name", None)  # a temporary file's "name" may be its descriptor number
    return CsvFile(source, Path(name).name if isinstance(name, str) and name else "upload.csv", None, max_bytes), None


def sniff_delimiter(first_line: str) -> str:
    """Comma, semicolon or tab: whichever splits the header into the most columns (comma on a tie)."""
    best, best_count = ",", 0
    for delimiter in (",", ";", "\t"):
        count = len(next(csv.reader([first_line], delimiter=delimiter), []))
        if count > best_count:
            best, best_count = delimiter, count
    return best


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
