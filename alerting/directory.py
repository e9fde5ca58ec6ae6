"""The directory: contacts and groups. Services for groups, opt-out, look-up and CSV import.

Phone numbers enter through `normalize_msisdn` (E.164), so every interface stores and compares
the same form. The CSV import lives in `alerting.contact_import` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.contact_import import ImportReport, Progress, import_contacts
from alerting.criteria import validate_criterion
from alerting.db import utcnow
from alerting.errors import InvalidInput, NotFound
from alerting.models import Contact, Group, GroupKind, GroupMember
from alerting.phones import Msisdn, mask_msisdn, normalize_msisdn, parse_msisdn
from audit import trail
from audit.actor import Actor

__all__ = [
    "ImportReport",
    "Msisdn",
    "Progress",
    "add_members",
    "create_group",
    "find_contact",
    "get_contact",
    "get_group_by_name",
    "import_contacts",
    "list_groups",
    "mask_msisdn",
    "member_counts",
    "normalize_msisdn",
    "opt_in",
    "opt_out",
    "parse_msisdn",
]

MAX_GROUP_NAME = 100
MAX_REASON = 500


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
    added = session.execute(
        pg_insert(GroupMember)
        .values([{"group_id": target.id, "contact_id": cid} for cid in found.values()])
        .on_conflict_do_nothing()
    ).rowcount
    if actor is not None:
        trail.append(session, actor=actor, action="group.members_added", subject_type="group",
                     subject_id=target.id, payload={"group": target.name, "added": added, "asked": len(wanted)})
    return int(added)


def find_contact(session: Session, msisdn: str, *, region: str | None = None) -> Contact | None:
    """The contact with this number (normalized against `region`), or None. InvalidInput if malformed."""
    return session.scalar(select(Contact).where(Contact.msisdn == normalize_msisdn(msisdn, region)))


def get_contact(session: Session, msisdn: str, *, region: str | None = None, lock: bool = False) -> Contact:
    """Like find_contact, but raises NotFound; `lock` takes the row FOR UPDATE."""
    number = normalize_msisdn(msisdn, region)
    contact = session.scalar(select(Contact).where(Contact.msisdn == number).with_for_update(of=Contact) if lock
                             else select(Contact).where(Contact.msisdn == number))
    if contact is None:
        raise NotFound(f"no contact with number {number}", fields={"phone": "not in the directory"})
    return contact


def opt_out(session: Session, msisdn: str, reason: str, actor: Actor, *, region: str | None = None) -> Contact:
    """Stop sending to this number (targeting excludes opted-out contacts). Idempotent.

    A contact already opted out keeps its first time and reason. Raises NotFound, InvalidInput
    ("phone", or "reason" when blank). Audited as "contact.opted_out" when it changes something.
    """
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
    contact = get_contact(session, msisdn, region=region, lock=True)
    if contact.opted_out_at is None:
        return contact
    before = {"opted_out_at": contact.opted_out_at, "reason": contact.opted_out_reason}
    contact.opted_out_at, contact.opted_out_reason = None, None
    session.flush()
    trail.append(session, actor=actor, action="contact.opted_in", subject_type="contact", subject_id=contact.id,
                 payload={"msisdn": contact.msisdn, "before": before})
    return contact
