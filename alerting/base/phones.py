"""Phone numbers: parsing with `phonenumbers` into E.164, the one format stored and sent.

Every part of Sirena normalizes a number through `normalize_msisdn` (re-exported by
`alerting.directory.contacts`), so a number typed in the console, found in a CSV or received from a
carrier compares equal to the one in the directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberDesc, PhoneNumberFormat, PhoneNumberType

from alerting.base.errors import InvalidInput

# Types a handset can receive an SMS on. FIXED_LINE_OR_MOBILE is what plans that do not
# distinguish the two (US, CA, ...) report for every number.
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_TYPE_NAMES = {getattr(PhoneNumberType, n): n.lower() for n in dir(PhoneNumberType) if n.isupper()}
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown or missing country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
# Spreadsheets turn long digit strings into 5.69123E+10, losing digits for good.
_SCIENTIFIC = re.compile(r"^\s*\d+([.,]\d+)?[eE]\+?\d+\s*$")
_MAX_INPUT = 64


@dataclass(frozen=True, slots=True)
class Msisdn:
    """A parsed number: its E.164 form, its type and the region it belongs to."""

    e164: str
    kind: str  # phonenumbers' type, lower case: "mobile", "fixed_line", "voip", ...
    region: str = "ZZ"  # ISO 3166 region of the number ("CL", "US"); ZZ when no single one

    @property
    def mobile(self) -> bool:
        return self.kind in ("mobile", "fixed_line_or_mobile")


# Where a region's metadata gives mobiles and landlines the same patterns (phonenumbers says
# "fixed_line_or_mobile" for all), the national plan still tells them apart by the first digits:
# every Chilean mobile number is +56 9 … (Subtel's plan); Santiago's landlines are +56 2 2…
MOBILE_LEADING: dict[str, tuple[str, ...]] = {"CL": ("9",)}


def sms_doubts(number: Msisdn, region: str) -> list[str]:
    """Why an SMS may not reach `number`, in a directory of `region` (SIRENA_DEFAULT_REGION): not a
    mobile by phonenumbers' type, a landline by the national plan (MOBILE_LEADING), or a number
    of another country. Empty: nothing to doubt. The CSV import warns with these, and imports."""
    doubts = []
    if not number.mobile:
        doubts.append(f"not a mobile number ({number.kind.replace('_', ' ')}); SMS may not reach it")
    elif number.kind == "fixed_line_or_mobile" and number.region in MOBILE_LEADING:
        national = number.e164[1 + len(str(phonenumbers.country_code_for_region(number.region))):]
        leading = MOBILE_LEADING[number.region]
        if not national.startswith(leading):
            doubts.append(f"a landline by its number (mobile numbers in {number.region} start with "
                          f"{' or '.join(leading)}); SMS may not reach it")
    if number.region != region.upper():
        doubts.append(f"a number of {number.region}, not {region.upper()}: your carriers may not reach it, "
                      "or only at international rates")
    return doubts


def parse_msisdn(raw: str, region: str | None) -> Msisdn:
    """Parse `raw` against `region` (ISO 3166, e.g. "CL"; None accepts only "+..." numbers).

    Raises InvalidInput with fields={"phone": reason} when the number is blank, malformed or
    not a valid number of any plan. A valid number that is not mobile is returned, not refused:
    callers decide (the CSV import warns).
    """
    text = (raw or "").strip()
    if not text:
        raise _invalid(raw, "missing")
    if len(text) > _MAX_INPUT:
        raise _invalid(raw, f"longer than {_MAX_INPUT} characters")
    if _SCIENTIFIC.match(text):
        raise _invalid(raw, "written in scientific notation by a spreadsheet; format the column as text")
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, str(exc))
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and not region:
            reason = "needs the country code, e.g. +56 9 1234 5678"
        raise _invalid(raw, reason) from None
    # number_type() is what is_valid_number() computes, plus the type: one pass, not two.
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        raise _invalid(raw, _invalid_reason(number))
    return Msisdn(phonenumbers.format_number(number, PhoneNumberFormat.E164), _TYPE_NAMES.get(kind, "unknown"),
                  phonenumbers.region_code_for_number(number) or "ZZ")


class MsisdnParser:
    """`parse_msisdn` against one default region for many numbers (a CSV import): same results, faster.

    A number spelt plainly, as most are (`961234567`, `9 6123 4567`, `+56 9 6123-4567`), is checked
    with the region's own compiled metadata (`PhoneMetadata`: its national number patterns and
    possible lengths, in the order `phonenumbers.number_type` tries them) instead of a full
    `phonenumbers.parse` and `number_type`, which cost ~8 times as much. Anything else — other
    punctuation, letters, an international or national prefix, another country code, a number
    that the quick check does not find valid — goes through `parse_msisdn` itself, so every
    refusal and its reason come from there. `tests/alerting/test_phones.py` checks on a large
    random sample that both agree. Outcomes of the slow path are cached per raw string (bad
    values such as "no tiene" repeat).
    """

    _SLOW_CACHE_MAX = 50_000

    def __init__(self, region: str | None) -> None:
        self.region = region.upper() if region else None
        self._slow: dict[str, Msisdn | str] = {}  # raw → number or reason
        self._plan = _RegionPlan.of(self.region) if self.region else None

    def parse(self, raw: str) -> Msisdn:
        """As `parse_msisdn(raw, region)`: the Msisdn, or InvalidInput naming field "phone"."""
        plan = self._plan
        if plan is not None and len(raw) <= _MAX_INPUT and (plain := _PLAIN.fullmatch(raw)) is not None:
            found = plan.check(plain[1], plain[2].translate(_NO_SEPARATORS))
            if found is not None:
                return found
        outcome = self._slow.get(raw)
        if outcome is None:
            try:
                outcome = parse_msisdn(raw, self.region)
            except InvalidInput as exc:
                outcome = exc.field_errors["phone"]
            if len(self._slow) >= self._SLOW_CACHE_MAX:
                self._slow.clear()
            self._slow[raw] = outcome
        if isinstance(outcome, str):
            raise _invalid(raw, outcome)
        return outcome


# Digits, with spaces, dashes, dots or brackets between them and maybe one leading "+": what
# phonenumbers reads as those digits and nothing else (no extension, letters, RFC 3966 or IDD).
_PLAIN = re.compile(r"\s*(\+?)(\(?[0-9][0-9 ().\-]*)\s*")
_NO_SEPARATORS = str.maketrans("", "", " ().-")
_MAX_NSN = 17  # phonenumbers' longest national significant number
_DESC_ORDER = (  # phonenumbers' _number_type_helper order: the first that matches names the type
    ("premium_rate", PhoneNumberType.PREMIUM_RATE), ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST), ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER), ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN), ("voicemail", PhoneNumberType.VOICEMAIL),
)


class _Desc:
    """A PhoneNumberDesc compiled once: possible lengths, then the whole-number pattern."""

    __slots__ = ("lengths", "pattern")

    def __init__(self, desc: PhoneNumberDesc | None) -> None:
        pattern = desc.national_number_pattern if desc is not None else None
        self.pattern = re.compile(pattern) if pattern else None
        self.lengths = frozenset(desc.possible_length) if desc is not None and desc.possible_length else None

    def matches(self, national: str) -> bool:
        if self.pattern is None or (self.lengths is not None and len(national) not in self.lengths):
            return False
        return self.pattern.fullmatch(national) is not None


@dataclass(frozen=True, slots=True)
class _RegionPlan:
    """What `MsisdnParser` needs of one region's numbering plan, from phonenumbers' metadata."""

    region: str
    country_code: str
    idd: re.Pattern[str] | None
    national_prefix: re.Pattern[str] | None
    general: _Desc
    types: tuple[tuple[_Desc, str], ...]
    fixed_line: _Desc
    mobile: _Desc
    same_mobile_and_fixed: bool
    _kinds: dict[int, re.Pattern[str] | None] = field(default_factory=dict)  # by number length

    @classmethod
    def of(cls, region: str) -> _RegionPlan | None:
        """The plan, or None when the quick check cannot stand in for parsing (every number then parses)."""
        meta = PhoneMetadata.metadata_for_region(region, None)
        if meta is None or meta.country_code is None \
                or phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(meta.country_code) != (region,):
            return None  # a calling code shared by several regions (+1, +7, +44): parse decides which
        code = str(meta.country_code)
        if any(int(code[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE for n in range(1, len(code))):
            return None
        plan = cls(
            region=region,
            country_code=code,
            idd=re.compile(meta.international_prefix) if meta.international_prefix else None,
            national_prefix=re.compile(meta.national_prefix_for_parsing) if meta.national_prefix_for_parsing else None,
            general=_Desc(meta.general_desc),
            types=tuple((_Desc(getattr(meta, attr)), _TYPE_NAMES[kind]) for attr, kind in _DESC_ORDER
                        if getattr(meta, attr) is not None),
            fixed_line=_Desc(meta.fixed_line),
            mobile=_Desc(meta.mobile),
            same_mobile_and_fixed=bool(meta.same_mobile_and_fixed_line_pattern),
        )
        plan._kinds.update((n, plan._kinds_of_length(n)) for n in range(1, _MAX_NSN + 1))
        return plan

    def check(self, plus: str, digits: str) -> Msisdn | None:
        """The number if `plus` + `digits` is plainly a valid number of this region; None: parse it."""
        code = self.country_code
        if plus:
            if not digits.startswith(code):
                return None  # another country: parse finds which
            national = digits[len(code):]
        else:
            if digits.startswith(code) or (self.idd is not None and self.idd.match(digits)):
                return None  # maybe dialled with the country code or an international prefix
            national = digits
        if (self.national_prefix is not None and self.national_prefix.match(national)) \
                or not self.general.matches(national):
            return None
        kinds = self._kinds.get(len(national))
        found = kinds.fullmatch(national) if kinds is not None else None
        if found is None:
            return None
        kind = found.lastgroup
        if kind == "fixed_line" and (self.same_mobile_and_fixed or self.mobile.matches(national)):
            kind = "fixed_line_or_mobile"
        return Msisdn(f"+{code}{national}", kind or "unknown", self.region)

    def _kinds_of_length(self, length: int) -> re.Pattern[str] | None:
        """One pattern for the descriptions a number of `length` digits may match, in number_type's
        order, each a named alternative: the first that matches the whole number is the type."""
        ordered = [*self.types, (self.fixed_line, "fixed_line")]
        if not self.same_mobile_and_fixed:
            ordered.append((self.mobile, "mobile"))
        alternatives = [f"(?P<{kind}>{desc.pattern.pattern})" for desc, kind in ordered
                        if desc.pattern is not None and (desc.lengths is None or length in desc.lengths)]
        return re.compile("|".join(alternatives)) if alternatives else None


def normalize_msisdn(raw: str, region: str | None) -> str:
    """`raw` in E.164 ("+56912345678"). Raises InvalidInput naming field "phone" and the reason."""
    return parse_msisdn(raw, region).e164


def source_msisdn(source_addr: str) -> str:
    """The number an inbound SMS came from, as the directory stores numbers: a deliver_sm's
    source_addr in international form without its plus (`56912345678`) or with `00` gets the plus;
    anything else (a short or alphanumeric address) is kept as it is."""
    digits = source_addr.strip()
    if digits.startswith("+"):
        return digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    return "+" + digits if digits.isdigit() and len(digits) >= 10 else digits


def mask_msisdn(msisdn: str) -> str:
    """A number for logs: only its last 4 digits."""
    return "…" + msisdn[-4:] if len(msisdn) > 4 else "…"


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == phonenumbers.ValidationResult.TOO_SHORT:
        return "too short"
    if possible == phonenumbers.ValidationResult.TOO_LONG:
        return "too long"
    code = number.country_code
    where = None if code is None else phonenumbers.region_code_for_country_code(code)
    if where in ("ZZ", None):
        return f"unknown country code +{number.country_code}"
    return f"not a valid number in {where}"


def _invalid(raw: str, reason: str) -> InvalidInput:
    return InvalidInput(f'phone: {reason} ("{(raw or "").strip()[:_MAX_INPUT]}")', fields={"phone": reason})
