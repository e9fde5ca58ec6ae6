"""SMS text encoding and segmentation: GSM-7 when every character fits, else UCS-2 (UTF-16BE).

Our own encoder, because smpplib's helpers split escape pairs and surrogate pairs across parts and
cannot decode GSM-7. Limits (3GPP TS 23.040): GSM-7 160 septets in one SMS, 153 per part of a
concatenated one (6-byte UDH, IEI 0x00, 8-bit reference); UCS-2 70 code units, 67 per part; at most
255 parts. A part never ends between ESC and its extension code, nor between two UTF-16 surrogates.

Payloads are what SMPP's short_message carries: GSM-7 unpacked, one septet a byte (the bind sets
data_coding 0 or 1 as its carrier wants), UCS-2 as UTF-16BE bytes (data_coding 8); a part of a
concatenated message starts with its UDH and is sent with esm_class UDHI (0x40).
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from typing import Literal

from alerting.base.errors import InvalidInput
from alerting.base.sms_text import gsm7

Encoding = Literal["gsm7", "ucs2"]

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_PARTS = 255
ESM_CLASS_UDHI = 0x40
DATA_CODING_GSM7 = 0
DATA_CODING_LATIN1 = 3
DATA_CODING_UCS2 = 8

_HIGH_SURROGATES = range(0xD8, 0xDC)  # first byte of a UTF-16BE high surrogate


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a text travels: its encoding and how many units (septets or UTF-16 units) each part holds."""

    encoding: Encoding
    parts: int
    units_per_part: list[int]
    units_left_in_last: int
    chars: int
    non_gsm_chars: list[str]


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """The short_message payloads of one text, each including its UDH when there are several."""

    encoding: Encoding
    data_coding: int
    parts: list[bytes]
    esm_class_udhi: bool


@dataclass(frozen=True, slots=True)
class UDH:
    """The concatenation element of a user data header (IEI 0x00: 8-bit reference, 0x08: 16-bit)."""

    reference: int
    total: int
    sequence: int
    reference_bits: int = 8


def analyze(text: str) -> SegmentInfo:
    """Encoding, part count and units per part of `text`, without building any payload.

    Reports the true part count even past MAX_PARTS (encode_parts refuses those). Raises
    InvalidInput (field "text") only for an unpaired surrogate, which no SMS encoding can carry.
    """
    septets = gsm7.septet_count(text)
    if septets is not None:
        if septets <= GSM7_SINGLE:
            return SegmentInfo("gsm7", 1, [septets], GSM7_SINGLE - septets, len(text), [])
        plain = septets == len(text)  # no extension characters: plain arithmetic
        sizes = _even_sizes(septets, GSM7_PART) if plain else _gsm7_sizes(gsm7.encode(text) or b"")
        return SegmentInfo("gsm7", len(sizes), sizes, GSM7_PART - sizes[-1], len(text), [])
    data = _utf16(text)
    units = len(data) // 2
    non_gsm = gsm7.non_gsm_chars(text)
    if units <= UCS2_SINGLE:
        return SegmentInfo("ucs2", 1, [units], UCS2_SINGLE - units, len(text), non_gsm)
    plain = units == len(text)  # no surrogate pairs
    sizes = _even_sizes(units, UCS2_PART) if plain else _ucs2_sizes(data)
    return SegmentInfo("ucs2", len(sizes), sizes, UCS2_PART - sizes[-1], len(text), non_gsm)


def encode_parts(text: str, ref: int) -> EncodedMessage:
    """The short_message payloads of `text`, with 8-bit concat UDHs (reference `ref`) if it needs several.

    `ref` (0-255) must differ between long messages a handset may receive close together: take it
    from a ConcatReference per recipient batch. Raises InvalidInput (field "text") past MAX_PARTS
    parts or for an unpaired surrogate; ValueError for a reference outside 0-255.
    """
    if not 0 <= ref <= 255:
        raise ValueError(f"concat reference must be 0-255, got {ref}")
    septets = gsm7.encode(text)
    if septets is not None:
        if len(septets) <= GSM7_SINGLE:
            return EncodedMessage("gsm7", DATA_CODING_GSM7, [septets], False)
        parts = _with_udh(_cut(septets, _gsm7_sizes(septets), 1), ref)
        return EncodedMessage("gsm7", DATA_CODING_GSM7, parts, True)
    data = _utf16(text)
    if len(data) <= 2 * UCS2_SINGLE:
        return EncodedMessage("ucs2", DATA_CODING_UCS2, [data], False)
    return EncodedMessage("ucs2", DATA_CODING_UCS2, _with_udh(_cut(data, _ucs2_sizes(data), 2), ref), True)


def decode(payload: bytes, data_coding: int, udhi: bool = False) -> tuple[str, UDH | None]:
    """The text of a short_message and its concatenation header, if any.

    GSM-7 unpacked (data_coding 0, 1 and the GSM DCS groups that mean the default alphabet),
    Latin-1 (3), UCS-2/UTF-16BE (8); 8-bit data is read as Latin-1 so every byte survives. Never
    raises: what cannot be decoded becomes U+FFFD (the caller keeps the raw payload), and a header
    whose length runs past the payload is treated as text.
    """
    header: UDH | None = None
    if udhi and payload:
        header_len = 1 + payload[0]
        if header_len <= len(payload):
            header = _parse_concat(payload[1:header_len])
            payload = payload[header_len:]
    alphabet = _alphabet_of(data_coding)
    if alphabet == "gsm7":
        return gsm7.decode(payload), header
    if alphabet == "ucs2":
        return payload.decode("utf-16-be", errors="replace"), header
    return payload.decode(alphabet, errors="replace"), header


def is_binary(data_coding: int) -> bool:
    """Whether `data_coding` says the payload is data, not text: 8-bit data (SMPP 2 and 4, the GSM
    DCS 8-bit classes), compressed GSM text, or a value naming an alphabet we do not read (5, 9, 11-13)."""
    if data_coding in (2, 4, 5, 9, 11, 12, 13):
        return True
    if 0x10 <= data_coding <= 0x7F:  # general / auto-delete groups: compressed, or 8-bit alphabet
        return bool(data_coding & 0x20) or (data_coding >> 2) & 0x03 in (1, 3)
    if 0x80 <= data_coding <= 0xBF:  # reserved groups
        return True
    return data_coding >= 0xF0 and bool(data_coding & 0x04)


def decode_text(payload: bytes, data_coding: int, udhi: bool = False) -> tuple[str, UDH | None] | None:
    """Like `decode`, but None when the payload is not text: a binary data coding (is_binary), or
    UCS-2 that is not whole UTF-16 (odd length, a lone surrogate). Such a payload is kept raw by
    the caller and read as no words at all, never as Latin-1 guesses."""
    if is_binary(data_coding):
        return None
    text, header = decode(payload, data_coding, udhi)
    if _alphabet_of(data_coding) == "ucs2":
        body = payload
        if udhi and payload and 1 + payload[0] <= len(payload):  # the header decode() skipped
            body = payload[1 + payload[0]:]
        try:
            return body.decode("utf-16-be"), header  # strict: odd length or lone surrogate raise
        except UnicodeDecodeError:
            return None
    return text, header


def reassemble(parts: list[tuple[UDH | None, str]]) -> str:
    """The text of a concatenated message from its decoded parts, in any order.

    Raises InvalidInput (field "parts") if parts are missing, repeated or from different messages.
    """
    if len(parts) == 1 and parts[0][0] is None:
        return parts[0][1]
    headed = [(udh, text) for udh, text in parts if udh is not None]
    if not headed or len(headed) != len(parts):
        raise InvalidInput("a part has no concatenation header", fields={"parts": "missing UDH"})
    first = headed[0][0]
    if any((udh.reference, udh.total) != (first.reference, first.total) for udh, _ in headed):
        raise InvalidInput("parts belong to different messages", fields={"parts": "mixed references"})
    headed.sort(key=lambda part: part[0].sequence)
    sequences = [udh.sequence for udh, _ in headed]
    if sequences != list(range(1, first.total + 1)):
        raise InvalidInput(
            f"parts {sequences} do not make a message of {first.total}",
            fields={"parts": "missing or repeated parts"},
        )
    return "".join(text for _, text in headed)


class ConcatReference:
    """Thread-safe rotating 8-bit concat reference, starting at a random value.

    A random start makes it unlikely that a restarted worker reuses the references it has just sent.
    """

    def __init__(self, start: int | None = None) -> None:
        first = random.randrange(256) if start is None else start % 256
        self._counter = itertools.count(first)
        self._lock = threading.Lock()

    def next_reference(self) -> int:
        """The next reference, 0-255, wrapping around."""
        with self._lock:
            return next(self._counter) % 256


_process_references = ConcatReference()


def next_reference() -> int:
    """The next concat reference from this process's shared ConcatReference."""
    return _process_references.next_reference()


def suggest_transliteration(text: str) -> str | None:
    """A GSM-7 spelling of `text` (á→a, curly quotes → straight, …) if it needs fewer parts, else None.

    Only a suggestion for the operator to accept: the system never changes an alert's text itself.
    """
    candidate = gsm7.transliterate(text)
    if candidate == text:
        return None
    return candidate if analyze(candidate).parts < analyze(text).parts else None


def _utf16(text: str) -> bytes:
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"text has an unpaired surrogate at character {exc.start}",
            fields={"text": "unpaired UTF-16 surrogate"},
        ) from None


def _even_sizes(units: int, per_part: int) -> list[int]:
    full, rest = divmod(units, per_part)
    return [per_part] * full + ([rest] if rest else [])


def _gsm7_sizes(septets: bytes) -> list[int]:
    sizes, start, end = [], 0, len(septets)
    while start < end:
        stop = min(start + GSM7_PART, end)
        # ESC is only ever the first byte of a pair, so ESC last means the pair would be split.
        if stop < end and septets[stop - 1] == gsm7.ESC:
            stop -= 1
        sizes.append(stop - start)
        start = stop
    return sizes


def _ucs2_sizes(data: bytes) -> list[int]:
    """Part sizes in UTF-16 units."""
    sizes, start, end = [], 0, len(data)
    while start < end:
        stop = min(start + 2 * UCS2_PART, end)
        if stop < end and data[stop - 2] in _HIGH_SURROGATES:
            stop -= 2
        sizes.append((stop - start) // 2)
        start = stop
    return sizes


def _cut(data: bytes, sizes: list[int], unit_bytes: int) -> list[bytes]:
    chunks, start = [], 0
    for size in sizes:
        chunks.append(data[start : start + size * unit_bytes])
        start += size * unit_bytes
    return chunks


def _with_udh(chunks: list[bytes], ref: int) -> list[bytes]:
    total = len(chunks)
    if total > MAX_PARTS:
        raise InvalidInput(
            f"text needs {total} parts; an SMS can have at most {MAX_PARTS}",
            fields={"text": f"too long: {total} parts, at most {MAX_PARTS}"},
        )
    return [bytes((5, 0x00, 3, ref, total, seq)) + chunk for seq, chunk in enumerate(chunks, start=1)]


def _parse_concat(elements: bytes) -> UDH | None:
    i = 0
    while i + 2 <= len(elements):
        iei, length = elements[i], elements[i + 1]
        value = elements[i + 2 : i + 2 + length]
        if len(value) < length:
            return None
        if iei == 0x00 and length == 3:
            return UDH(value[0], value[1], value[2], 8)
        if iei == 0x08 and length == 4:
            return UDH(int.from_bytes(value[:2], "big"), value[2], value[3], 16)
        i += 2 + length
    return None


def _alphabet_of(data_coding: int) -> str:
    """The alphabet a data_coding value names: "gsm7", "ucs2" or a Python codec for 8-bit text.

    0-15 follow SMPP 3.4 §5.2.19; carriers also pass GSM 03.38 DCS values through (0x10-0x3F
    general, 0xC0-0xEF message waiting, 0xF0-0xFF message class), whose alphabet bits we honour.
    """
    smpp = {
        0: "gsm7", 1: "gsm7", 3: "latin-1", 6: "iso8859-5", 7: "iso8859-8", 8: "ucs2",
        10: "iso2022_jp", 14: "euc_kr",
    }  # fmt: skip
    if data_coding in smpp:
        return smpp[data_coding]
    if 0x10 <= data_coding <= 0x7F and not data_coding & 0x20:  # general / auto-delete, uncompressed
        return {0: "gsm7", 2: "ucs2"}.get((data_coding >> 2) & 0x03, "latin-1")
    if 0xC0 <= data_coding <= 0xDF:
        return "gsm7"
    if 0xE0 <= data_coding <= 0xEF:
        return "ucs2"
    if data_coding >= 0xF0:
        return "latin-1" if data_coding & 0x04 else "gsm7"
    return "latin-1"  # octets (2, 4), compressed or unknown: keep every byte, one character each
