"""Encoding and segmentation: alphabet choice, part limits, UDHs, decoding, round trips."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.base.errors import InvalidInput
from alerting.base.sms_text import gsm7
from alerting.base.sms_text.encoding import (
    MAX_PARTS,
    UDH,
    ConcatReference,
    analyze,
    decode,
    encode_parts,
    reassemble,
    suggest_transliteration,
)

EXTENSION = "€^{}[]~\\|\f"


def received(text: str, ref: int = 42) -> list[tuple[UDH | None, str]]:
    """`text` sent and decoded part by part, as reassemble() takes it: (header, text) pairs."""
    message = encode_parts(text, ref)
    decoded = [decode(part, message.data_coding, udhi=message.esm_class_udhi) for part in message.parts]
    return [(header, part_text) for part_text, header in decoded]


def roundtrip(text: str, ref: int = 42) -> str:
    return reassemble(received(text, ref))


def bodies(text: str) -> list[bytes]:
    """The payloads of `text` without their UDHs."""
    message = encode_parts(text, 1)
    return [part[6:] for part in message.parts] if message.esm_class_udhi else message.parts


# --- the alphabet -------------------------------------------------------------------------------


@pytest.mark.parametrize("char", list("áíóúÁÍÓÚ"))
def test_spanish_acute_vowels_other_than_e_need_ucs2(char):
    assert analyze(f"Evacuaci{char}n").encoding == "ucs2"
    assert analyze(f"Evacuaci{char}n").non_gsm_chars == [char]


@pytest.mark.parametrize("char", list("éñüàò¿¡ÑÜÄÖÅÉØøÇ@£$¥Δ_ΦΓΛΩΠΨΣΘΞÆæß§¤\n\r"))
def test_gsm_default_alphabet_characters_stay_gsm7(char):
    info = analyze(f"a{char}b")
    assert (info.encoding, info.units_per_part, info.non_gsm_chars) == ("gsm7", [3], [])


def test_lowercase_c_cedilla_is_not_gsm7_because_handsets_show_0x09_as_capital():
    assert analyze("ç").encoding == "ucs2"
    assert analyze("Ç").encoding == "gsm7"


@pytest.mark.parametrize("char", list(EXTENSION))
def test_extension_characters_cost_two_septets_escape_first(char):
    assert analyze(char).units_per_part == [2]
    (payload,) = encode_parts(char, 0).parts
    assert len(payload) == 2 and payload[0] == 0x1B
    assert roundtrip(char) == char


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\t", "`", "😀", "\ufffe"])
def test_characters_outside_both_tables_force_ucs2(char):
    assert analyze(char).encoding == "ucs2"
    assert roundtrip(char) == char


def test_unpaired_surrogate_is_refused_naming_the_text():
    with pytest.raises(InvalidInput) as err:
        encode_parts("hola \ud83d", 0)
    assert "text" in err.value.details["fields"]


# --- limits and boundaries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units_per_part", "left"),
    [
        ("", "gsm7", [0], 160),
        ("a" * 160, "gsm7", [160], 0),
        ("a" * 161, "gsm7", [153, 8], 145),
        ("a" * 306, "gsm7", [153, 153], 0),
        ("a" * 307, "gsm7", [153, 153, 1], 152),
        ("€" * 80, "gsm7", [160], 0),
        ("á" * 70, "ucs2", [70], 0),
        ("á" * 71, "ucs2", [67, 4], 63),
        ("á" * 134, "ucs2", [67, 67], 0),
        ("😀" * 35, "ucs2", [70], 0),
    ],
)
def test_part_sizes_at_the_limits(text, encoding, units_per_part, left):
    info = analyze(text)
    assert (info.encoding, info.units_per_part, info.units_left_in_last) == (encoding, units_per_part, left)
    assert info.parts == len(units_per_part) == len(encode_parts(text, 0).parts)


def test_escape_pair_at_septet_153_moves_whole_to_next_part():
    text = "a" * 152 + "€" + "b" * 20
    first, second = bodies(text)
    assert first == b"a" * 152
    assert second[:2] == b"\x1b\x65"
    assert analyze(text).units_per_part == [152, 22]
    assert roundtrip(text) == text


def test_escape_pair_ending_exactly_at_septet_153_stays_in_first_part():
    text = "a" * 151 + "€" + "b" * 20
    assert analyze(text).units_per_part == [153, 20]
    assert bodies(text)[0].endswith(b"\x1b\x65")


def test_emoji_at_unit_67_moves_whole_to_next_part():
    text = "á" * 66 + "😀" + "é" * 10
    first, second = bodies(text)
    assert first.decode("utf-16-be") == "á" * 66
    assert second.decode("utf-16-be") == "😀" + "é" * 10
    assert analyze(text).units_per_part == [66, 12]


def test_emoji_ending_exactly_at_unit_67_stays_in_first_part():
    text = "á" * 65 + "😀" + "é" * 10
    assert analyze(text).units_per_part == [67, 10]


def test_255_parts_are_allowed_and_256_refused_naming_the_text():
    assert len(encode_parts("a" * 153 * MAX_PARTS, 0).parts) == MAX_PARTS
    assert analyze("a" * (153 * MAX_PARTS + 1)).parts == MAX_PARTS + 1
    with pytest.raises(InvalidInput) as err:
        encode_parts("a" * (153 * MAX_PARTS + 1), 0)
    assert "256 parts" in err.value.details["fields"]["text"]
    with pytest.raises(InvalidInput):
        encode_parts("á" * (67 * MAX_PARTS + 1), 0)


def test_multipart_payloads_start_with_an_8bit_concat_udh():
    message = encode_parts("a" * 200, 0xAB)
    assert message.esm_class_udhi and message.data_coding == 0
    assert [p[:6] for p in message.parts] == [bytes([5, 0, 3, 0xAB, 2, 1]), bytes([5, 0, 3, 0xAB, 2, 2])]


def test_single_part_has_no_udh_and_ucs2_uses_data_coding_8():
    message = encode_parts("Atención", 9)
    assert (message.encoding, message.data_coding, message.esm_class_udhi) == ("ucs2", 8, False)
    assert message.parts == ["Atención".encode("utf-16-be")]


def test_reference_outside_8_bits_is_a_programming_error():
    with pytest.raises(ValueError):
        encode_parts("hola", 256)


# --- decoding ---------------------------------------------------------------------------------


def test_decode_reads_a_16bit_reference_udh_after_another_element():
    # Port addressing (IEI 0x05) first, then the 16-bit concat element (IEI 0x08).
    udh = bytes([12, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0, 0x08, 4, 0x12, 0x34, 3, 2])
    text, header = decode(udh + gsm7.encode("ok {1}"), 0, udhi=True)
    assert (text, header) == ("ok {1}", UDH(0x1234, 3, 2, 16))


def test_decode_latin1_and_gsm_dcs_groups():
    assert decode("canción".encode("latin-1"), 3) == ("canción", None)
    assert decode(gsm7.encode("ACK ñ"), 0xF0)[0] == "ACK ñ"
    assert decode("río".encode("utf-16-be"), 0x18)[0] == "río"


@pytest.mark.parametrize(
    ("payload", "data_coding", "udhi", "expected"),
    [
        (b"ok\x80\xff", 0, False, "ok\ufffd\ufffd"),
        (b"ok\x1b", 1, False, "ok\ufffd"),
        (b"\x00s\xd8\x00\x00a\x00", 8, False, "s\ufffda\ufffd"),  # lone surrogate, odd length
        (b"\x09\x00\x03\x01", 0, True, "Ç@¥£"),  # header longer than the payload: kept as text
    ],
)
def test_undecodable_payloads_give_replacement_characters_not_errors(payload, data_coding, udhi, expected):
    assert decode(payload, data_coding, udhi=udhi) == (expected, None)


@given(st.binary(max_size=300), st.integers(0, 255), st.booleans())
def test_decode_never_raises(payload, data_coding, udhi):
    text, _ = decode(payload, data_coding, udhi=udhi)
    assert isinstance(text, str)


# --- reassembly and references ------------------------------------------------------------------


def test_reassemble_accepts_parts_in_any_order():
    assert reassemble(list(reversed(received("x" * 400)))) == "x" * 400


def test_reassemble_refuses_a_missing_part_naming_the_parts():
    with pytest.raises(InvalidInput) as err:
        reassemble(received("x" * 400)[:2])
    assert "parts" in err.value.details["fields"]


def test_reassemble_refuses_parts_of_different_messages():
    one, two = received("x" * 200, ref=3), received("y" * 200, ref=4)
    with pytest.raises(InvalidInput):
        reassemble([one[0], two[1]])


def test_concat_reference_rotates_through_all_256_values_under_threads():
    references = ConcatReference(start=250)
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [references.next_reference() for _ in range(1024)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(seen) == dict.fromkeys(range(256), 32)


# --- transliteration suggestion -------------------------------------------------------------------


def test_transliteration_is_suggested_when_it_saves_parts():
    text = "Atención: evacúe la zona del río “Salado” — diríjase al refugio más próximo. Información: 103."
    suggestion = suggest_transliteration(text)
    assert suggestion == (
        'Atencion: evacue la zona del rio "Salado" - dirijase al refugio mas proximo. Informacion: 103.'
    )
    assert analyze(suggestion).parts < analyze(text).parts


def test_no_suggestion_when_the_part_count_would_not_drop():
    assert suggest_transliteration("Evacúe") is None  # one part either way
    assert suggest_transliteration("Evacúe ya 🚨" * 5) is None  # the emoji keeps it UCS-2
    assert suggest_transliteration("Evacuar ya") is None  # already GSM-7


def test_transliteration_keeps_gsm_letters_and_drops_invisible_ones():
    assert gsm7.transliterate("ñandú\u200b ç Ç é") == "ñandu c Ç é"


# --- properties -------------------------------------------------------------------------------------

emoji = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
gsm_char = st.sampled_from(sorted(gsm7.ALPHABET))
# Lone surrogates cannot come from UTF-8 input (forms, JSON, CSV, CAP) and are refused: tested apart.
any_text = st.text(alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)), emoji, gsm_char,
                                      st.sampled_from(EXTENSION)), max_size=600)
# Texts that stay GSM-7 but are long and escape-heavy, to exercise the 153-septet cuts.
gsm_text = st.text(alphabet=st.one_of(gsm_char, st.sampled_from(EXTENSION)), min_size=100, max_size=1200)
# Texts that stay UCS-2 but are long and surrogate-heavy, to exercise the 67-unit cuts.
ucs2_text = st.text(alphabet=st.one_of(emoji, st.sampled_from("áé a")), min_size=60, max_size=600)


def check_message(text: str) -> None:
    info = analyze(text)
    message = encode_parts(text, 77)
    assert roundtrip(text, 77) == text
    assert info.encoding == message.encoding and info.parts == len(message.parts)
    single = len(message.parts) == 1
    assert message.esm_class_udhi is not single
    if message.encoding == "gsm7":
        limit, units = (160 if single else 153), [len(b) for b in bodies(text)]
        for body in bodies(text):
            assert not body.endswith(b"\x1b")  # an escape pair never split
    else:
        limit, units = (70 if single else 67), [len(b) // 2 for b in bodies(text)]
        for body in bodies(text):
            body.decode("utf-16-be")  # strict: raises if a surrogate pair was split
    assert units == info.units_per_part
    assert all(u <= limit for u in units)
    assert all(u >= limit - 1 for u in units[:-1])  # greedy: a part is short only to keep a pair whole
    assert info.units_left_in_last == limit - units[-1]
    assert "".join(decode(p, message.data_coding, message.esm_class_udhi)[0] for p in message.parts) == text


@settings(max_examples=300)
@given(any_text)
def test_any_text_round_trips_within_limits(text):
    check_message(text)


@settings(max_examples=200)
@given(gsm_text)
def test_long_gsm_text_round_trips_without_splitting_escapes(text):
    check_message(text)


@settings(max_examples=200)
@given(ucs2_text)
def test_long_ucs2_text_round_trips_without_splitting_surrogates(text):
    check_message(text)


@given(st.integers(0, 320), st.sampled_from(EXTENSION), st.integers(0, 40))
def test_an_escape_pair_at_any_offset_is_never_split(prefix, char, suffix):
    check_message("a" * prefix + char + "b" * suffix)


@given(st.integers(0, 150), emoji, st.integers(0, 40))
def test_an_emoji_at_any_offset_is_never_split(prefix, char, suffix):
    check_message("á" * prefix + char + "é" * suffix)
