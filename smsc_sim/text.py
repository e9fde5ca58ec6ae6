"""Message text as a handset would show it: GSM 03.38 (unpacked, one septet per octet), UCS-2.

The simulator's own minimal codec, kept apart from the sender's encoder (alerting/base/sms_text/encoding.py)
on purpose: the simulator is the independent judge of what reached the air, so a bug in the
sender's codec must not cancel out here.
"""

from __future__ import annotations

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]",
                  0x40: "|", 0x65: "€"}
assert len(GSM7_BASIC) == 128
# str.translate tables: C-speed coding. Encoding maps every GSM character to its octet(s) and
# every other ASCII character to 0x80, so "result is ASCII" means "everything was encodable".
_ENCODE: dict[int, str] = {c: "\x80" for c in range(128)}
_ENCODE.update({ord(ch): chr(i) for i, ch in enumerate(GSM7_BASIC) if ch != "\x1b"})
_ENCODE.update({ord(ch): "\x1b" + chr(code) for code, ch in GSM7_EXTENSION.items()})
_DECODE: dict[int, str] = {i: ch for i, ch in enumerate(GSM7_BASIC)}
_DECODE.update({i + 128: ch for i, ch in enumerate(GSM7_BASIC)})  # some senders set the 8th bit

DC_GSM7 = 0
DC_LATIN1 = 3
DC_BINARY = 4
DC_UCS2 = 8


def decode_gsm7(octets: bytes) -> str:
    """Unpacked GSM-7 octets to text; an unknown escape shows as a space, as handsets do."""
    if 0x1B not in octets and 0x9B not in octets:
        return octets.decode("latin-1").translate(_DECODE)
    out: list[str] = []
    escape = False
    for octet in octets:
        septet = octet & 0x7F
        if escape:
            out.append(GSM7_EXTENSION.get(septet, " "))
            escape = False
        elif septet == 0x1B:
            escape = True
        else:
            out.append(GSM7_BASIC[septet])
    return "".join(out)


def encode_gsm7(text: str) -> bytes | None:
    """Unpacked GSM-7 octets, or None when the text has a character outside GSM 03.38."""
    septets = text.translate(_ENCODE)
    if not septets.isascii():
        return None
    return septets.encode("ascii")


def decode_text(octets: bytes, data_coding: int, gsm7_codings: tuple[int, ...] = (0, 1)) -> str:
    """Text of a message body (without UDH) for a data_coding; binary shows as hex.

    `gsm7_codings`: which data_coding values the carrier treats as GSM-7 (some use 0, some 1).
    """
    if data_coding in gsm7_codings:
        return decode_gsm7(octets)
    if data_coding == DC_UCS2:
        return octets.decode("utf-16-be", errors="replace")
    if data_coding in (1, DC_LATIN1):
        return octets.decode("latin-1")
    return octets.hex()


def encode_mo(text: str) -> tuple[bytes, int]:
    """(octets, data_coding) a handset would send: GSM-7 (0) when it fits, else UCS-2 (8)."""
    gsm = encode_gsm7(text)
    if gsm is not None:
        return gsm, DC_GSM7
    return text.encode("utf-16-be"), DC_UCS2
