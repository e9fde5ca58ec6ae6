"""The directory: contacts and groups. Services for groups, opt-out, look-up and CSV import.

Phone numbers enter through `normalize_msisdn` (E.164), so every interface stores and compares
the same form. The CSV import lives in `alerting.directory.contact_import` and is re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.base.db import rowcount, utcnow
from alerting.base.errors import InvalidInput, NotFound, Refused
from alerting.base.models import Contact, Group, GroupKind, GroupMember
from alerting.base.phones import Msisdn, mask_msisdn, normalize_msisdn, parse_msisdn
from alerting.directory import permissions
from alerting.directory.contact_import import ImportReport, Progress, import_contacts
from alerting.directory.contact_numbers import owner_clause
from alerting.directory.criteria import validate_criterion
from alerting.directory.target_refs import group_users
from audit import trail
from audit.actor import Actor

__all__ = [
    "ImportReport",
    "Msisdn",
    "Progress",
    "add_members",
    "create_group",
    "delete_group",
    "find_contact",
    "get_contact",
    "get_group",
    "get_group_by_name",
    "import_contacts",
    "list_groups",
    "mask_msisdn",
    "member_counts",
    "normalize_msisdn",
    "opt_in",
    "opt_out",
    "parse_msisdn",
    "read_number_lines",
    "remove_members",
    "update_group",
]

MAX_GROUP_NAME = 100
MAX_REASON = 500
MAX_DESCRIPTION = 2000
MAX_PASTED_LINES = 10_000
GROUP_CHANGES = frozenset({"description", "criterion", "drill_allowed"})


def create_group(
    session: Session,
    name: str,
    *,
    kind: GroupKind | str = GroupKind.STATIC,
    criterion: dict[str, Any] | None = None,
    drill_allowed: bool = False,
    description: str = "",
    actor: Actor,
) -> Group:
    """Create a static group (a membership list) or a dynamic one (a stored criterion).

    Raises InvalidInput naming the field: "name" (blank, too long, already taken), "kind",
    "criterion" (missing for a dynamic group, given for a static one, or invalid: then the field
    is the criterion's own path, e.g. "criterion.all[0].in"). Audited as "group.created".
    """
    permissions.require(actor, "groups.write", "change groups")
    clean = " ".join((name or "").split())
    if not clean or len(clean) > MAX_GROUP_NAME:
        raise InvalidInput(f"name: a group name has 1 to {MAX_GROUP_NAME} characters",
                           fields={"name": f"1 to {MAX_GROUP_NAME} characters"})
    try:
        kind = GroupKind(kind)
    except ValueError:
        raise InvalidInput(f'kind: expected static or dynamic, got "{kind}"',
                           fields={"kind": "expected static or dynamic"}) from None
    if kind is GroupKind.DYNAMIC:
        if criterion is None:
            raise InvalidInput("criterion: a dynamic group needs a criterion", fields={"criterion": "required"})
        validate_criterion(criterion, path="criterion")
    elif criterion is not None:
        raise InvalidInput("criterion: a static group has members, not a criterion",
                           fields={"criterion": "only for dynamic groups"})
    if session.scalar(select(Group.id).where(Group.name == clean)) is not None:
        raise InvalidInput(f'name: a group named "{clean}" already exists', fields={"name": "already exists"})
    group = Group(name=clean, kind=kind, criterion=criterion, drill_allowed=drill_allowed,
                  description=description)
    session.add(group)
    session.flush()
    trail.append(session, actor=actor, action="group.created", subject_type="group", subject_id=group.id,
                 payload={"name": clean, "kind": kind.value, "criterion": criterion, "drill_allowed": drill_allowed})
    return group


def get_group(session: Session, group_id: int) -> Group:
    """The group with this id. Raises NotFound."""
    group = session.get(Group, group_id)
    if group is None:
        raise NotFound(f"group {group_id} does not exist", fields={"group": "not found"})
    return group


def get_group_by_name(session: Session, name: str) -> Group:
    """The group called `name` (exact). Raises NotFound."""
    group = session.scalar(select(Group).where(Group.name == " ".join((name or "").split())))
    if group is None:
        raise NotFound(f'group "{name}" does not exist', fields={"group": "not found"})
    return group


def list_groups(session: Session) -> list[Group]:
    """Every group, by name."""
    return list(session.scalars(select(Group).order_by(Group.name)))


def member_counts(session: Session) -> dict[int, int]:
    """Members of each static group, by group id (groups without members are absent)."""
    rows = session.execute(select(GroupMember.group_id, func.count()).group_by(GroupMember.group_id))
    return {group_id: count for group_id, count in rows}


def add_members(
    session: Session,
    group: Group | str,
    msisdns: Iterable[str],
    *,
    region: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Add contacts (by number) to a static group in one statement; return how many were new members.

    Numbers are normalized against `region` (None: they must carry their country code). Raises
    InvalidInput for a malformed number ("phone") or a dynamic group ("group"), NotFound when the
    group or any number is not in the directory (nothing is added then). Audited as
    "group.members_added" when `actor` is given.
    """
    if actor is not None:
        permissions.require(actor, "groups.write", "change groups")
    target = get_group_by_name(session, group) if isinstance(group, str) else group
    if target.kind is not GroupKind.STATIC:
        raise InvalidInput(f'group: "{target.name}" is dynamic; its members come from its criterion',
                           fields={"group": "is a dynamic group"})
    wanted = sorted({normalize_msisdn(raw, region) for raw in msisdns})
    if not wanted:
        return 0
    # FOR KEY SHARE: a contact deleted meanwhile waits for this insert, then its trigger removes the
    # membership (group_members has no foreign key to contacts, see migration 0013).
    rows = session.execute(select(Contact.msisdn, Contact.id).where(Contact.msisdn.in_(wanted))
                           .with_for_update(read=True, key_share=True))
    found = {msisdn: contact_id for msisdn, contact_id in rows}
    missing = [m for m in wanted if m not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise NotFound(f"not in the directory: {shown}", fields={"msisdns": f"{len(missing)} not in the directory"})
    added = rowcount(session.execute(
        pg_insert(GroupMember)
        .values([{"group_id": target.id, "contact_id": cid} for cid in found.values()])
        .on_conflict_do_nothing()
    ))
    if actor is not None:
        trail.append(session, actor=actor, action="group.members_added", subject_type="group",
                     subject_id=target.id, payload={"group": target.name, "added": added, "asked": len(wanted)})
    return int(added)


@dataclass
class RemovedMembers:
    """What `remove_members` did: how many left the group, and the asked numbers that were not in it."""

    removed: int
    not_members: list[str]


def remove_members(
    session: Session,
    group: Group | str,
    msisdns: Iterable[str],
    *,
    region: str | None = None,
    actor: Actor,
) -> RemovedMembers:
    """Take contacts (by number) out of a static group in one statement.

    Numbers are normalized against `region`. A number that is not a member (or not in the
    directory) is reported in `not_members`, not refused: the group ends up without it either
    way. Raises InvalidInput for a malformed number ("phone") or a dynamic group ("group"),
    NotFound for an unknown group. Audited as "group.members_removed" (counts and the first
    100 numbers removed) when anything was removed.
    """
    permissions.require(actor, "groups.write", "change groups")
    target = _group_for_update(session, group)
    if target.kind is not GroupKind.STATIC:
        raise InvalidInput(f'group: "{target.name}" is dynamic; its members come from its criterion',
                           fields={"group": "is a dynamic group"})
    wanted = sorted({normalize_msisdn(raw, region) for raw in msisdns})
    if not wanted:
        return RemovedMembers(0, [])
    members = select(Contact.id).where(Contact.msisdn.in_(wanted)).scalar_subquery()
    gone = session.scalars(
        delete(GroupMember).where(GroupMember.group_id == target.id, GroupMember.contact_id.in_(members))
        .returning(GroupMember.contact_id)).all()
    removed = sorted(session.scalars(select(Contact.msisdn).where(Contact.id.in_(gone)))) if gone else []
    result = RemovedMembers(len(removed), sorted(set(wanted) - set(removed)))
    if removed:
        trail.append(session, actor=actor, action="group.members_removed", subject_type="group",
                     subject_id=target.id, payload={"group": target.name, "removed": len(removed),
                                                    "asked": len(wanted), "numbers": removed[:100]})
    return result


def update_group(session: Session, name: str, changes: Mapping[str, Any], *, actor: Actor) -> Group:
    """Change a group's description, criterion (dynamic groups) or drill marking; the name and kind stay.

    Needs groups.write (admins): marking a group for drills lets exercises reach it.

    Only the keys given change. Raises NotFound; InvalidInput naming the field ("criterion" for a
    static group or a bad criterion, with the criterion's own path; "description" too long; an
    unknown key); Refused (field "drill_allowed") when unmarking a group for drills while an
    unfinished exercise or test alert, or an active drill schedule, targets it: that drill would
    then reach a group not meant for drills. Audited as "group.updated" with before and after,
    only when something changed. The group row is locked.
    """
    permissions.require(actor, "groups.write", "change groups")
    unknown = sorted(set(changes) - GROUP_CHANGES)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: cannot be changed (only description, criterion, drill_allowed)",
                           fields={k: "cannot be changed" for k in unknown})
    target = _group_for_update(session, name)
    wanted: dict[str, Any] = {}
    if "description" in changes:
        description = str(changes["description"] or "").strip()
        if len(description) > MAX_DESCRIPTION:
            raise InvalidInput(f"description: at most {MAX_DESCRIPTION} characters",
                               fields={"description": f"at most {MAX_DESCRIPTION} characters"})
        wanted["description"] = description
    if "criterion" in changes:
        if target.kind is not GroupKind.DYNAMIC:
            raise InvalidInput("criterion: a static group has members, not a criterion",
                               fields={"criterion": "only for dynamic groups"})
        if changes["criterion"] is None:
            raise InvalidInput("criterion: a dynamic group needs a criterion", fields={"criterion": "required"})
        validate_criterion(changes["criterion"], path="criterion")
        wanted["criterion"] = changes["criterion"]
    if "drill_allowed" in changes:
        wanted["drill_allowed"] = bool(changes["drill_allowed"])
        if target.drill_allowed and not wanted["drill_allowed"]:
            users = group_users(session, target.name, drills_only=True)
            if users:
                why = f"still the drill target of {users.describe()}"
                raise Refused(f'drill_allowed: group "{target.name}" is {why}; finish or cancel them first',
                              fields={"drill_allowed": why}, subject_type="group", subject_id=target.id)
    before = {k: getattr(target, k) for k in wanted if getattr(target, k) != wanted[k]}
    if not before:
        return target
    for key in before:
        setattr(target, key, wanted[key])
    session.flush()
    trail.append(session, actor=actor, action="group.updated", subject_type="group", subject_id=target.id,
                 payload={"group": target.name, "before": before, "after": {k: wanted[k] for k in before}})
    return target


def delete_group(session: Session, name: str, *, actor: Actor) -> int:
    """Delete a group and its memberships (not its contacts); return how many members it had.

    Raises NotFound; Refused (field "group", naming them) while an unfinished alert or an active
    schedule targets, excludes or escalates to it: finish, cancel or re-aim them first. Alerts
    already finished keep the name as history. Audited as "group.deleted" with what it was.
    """
    permissions.require(actor, "groups.write", "change groups")
    target = _group_for_update(session, name)
    users = group_users(session, target.name)
    if users:
        why = f"still used by {users.describe()}"
        raise Refused(f'group "{target.name}" is {why}; finish, cancel or re-aim them first',
                      fields={"group": why}, alerts=users.alerts, schedules=users.schedules,
                      subject_type="group", subject_id=target.id)
    members = session.scalar(select(func.count()).select_from(GroupMember).where(GroupMember.group_id == target.id))
    trail.append(session, actor=actor, action="group.deleted", subject_type="group", subject_id=target.id,
                 payload={"name": target.name, "kind": target.kind.value, "criterion": target.criterion,
                          "drill_allowed": target.drill_allowed, "description": target.description,
                          "members": members})
    session.delete(target)
    session.flush()
    return int(members or 0)


def _group_for_update(session: Session, group: Group | str) -> Group:
    name = group.name if isinstance(group, Group) else " ".join((group or "").split())
    found = session.scalar(select(Group).where(Group.name == name).with_for_update())
    if found is None:
        raise NotFound(f'group "{name}" does not exist', fields={"group": "not found"})
    return found


def read_number_lines(text: str, region: str | None) -> list[str]:
    """Numbers pasted one per line (commas, semicolons and tabs also separate) → E.164, in order, once each.

    Blank lines and lines starting with "#" are skipped. All or nothing: any bad number raises
    InvalidInput whose fields name each bad line ("line 3": '"123": too short') and "numbers"
    (a summary), so the operator can fix the lines and send the same text again.
    """
    lines = (text or "").splitlines()
    if len(lines) > MAX_PASTED_LINES:
        raise InvalidInput(f"numbers: at most {MAX_PASTED_LINES} lines at once; import a CSV instead",
                           fields={"numbers": f"more than {MAX_PASTED_LINES} lines"})
    numbers: dict[str, None] = {}
    bad: dict[str, str] = {}
    for line_no, line in enumerate(lines, start=1):
        if line.strip().startswith("#"):
            continue
        for raw in (r.strip() for r in re.split(r"[,;\t]", line)):
            if not raw:
                continue
            try:
                numbers[normalize_msisdn(raw, region)] = None
            except InvalidInput as exc:
                reason = exc.field_errors.get("phone", exc.message)
                bad[f"line {line_no}"] = f'"{raw[:40]}": {reason}'
    if bad:
        first = next(iter(bad.items()))
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise InvalidInput(f"numbers: {first[0]}: {first[1]}{more}",
                           fields={"numbers": f"{len(bad)} bad line(s): {', '.join(bad)}", **bad})
    if not numbers:
        raise InvalidInput("numbers: paste at least one phone number", fields={"numbers": "no numbers"})
    return list(numbers)


def find_contact(session: Session, msisdn: str, *, region: str | None = None) -> Contact | None:
    """The contact with this number, first or further (normalized against `region`), or None.
    InvalidInput if malformed."""
    return session.scalar(select(Contact).where(owner_clause(normalize_msisdn(msisdn, region))))


def get_contact(session: Session, msisdn: str, *, region: str | None = None, lock: bool = False) -> Contact:
    """Like find_contact, but raises NotFound; `lock` takes the row FOR UPDATE."""
    number = normalize_msisdn(msisdn, region)
    query = select(Contact).where(owner_clause(number))
    contact = session.scalar(query.with_for_update(of=Contact) if lock else query)
    if contact is None:
        raise NotFound(f"no contact with number {number}", fields={"phone": "not in the directory"})
    return contact


def opt_out(session: Session, msisdn: str, reason: str, actor: Actor, *, region: str | None = None) -> Contact:
    """Stop sending to this contact (any of its numbers; targeting excludes opted-out contacts). Idempotent.

    A contact already opted out keeps its first time and reason. Raises NotFound, InvalidInput
    ("phone", or "reason" when blank). Audited as "contact.opted_out" when it changes something.
    """
    permissions.require(actor, "contacts.write", "change the directory")
    why = " ".join((reason or "").split())
    if not why:
        raise InvalidInput("reason: say why the number is opted out", fields={"reason": "required"})
    contact = get_contact(session, msisdn, region=region, lock=True)
    if contact.opted_out_at is not None:
        return contact
    contact.opted_out_at, contact.opted_out_reason = utcnow(), why[:MAX_REASON]
    session.flush()
    trail.append(session, actor=actor, action="contact.opted_out", subject_type="contact", subject_id=contact.id,
                 payload={"msisdn": contact.msisdn, "reason": contact.opted_out_reason})
    return contact


def opt_in(session: Session, msisdn: str, actor: Actor, *, region: str | None = None) -> Contact:
    """Send to this number again. Idempotent. Raises NotFound, InvalidInput. Audited as "contact.opted_in"."""
    permissions.require(actor, "contacts.write", "change the directory")
    contact = get_contact(session, msisdn, region=region, lock=True)
    if contact.opted_out_at is None:
        return contact
    before = {"opted_out_at": contact.opted_out_at, "reason": contact.opted_out_reason}
    contact.opted_out_at, contact.opted_out_reason = None, None
    session.flush()
    trail.append(session, actor=actor, action="contact.opted_in", subject_type="contact", subject_id=contact.id,
                 payload={"msisdn": contact.msisdn, "before": before})
    return contact
