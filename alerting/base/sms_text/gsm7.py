"""The GSM 03.38 (3GPP TS 23.038) default alphabet and its extension table, unpacked: one septet a byte.

SMPP carries GSM-7 unpacked in short_message, so nothing here packs septets into octets. Code 0x09 is
"Ç" as in TS 23.038 and the handsets that render it (Android's GsmAlphabet): a lower-case "ç" is NOT
GSM-7, because sending it as 0x09 would show the recipient a different letter.

Speed matters (analysis runs per recipient for personalized texts), so the check is one C-level
`codecs.charmap_encode` through an EncodingMap followed by `bytes.translate`, not a Python loop.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

ESC = 0x1B

# Index = septet. 0x1B is the escape to the extension table, not a character.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC) == 128

# Extension table: these cost two septets, ESC then the code.
EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

BASIC_CHARS = frozenset(BASIC) - {"\x1b"}
EXTENSION_CHARS = frozenset(EXTENSION)
ALPHABET = BASIC_CHARS | EXTENSION_CHARS

# The validation map: CPython builds a fast EncodingMap only when index 0 is U+0000 and unmapped
# slots are U+FFFE, so the codes here are private (0 = "NUL seen", 1..127 basic, 128.. extension)
# and `_CHECK_TO_SEPTET` turns them into real septets afterwards.
_BASIC_ORDER = [c for c in BASIC if c != "\x1b"]
_EXT_ORDER = list(EXTENSION)
_CHECK_TABLE = "\x00" + "".join(_BASIC_ORDER) + "".join(_EXT_ORDER)
_CHECK_TABLE += "\ufffe" * (256 - len(_CHECK_TABLE))
_CHECK_MAP = codecs.charmap_build(_CHECK_TABLE)
assert type(_CHECK_MAP).__name__ == "EncodingMap", "charmap fell back to a dict: the fast path is lost"

_EXT_FIRST = 1 + len(_BASIC_ORDER)  # first private code of the extension characters
_SEPTET_CODES = bytes(range(128))

_to_septet = bytearray(range(256))
for _i, _c in enumerate(_BASIC_ORDER, start=1):
    _to_septet[_i] = BASIC.index(_c)
# Extension characters become a one-byte placeholder (0x80 + n), expanded to ESC pairs afterwards.
_EXPANSIONS: list[tuple[bytes, bytes]] = []
for _n, _c in enumerate(_EXT_ORDER):
    _to_septet[_EXT_FIRST + _n] = 0x80 + _n
    _EXPANSIONS.append((bytes([0x80 + _n]), bytes([ESC, EXTENSION[_c]])))
_CHECK_TO_SEPTET = bytes(_to_septet)

_NON_GSM = re.compile("[^" + re.escape("".join(sorted(ALPHABET))) + "]")

# Decoding: bytes >= 0x80 are not septets (U+FFFD); ESC stays "\x1b" and is resolved afterwards.
_DECODE_TABLE = BASIC + "\ufffe" * 128
# After ESC, a code missing from the extension table shows its basic character (TS 23.038 6.2.1.1),
# and ESC ESC (reserved for a further table) shows a space.
_ESCAPED = {BASIC[code]: char for char, code in EXTENSION.items()}
_ESCAPED["\x1b"] = " "
_ESC_PAIR = re.compile("\x1b(.?)", re.DOTALL)


def septet_count(text: str) -> int | None:
    """How many septets `text` takes in GSM-7 (extension characters count two), or None if it is not GSM-7."""
    try:
        codes = codecs.charmap_encode(text, "strict", _CHECK_MAP)[0]
    except UnicodeEncodeError:
        return None
    if b"\x00" in codes:  # U+0000 is the map's sentinel, not a GSM character
        return None
    septets = codes.translate(_CHECK_TO_SEPTET)
    if septets.isascii():
        return len(septets)
    return len(septets) + len(septets.translate(None, _SEPTET_CODES))


def encode(text: str) -> bytes | None:
    """`text` as unpacked septets (extension characters as ESC pairs), or None if it is not all GSM-7."""
    try:
        codes = codecs.charmap_encode(text, "strict", _CHECK_MAP)[0]
    except UnicodeEncodeError:
        return None
    if b"\x00" in codes:
        return None
    septets = codes.translate(_CHECK_TO_SEPTET)
    if septets.isascii():
        return septets
    for placeholder, pair in _EXPANSIONS:
        if placeholder in septets:
            septets = septets.replace(placeholder, pair)
    return septets


def decode(septets: bytes) -> str:
    """Unpacked septets to text. Never raises: bytes >= 0x80 and a trailing lone ESC become U+FFFD."""
    text = codecs.charmap_decode(septets, "replace", _DECODE_TABLE)[0]
    if "\x1b" not in text:
        return text
    return _ESC_PAIR.sub(_resolve_escape, text)


def _resolve_escape(match: re.Match[str]) -> str:
    following = match.group(1)
    if not following or following == "\ufffd":
        return "\ufffd"
    return _ESCAPED.get(following, following)


def non_gsm_chars(text: str) -> list[str]:
    """The distinct characters of `text` outside GSM-7, in order of first appearance."""
    return list(dict.fromkeys(_NON_GSM.findall(text)))


# Look-alikes that NFKD does not reduce to GSM-7. Emoji and non-Latin scripts have none.
_LOOKALIKES = {
    **dict.fromkeys("‘’‚‛′´`‹›", "'"),
    **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−", "-"),
    **dict.fromkeys("\u200b\u200c\u2060\ufeff\u00ad", ""),  # invisible: pasted from documents
    "…": "...",
    "\t": " ",
    "•": "-",
    "·": ".",
    "×": "x",
    "÷": "/",
}


def transliterate(text: str) -> str:
    """`text` with each non-GSM character that has a GSM-7 look-alike replaced (á→a, “→", —→-).

    Characters without one (emoji, Cyrillic, °) are kept, so the result may still need UCS-2.
    """
    replacements: dict[int, str] = {}
    for char in non_gsm_chars(text):
        spelled = _LOOKALIKES.get(char)
        if spelled is None:
            bare = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            if bare and all(c in ALPHABET for c in bare):
                spelled = bare
        if spelled is not None:
            replacements[ord(char)] = spelled
    return text.translate(replacements) if replacements else text
