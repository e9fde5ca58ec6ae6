"""Phone numbers: MsisdnParser (the import's quick path) gives exactly what parse_msisdn gives."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from alerting.base.errors import InvalidInput
from alerting.base.phones import Msisdn, MsisdnParser, parse_msisdn

_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE,
          PhoneNumberType.PREMIUM_RATE, PhoneNumberType.VOIP, PhoneNumberType.SHARED_COST,
          PhoneNumberType.UAN, PhoneNumberType.PAGER, PhoneNumberType.PERSONAL_NUMBER)
_SEPARATORS = (" ", " ", "-", "-", ".", "(", ")", "  ", "/", "\u00a0", "x", "#", ",", ";", "a")


def _outcome(parse, raw: str) -> Msisdn | str:  # type: ignore[no-untyped-def]
    try:
        return parse(raw)  # type: ignore[no-any-return]
    except InvalidInput as exc:
        return f"refused: {exc}"


def _digits_like(rnd: random.Random, region: str) -> str:
    """A national number shaped like one of the region's: an example's prefix, then random digits."""
    example = phonenumbers.example_number_for_type(region, rnd.choice(_TYPES))
    if example is None or rnd.random() < 0.15:
        return "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 14)))
    nsn = phonenumbers.national_significant_number(example)
    keep = rnd.randint(1, len(nsn))
    length = len(nsn) + rnd.choice((0, 0, 0, 0, -1, 1, -2))
    return nsn[:keep] + "".join(rnd.choice("0123456789") for _ in range(max(0, length - keep)))


def _spell(rnd: random.Random, region: str, digits: str) -> str:
    """`digits` written as people and spreadsheets write numbers, oddities included."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    code = str(meta.country_code)
    form = rnd.random()
    if form < 0.3:
        text = f"+{code}{digits}"
    elif form < 0.35:
        text = f"{code}{digits}"
    elif form < 0.4:
        text = f"00{code}{digits}"
    elif form < 0.45:
        text = f"{meta.national_prefix or '0'}{digits}"
    elif form < 0.5:
        text = f"+{rnd.choice(('1', '34', '54', '598', '7', '44', '39'))}{digits}"
    else:
        text = digits
    spelt = []
    for i, ch in enumerate(text):
        if i and rnd.random() < 0.25:
            spelt.append(rnd.choice(_SEPARATORS[:9] if rnd.random() < 0.9 else _SEPARATORS))
        spelt.append(ch)
    text = "".join(spelt)
    if rnd.random() < 0.1:
        text = f"({text[:3]}){text[3:]}"
    if rnd.random() < 0.1:
        text = rnd.choice((" ", "\t", "\u00a0")) + text + rnd.choice(("", " ", "  "))
    if rnd.random() < 0.02:
        text = text.replace("5", "\uff15")  # a full-width digit
    return text


@pytest.mark.parametrize(("region", "size"), [
    ("CL", 30_000),  # the default region
    ("AR", 6_000), ("BR", 6_000), ("MX", 4_000), ("CO", 4_000), ("PE", 4_000), ("UY", 4_000),
    ("ES", 4_000), ("DE", 4_000), ("FR", 4_000), ("IT", 2_000), ("US", 2_000), ("GB", 2_000),
])
def test_quick_path_agrees_with_phonenumbers_parse_on_a_random_sample(region: str, size: int) -> None:
    rnd = random.Random(f"msisdn-{region}")
    raws = [_spell(rnd, region, _digits_like(rnd, region)) for _ in range(size)]
    parser = MsisdnParser(region)
    full = [_outcome(lambda r: parse_msisdn(r, region), raw) for raw in raws]
    quick = [_outcome(parser.parse, raw) for raw in raws]
    disagreements = [(raw, f, q) for raw, f, q in zip(raws, full, quick, strict=True) if f != q]
    assert disagreements[:5] == []
    valid = sum(1 for q in quick if not isinstance(q, str))
    assert valid > size // 10  # the sample holds plenty of valid numbers, not only refusals


def test_quick_path_takes_most_plainly_written_numbers_of_the_default_region() -> None:
    rnd = random.Random("plain-cl")
    parser = MsisdnParser("CL")
    numbers = [str(940_000_000 + rnd.randrange(29_000_000)) for _ in range(2000)]  # as bench/import.py writes
    for n in numbers:
        forms = (f"+56{n}", f"{n[0]} {n[1:5]} {n[5:]}", n, f"+56 {n[0]} {n[1:5]}-{n[5:]}", f"({n[0]}) {n[1:]}")
        assert {parser.parse(raw) for raw in forms} == {parse_msisdn(n, "CL")}
    assert len(parser._slow) < 0.2 * len(numbers)  # the quick path, not the cached full parse, took most


def test_parser_refuses_with_parse_msisdns_reason_every_time() -> None:
    parser = MsisdnParser("CL")
    for _ in range(2):  # the second time from the cache of slow outcomes
        with pytest.raises(InvalidInput) as caught:
            parser.parse("no tiene")
        assert caught.value.details == {"fields": {"phone": "not a phone number"}}
        with pytest.raises(InvalidInput, match="scientific notation"):
            parser.parse("5.6912E+10")
    assert parser.parse("600 123 4567") == parse_msisdn("600 123 4567", "CL")
