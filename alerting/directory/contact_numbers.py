"""A contact's several phone numbers, in the order they are tried.

The first number is `contacts.msisdn`: the one targeting reads, fan-out writes and people know.
Up to two more live in `contact_numbers` (positions 2 and 3, migration 0028). A message that
fails for good on one number is tried on the next (broadcast/next_numbers.py); a reply or a
STOP from any of them is that contact's (broadcast/replies.py). A number belongs to one contact:
as a first number or a further one, never both, never twice.

Every way in (API, console, CSV import) checks numbers here or with the same rules and names the
field: `more_numbers[0]` is the second number, `more_numbers[1]` the third.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput
from alerting.base.models import Contact, ContactNumber
from alerting.base.models.directory import MORE_NUMBER_POSITIONS
from alerting.base.phones import mask_msisdn, parse_msisdn
from audit import trail
from audit.actor import Actor

MAX_MORE_NUMBERS = len(MORE_NUMBER_POSITIONS)


def more_numbers(session: Session, contact_id: int) -> list[str]:
    """The contact's second and third numbers, in order (empty when it has only one)."""
    return list(session.scalars(select(ContactNumber.msisdn).where(ContactNumber.contact_id == contact_id)
                                .order_by(ContactNumber.position)))


def more_numbers_of(session: Session, contact_ids: Iterable[int]) -> dict[int, list[str]]:
    """More numbers of each of these contacts (a page of a list), by contact id; one statement."""
    ids = sorted(set(contact_ids))
    out: dict[int, list[str]] = {}
    if not ids:
        return out
    for contact_id, msisdn in session.execute(select(ContactNumber.contact_id, ContactNumber.msisdn)
                                              .where(ContactNumber.contact_id.in_(ids))
                                              .order_by(ContactNumber.contact_id, ContactNumber.position)):
        out.setdefault(contact_id, []).append(msisdn)
    return out


def owner_clause(number: str) -> ColumnElement[bool]:
    """A condition on Contact: this number is its first or one of its more numbers."""
    return or_(Contact.msisdn == number, Contact.id == select(ContactNumber.contact_id)
               .where(ContactNumber.msisdn == number).scalar_subquery())


def owner_of(session: Session, number: str) -> tuple[int, int] | None:
    """(contact id, position) of the contact that has this E.164 number, position 1 for a first
    number; None when nobody has it."""
    row = session.execute(select(Contact.id).where(Contact.msisdn == number)).first()
    if row is not None:
        return int(row[0]), 1
    more = session.execute(select(ContactNumber.contact_id, ContactNumber.position)
                           .where(ContactNumber.msisdn == number)).first()
    return None if more is None else (int(more[0]), int(more[1]))


def check_first_number(session: Session, number: str, *, field: str = "msisdn") -> None:
    """Refuse a new first number that is already another contact's second or third (InvalidInput)."""
    owner = owner_of(session, number)
    if owner is not None and owner[1] > 1:
        raise InvalidInput(f"{field}: {number} is already number {owner[1]} of another contact",
                           fields={field: f"already number {owner[1]} of another contact"})


def check_more_numbers(session: Session, raw: Sequence[str], *, first: str, contact_id: int | None,
                       region: str | None) -> list[str]:
    """Normalize a contact's more numbers (second, third), in order, blanks left out.

    Raises InvalidInput naming each bad one (`more_numbers[i]`): more than two, not a phone
    number, the same as the first number or as another of them, or a number of another contact.
    A number that is not a mobile is accepted (as the import does, with a warning there).
    """
    if len(raw) > MAX_MORE_NUMBERS:
        raise InvalidInput(f"more_numbers: at most {MAX_MORE_NUMBERS} numbers besides the first",
                           fields={"more_numbers": f"at most {MAX_MORE_NUMBERS}"})
    problems: dict[str, str] = {}
    numbers: list[str] = []
    for i, value in enumerate(raw):
        field = f"more_numbers[{i}]"
        if not (value or "").strip():
            continue
        try:
            number = parse_msisdn(value, region).e164
        except InvalidInput as exc:
            problems[field] = str(exc.details["fields"]["phone"])  # type: ignore[index]
            continue
        if number == first or number in numbers:
            problems[field] = "the same number twice"
            continue
        owner = owner_of(session, number)
        if owner is not None and owner[0] != contact_id:
            problems[field] = "already a number of another contact"
            continue
        numbers.append(number)
    if problems:
        field, reason = next(iter(problems.items()))
        raise InvalidInput(f"{field}: {reason}", fields=problems)
    return numbers


def set_more_numbers(session: Session, contact: Contact, raw: Sequence[str], *, region: str | None,
                     actor: Actor) -> list[str]:
    """Replace the contact's second and third numbers (`raw`, in order; [] leaves the first alone).

    The caller holds the contact's row lock (its services take it FOR UPDATE). Raises
    InvalidInput as check_more_numbers. Audited as "contact.numbers_changed" (last 4 digits only)
    when something changed; returns the numbers now held.
    """
    numbers = check_more_numbers(session, raw, first=contact.msisdn, contact_id=contact.id, region=region)
    before = more_numbers(session, contact.id)
    if numbers == before:
        return numbers
    session.execute(delete(ContactNumber).where(ContactNumber.contact_id == contact.id))
    session.flush()  # the unique number index sees the old rows gone before the new ones land
    session.add_all(ContactNumber(contact_id=contact.id, position=position, msisdn=number)
                    for position, number in zip(MORE_NUMBER_POSITIONS, numbers, strict=False))
    contact.updated_at = utcnow()
    session.flush()
    trail.append(session, actor=actor, action="contact.numbers_changed", subject_type="contact",
                 subject_id=contact.id, payload={"before": [mask_msisdn(n) for n in before],
                                                 "after": [mask_msisdn(n) for n in numbers]})
    return numbers
