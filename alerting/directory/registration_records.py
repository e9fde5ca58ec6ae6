"""Registrations as the admin reads them: counts by state, a filtered page newest first, and every
row for a CSV export.

A pending request past its time shows as expired even before the scheduler's pass has marked it
(the same rule as `registration.answer_pending`), so the list never shows a request as waiting
when a confirmation would be refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from alerting.base.errors import InvalidInput
from alerting.base.models import Contact, Group, Registration, RegistrationState
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor

S = RegistrationState
STATES = tuple(s.value for s in RegistrationState)
PAGE = 50
CSV_COLUMNS = ("id", "msisdn", "state", "language", "word", "keyword", "zone", "group", "sender", "requested_at",
               "expires_at", "decided_at", "reason", "contact_id", "opted_out")

_OVERDUE = and_(Registration.state == S.PENDING, Registration.expires_at <= func.now())
EFFECTIVE_STATE = case((_OVERDUE, literal("expired")), else_=Registration.state).label("effective_state")


def _filtered(state: str | None, q: str | None) -> Select[Any]:
    query = (select(Registration, EFFECTIVE_STATE, Group.name.label("group_name"),
                    Contact.opted_out_at.label("opted_out_at"))
             .outerjoin(Group, Group.id == Registration.group_id)
             .outerjoin(Contact, Contact.id == Registration.contact_id))
    if state:
        if state not in STATES:
            raise InvalidInput(f"state: one of {', '.join(STATES)}", fields={"state": f"one of {', '.join(STATES)}"})
        if state == S.PENDING.value:
            query = query.where(Registration.state == S.PENDING, ~_OVERDUE)
        elif state == S.EXPIRED.value:
            query = query.where(or_(Registration.state == S.EXPIRED, _OVERDUE))
        else:
            query = query.where(Registration.state == state)
    digits = "".join(ch for ch in (q or "") if ch.isdigit())[:16]
    if digits:
        query = query.where(Registration.msisdn.like(f"%{digits}%"))
    return query


def _view(row: Any) -> dict[str, Any]:
    r: Registration = row[0]
    return {"id": r.id, "msisdn": r.msisdn, "state": row.effective_state, "language": r.language,
            "word": r.word.upper(), "keyword": r.keyword.upper() if r.keyword else None, "zone": r.zone_name,
            "group": row.group_name, "sender": r.sender_name, "requested_at": r.requested_at,
            "expires_at": r.expires_at, "decided_at": r.decided_at, "reason": r.reason, "contact_id": r.contact_id,
            "opted_out": row.opted_out_at is not None}


def registration_counts(session: Session) -> dict[str, int]:
    """How many registrations are in each (effective) state; every state named, zeros included."""
    counts = dict.fromkeys(STATES, 0)
    for state, n in session.execute(select(EFFECTIVE_STATE, func.count()).group_by(EFFECTIVE_STATE)).all():
        counts[str(state)] = int(n)
    return counts


def list_registrations(session: Session, *, state: str | None = None, q: str | None = None,
                       before: int | None = None, limit: int = PAGE) -> tuple[list[dict[str, Any]], int | None]:
    """One page of registrations, newest first, in `state` (effective) and whose number contains
    the digits of `q`, with ids below `before`; and the cursor of the next page (None: the last).
    Raises InvalidInput for an unknown state."""
    query = _filtered(state, q)
    if before is not None:
        query = query.where(Registration.id < before)
    rows = session.execute(query.order_by(Registration.id.desc()).limit(limit + 1)).all()
    page = [_view(r) for r in rows[:limit]]
    return page, (page[-1]["id"] if len(rows) > limit else None)


def each_registration(session: Session, *, state: str | None = None, q: str | None = None) -> Iterator[dict[str, Any]]:
    """Every registration matching the filter, newest first, streamed (the CSV export)."""
    query = _filtered(state, q).order_by(Registration.id.desc()).execution_options(yield_per=1000)
    for row in session.execute(query):
        yield _view(row)


def csv_row(view: dict[str, Any]) -> list[Any]:
    """A registration as a CSV row in CSV_COLUMNS order (times in ISO 8601, UTC)."""
    return [view[c].isoformat() if hasattr(view[c], "isoformat") else ("" if view[c] is None else view[c])
            for c in CSV_COLUMNS]


def record_export(session: Session, *, state: str | None, q: str | None, actor: Actor) -> None:
    """Check and audit an export of registrations (people's numbers) before it starts. Raises Refused."""
    permissions.require(actor, "registration.manage", "export registrations")
    trail.append(session, actor=actor, action="registration.exported", subject_type="registration",
                 payload={"state": state, "number_contains": q or None})
