"""Incidents: the alerts, corrections and cancellation notices sent about one event, grouped so
that they can be reviewed together afterwards (the after-action report: alerting/alerts/report.py).

An operator opens an incident; an alert joins it when composed (`AlertDraft.incident_id`, from the
console, the API or `sirena cap import --incident`) or later (`add_to_incident`). A correction or
cancellation notice joins its original's incident by itself (`incident_for_new_alert`, called by
compose, and the correction services copy it), and adding or removing an alert moves its whole
family (the alert, what it corrects, what corrects it) so that an incident never holds half of one.
Every change is audited with subject `incident` and the alert's id in `payload.alert_id`, so it
shows in the incident's trail and in each alert's own.

This module imports no other alert service (lifecycle imports it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, InvalidTransition, NotFound
from alerting.base.models import Alert, Incident
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor

MAX_TITLE = 200
MAX_DESCRIPTION = 4000
REFERENCE = re.compile(r"^I-\d{4}-\d{6}$")


def get_incident(session: Session, incident_id: int, *, lock: bool = False) -> Incident:
    """The incident, optionally locked FOR UPDATE. Raises NotFound."""
    incident = session.get(Incident, incident_id, with_for_update=lock)
    if incident is None:
        raise NotFound(f"incident {incident_id} does not exist", incident_id=incident_id)
    return incident


def incident_id_of(session: Session, raw: str, *, field: str = "incident") -> int:
    """The id of the incident `raw` names: its id ("7") or reference ("I-2026-000007"; case and
    spaces do not matter). Raises InvalidInput naming `field` for anything else, NotFound when no
    such incident exists."""
    value = str(raw).strip().upper()
    if value.isdigit() and len(value) <= 9:
        found = session.scalar(select(Incident.id).where(Incident.id == int(value)))
    elif REFERENCE.match(value):
        found = session.scalar(select(Incident.id).where(Incident.reference == value))
    else:
        raise InvalidInput(f"{field}: expected an incident id (7) or reference (I-2026-000007), got {value!r}",
                           fields={field: "an incident id or reference such as I-2026-000007"})
    if found is None:
        raise NotFound(f"incident {value} does not exist", fields={field: "no such incident"})
    return int(found)


def open_incident(session: Session, title: str, actor: Actor, *, description: str = "") -> Incident:
    """Open an incident (audited: incident.opened). Raises Refused (role), InvalidInput (title
    empty or too long, description too long)."""
    permissions.require(actor, "incidents.manage", "open incidents")
    title, description = " ".join((title or "").split()), (description or "").strip()
    problems = {}
    if not title:
        problems["title"] = "required"
    elif len(title) > MAX_TITLE:
        problems["title"] = f"at most {MAX_TITLE} characters"
    if len(description) > MAX_DESCRIPTION:
        problems["description"] = f"at most {MAX_DESCRIPTION} characters"
    if problems:
        raise InvalidInput("the incident cannot be opened as given", fields=problems)
    incident = Incident(reference="pending", title=title, description=description,
                        opened_by_id=actor.operator_id)
    session.add(incident)
    session.flush()
    incident.reference = f"I-{utcnow():%Y}-{incident.id:06d}"
    trail.append(session, actor=actor, action="incident.opened", subject_type="incident", subject_id=incident.id,
                 payload={"reference": incident.reference, "title": title, "description": description})
    return incident


def close_incident(session: Session, incident_id: int, actor: Actor, *, reopen: bool = False) -> Incident:
    """Close an incident (no alert joins it by hand any more; a correction of one of its alerts
    still does), or reopen it. Audited (incident.closed / incident.reopened). Raises Refused,
    NotFound, InvalidTransition (closed already, or open already)."""
    permissions.require(actor, "incidents.manage", "close incidents")
    incident = get_incident(session, incident_id, lock=True)
    if (incident.closed_at is None) is reopen:
        state = "open" if reopen else "closed"
        raise InvalidTransition(f"incident {incident.reference} is {state} already", incident_id=incident_id)
    now = utcnow()
    incident.closed_at, incident.closed_by_id = (None, None) if reopen else (now, actor.operator_id)
    incident.updated_at = now
    trail.append(session, actor=actor, action="incident.reopened" if reopen else "incident.closed",
                 subject_type="incident", subject_id=incident.id, payload={"reference": incident.reference})
    return incident


def incident_for_new_alert(session: Session, incident_id: int | None, corrects_alert_id: int | None) -> int | None:
    """The incident a new alert joins when composed: the one asked for (which must exist and be
    open: InvalidInput naming `incident` otherwise), else, for a correction or cancellation notice,
    its original's."""
    if incident_id is not None:
        # FOR KEY SHARE: a close waits for this compose to commit; other composers do not.
        incident = session.get(Incident, incident_id, with_for_update={"read": True, "key_share": True})
        if incident is None:
            raise InvalidInput(f"incident: {incident_id} does not exist", fields={"incident": "no such incident"})
        if incident.closed_at is not None:
            raise InvalidInput(f"incident: {incident.reference} is closed",
                               fields={"incident": f"{incident.reference} is closed; reopen it first"})
        return incident.id
    if corrects_alert_id is not None:
        return session.scalar(select(Alert.incident_id).where(Alert.id == corrects_alert_id))
    return None


def family_of(session: Session, alert_id: int) -> list[int]:
    """The alert, the alerts it corrects and those correcting it, transitively, in id order."""
    rows = session.execute(text("""
        WITH RECURSIVE family(id) AS (
            SELECT CAST(:a AS integer)
            UNION
            SELECT x.id FROM family f JOIN alerts y ON y.id = f.id
              JOIN alerts x ON x.corrects_alert_id = f.id OR x.id = y.corrects_alert_id
        )
        SELECT id FROM family ORDER BY id
    """), {"a": alert_id}).scalars().all()
    return [int(r) for r in rows]


def add_to_incident(session: Session, alert_id: int, incident_id: int, actor: Actor) -> list[int]:
    """Put an alert, with its corrections and what it corrects, in an open incident; returns the
    ids moved (none when they are all in it already). Audited (incident.alert_added, naming the
    incident each came from). Raises Refused, NotFound, InvalidTransition (the incident is closed)."""
    permissions.require(actor, "incidents.manage", "add alerts to incidents")
    incident = get_incident(session, incident_id, lock=True)
    if incident.closed_at is not None:
        raise InvalidTransition(f"incident {incident.reference} is closed; reopen it first", incident_id=incident_id)
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist", alert_id=alert_id)
    family = list(session.scalars(select(Alert).where(Alert.id.in_(family_of(session, alert_id)))
                                  .order_by(Alert.id).with_for_update()))
    moved = [a for a in family if a.incident_id != incident.id]
    if not moved:
        return []
    before = {str(a.id): a.incident_id for a in moved}
    for member in moved:
        member.incident_id = incident.id
    incident.updated_at = utcnow()
    trail.append(session, actor=actor, action="incident.alert_added", subject_type="incident", subject_id=incident.id,
                 payload={"alert_id": alert.id, "reference": alert.reference, "incident": incident.reference,
                          "alert_ids": [a.id for a in moved], "from_incidents": before})
    return [a.id for a in moved]


def remove_from_incident(session: Session, alert_id: int, actor: Actor) -> list[int]:
    """Take an alert, with its family, out of its incident (it was put in the wrong one); returns
    the ids taken out. Audited (incident.alert_removed). Raises Refused, NotFound, InvalidTransition
    (it is in no incident)."""
    permissions.require(actor, "incidents.manage", "remove alerts from incidents")
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist", alert_id=alert_id)
    if alert.incident_id is None:
        raise InvalidTransition(f"alert {alert.reference} is in no incident", alert_id=alert_id)
    incident = get_incident(session, alert.incident_id, lock=True)
    family = list(session.scalars(select(Alert).where(Alert.id.in_(family_of(session, alert_id)),
                                                      Alert.incident_id == incident.id).with_for_update()))
    for member in family:
        member.incident_id = None
    incident.updated_at = utcnow()
    trail.append(session, actor=actor, action="incident.alert_removed", subject_type="incident",
                 subject_id=incident.id, payload={"alert_id": alert.id, "reference": alert.reference,
                                                  "incident": incident.reference,
                                                  "alert_ids": sorted(a.id for a in family)})
    return sorted(a.id for a in family)


def incident_alerts(session: Session, incident_id: int) -> list[Alert]:
    """The incident's alerts in the order they went out (approval, else creation), then by id."""
    return list(session.scalars(select(Alert).where(Alert.incident_id == incident_id)
                                .order_by(func.coalesce(Alert.approved_at, Alert.created_at), Alert.id)))


@dataclass(frozen=True)
class IncidentRow:
    id: int
    reference: str
    title: str
    created_at: datetime
    closed_at: datetime | None
    alerts: int
    opened_by: str | None


def list_incidents(session: Session, *, limit: int = 200, open_only: bool = False) -> list[IncidentRow]:
    """The latest incidents, newest first, with how many alerts each holds and who opened it."""
    rows = session.execute(text(f"""
        SELECT i.id, i.reference, i.title, i.created_at, i.closed_at,
               (SELECT count(*) FROM alerts a WHERE a.incident_id = i.id) AS alerts, o.username
          FROM incidents i LEFT JOIN operators o ON o.id = i.opened_by_id
         {"WHERE i.closed_at IS NULL" if open_only else ""}
         ORDER BY i.id DESC LIMIT :limit
    """), {"limit": limit}).all()
    return [IncidentRow(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), r[6]) for r in rows]
