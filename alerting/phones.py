"""Phone numbers: parsing with `phonenumbers` into E.164, the one format stored and sent.

Every part of Sirena normalizes a number through `normalize_msisdn` (re-exported by
`alerting.directory`), so a number typed in the console, found in a CSV or received from a
carrier compares equal to the one in the directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from alerting.errors import InvalidInput

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
    """A parsed number: its E.164 form and whether an SMS can reach it."""

    e164: str
    kind: str  # phonenumbers' type, lower case: "mobile", "fixed_line", "voip", ...

    @property
    def mobile(self) -> bool:
        return self.kind in ("mobile", "fixed_line_or_mobile")


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
    return Msisdn(phonenumbers.format_number(number, PhoneNumberFormat.E164), _TYPE_NAMES.get(kind, "unknown"))


def normalize_msisdn(raw: str, region: str | None) -> str:
    """`raw` in E.164 ("+56912345678"). Raises InvalidInput naming field "phone" and the reason."""
    return parse_msisdn(raw, region).e164


def mask_msisdn(msisdn: str) -> str:
    """A number for logs: only its last 4 digits."""
    return "…" + msisdn[-4:] if len(msisdn) > 4 else "…"


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == phonenumbers.ValidationResult.TOO_SHORT:
        return "too short"
    if possible == phonenumbers.ValidationResult.TOO_LONG:
        return "too long"
    where = phonenumbers.region_code_for_country_code(number.country_code)
    if where in ("ZZ", None):
        return f"unknown country code +{number.country_code}"
    return f"not a valid number in {where}"


def _invalid(raw: str, reason: str) -> InvalidInput:
    return InvalidInput(f'phone: {reason} ("{(raw or "").strip()[:_MAX_INPUT]}")', fields={"phone": reason})
