"""One contact at a time (the API's contacts CRUD); bulk imports go through alerting.directory.contact_import.

Numbers are normalized to E.164 with alerting.base.phones, as every other way in does; every change
is audited. Opt-out and opt-in go through alerting.directory.contacts so their rules stay in one place.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, NotFound
from alerting.base.models import Contact, Group, GroupMember
from alerting.base.phones import normalize_msisdn
from alerting.directory import contact_numbers, permissions
from alerting.directory import contacts as directory
from audit import trail
from audit.actor import Actor

_LANGUAGE = re.compile(r"^[a-z]{2}$")
MAX_ATTRIBUTES = 50


def _check(name: str | None, language: str | None, attributes: dict[str, Any] | None) -> None:
    problems: dict[str, str] = {}
    if name is not None and len(name) > 200:
        problems["name"] = "at most 200 characters"
    if language is not None and not _LANGUAGE.match(language):
        problems["language"] = "a two-letter ISO 639-1 code such as es or en"
    if attributes is not None:
        if len(attributes) > MAX_ATTRIBUTES:
            problems["attributes"] = f"at most {MAX_ATTRIBUTES} attributes"
        for key, value in attributes.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", key):
                problems[f"attributes.{key}"] = "names are letters, digits and _ (not first), 1–64 characters"
            elif not isinstance(value, str | int | float | bool) and value is not None:
                problems[f"attributes.{key}"] = "values are strings, numbers, booleans or null"
            elif isinstance(value, str) and len(value) > 1000:
                problems[f"attributes.{key}"] = "at most 1000 characters"
    if problems:
        raise InvalidInput(f"{next(iter(problems))}: {next(iter(problems.values()))}", fields=problems)


def get_contact_by_id(session: Session, contact_id: int, *, lock: bool = False) -> Contact:
    contact = session.get(Contact, contact_id, with_for_update=lock)
    if contact is None:
        raise NotFound(f"contact {contact_id} does not exist", fields={"contact_id": "not found"})
    return contact


def contact_groups(session: Session, contact_id: int) -> list[str]:
    return list(session.scalars(select(Group.name).join(GroupMember, GroupMember.group_id == Group.id)
                                .where(GroupMember.contact_id == contact_id).order_by(Group.name)))


def create_contact(session: Session, msisdn: str, *, name: str = "", language: str = "es",
                   attributes: dict[str, Any] | None = None, groups: list[str] | None = None,
                   more_numbers: list[str] | None = None, region: str | None, actor: Actor) -> Contact:
    """Add one contact (its further numbers, tried in order after the first, and its static group
    memberships). Raises InvalidInput naming the field (`more_numbers[i]` for a further number)."""
    permissions.require(actor, "contacts.write", "change the directory")
    number = normalize_msisdn(msisdn, region)
    _check(name, language, attributes or {})
    if session.scalar(select(Contact.id).where(Contact.msisdn == number)) is not None:
        raise InvalidInput(f"msisdn: {number} is already in the directory", fields={"msisdn": "already exists"})
    contact_numbers.check_first_number(session, number)
    contact_numbers.check_more_numbers(session, more_numbers or [], first=number, contact_id=None, region=region)
    contact = Contact(msisdn=number, name=name, language=language, attributes=dict(attributes or {}))
    session.add(contact)
    session.flush()
    trail.append(session, actor=actor, action="contact.created", subject_type="contact", subject_id=contact.id,
                 payload={"msisdn": number, "name": name, "language": language})
    if more_numbers:
        contact_numbers.set_more_numbers(session, contact, more_numbers, region=region, actor=actor)
    for group in groups or []:
        directory.add_members(session, group, [number], actor=actor)
    return contact


def update_contact(session: Session, contact_id: int, changes: dict[str, Any], *, actor: Actor,
                   region: str | None = None) -> Contact:
    """Change name, language, attributes, the further numbers (`more_numbers`: the whole list, in
    order, [] for none; numbers without a country code read against `region`), or opt the
    contact out/in (opt-out needs a reason). Raises InvalidInput naming the field."""
    permissions.require(actor, "contacts.write", "change the directory")
    contact = get_contact_by_id(session, contact_id, lock=True)
    _check(changes.get("name"), changes.get("language"), changes.get("attributes"))
    before = {k: getattr(contact, k) for k in ("name", "language", "attributes") if k in changes}
    for key in ("name", "language", "attributes"):
        if key in changes:
            setattr(contact, key, changes[key])
    if before:
        contact.updated_at = utcnow()
        trail.append(session, actor=actor, action="contact.updated", subject_type="contact", subject_id=contact.id,
                     payload={"before": before, "after": {k: changes[k] for k in before}})
    if changes.get("more_numbers") is not None:
        contact_numbers.set_more_numbers(session, contact, changes["more_numbers"], region=region, actor=actor)
    if changes.get("opted_out") is True:
        directory.opt_out(session, contact.msisdn, changes.get("opt_out_reason") or "", actor)
    elif changes.get("opted_out") is False:
        directory.opt_in(session, contact.msisdn, actor)
    return contact


def delete_contact(session: Session, contact_id: int, *, actor: Actor) -> None:
    """Remove a contact; its past deliveries keep the number (contact_id becomes NULL)."""
    permissions.require(actor, "contacts.write", "change the directory")
    contact = get_contact_by_id(session, contact_id, lock=True)
    trail.append(session, actor=actor, action="contact.deleted", subject_type="contact", subject_id=contact.id,
                 payload={"msisdn": contact.msisdn})
    session.execute(delete(Contact).where(Contact.id == contact.id))
