"""An alert before it is approved: the draft a composer gives, its checks, its authors and the
approval hash that binds an approval to exactly what was reviewed.

The services that change an alert's state are in alerting/alerts/lifecycle.py; this module holds
what they and the other alert modules read.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.base import runtime
from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, NotFound
from alerting.base.models import Alert, AlertAuthor, AlertKind, AlertMode, AlertState, Group, Priority, Sender
from alerting.base.models.alerts import AuthorRole
from alerting.base.settings import MIN_APPROVALS, Settings
from alerting.base.sms_text.encoding import analyze
from alerting.base.sms_text.rendering import check_placeholders, mode_prefix
from alerting.directory.senders import describe_senders
from audit.actor import Actor

S = AlertState
EDITABLE = frozenset({S.DRAFT, S.PENDING_APPROVAL, S.REJECTED})
MAX_TEXT_CHARS = 255 * 153  # beyond 255 parts no carrier can concatenate it


@dataclass
class AlertDraft:
    """What a composer asks for, from any interface. Validated by `validate`."""

    texts: dict[str, str]
    mode: AlertMode
    sender_name: str
    priority: Priority = Priority.NORMAL
    title: str = ""
    target: dict[str, Any] = field(default_factory=dict)
    scheduled_at: datetime | None = None
    ack_deadline_s: int | None = None
    escalation: dict[str, Any] | None = None
    poll_options: list[str] | None = None
    kind: AlertKind = AlertKind.ALERT
    corrects_alert_id: int | None = None
    origin: str = "console"
    idempotency_key: str | None = None
    cap_identifier: str | None = None
    # set when composed from an approved template (alerting/alerts/template_use.py)
    template_id: int | None = None
    template_version: int | None = None
    template_values: dict[str, str] | None = None
    incident_id: int | None = None  # the incident it joins (a correction: its original's by default)


def get_alert(session: Session, alert_id: int, *, lock: bool = False) -> Alert:
    """The alert, optionally locked FOR UPDATE. Raises NotFound."""
    alert = session.get(Alert, alert_id, with_for_update=lock)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist", alert_id=alert_id)
    return alert


REFERENCE = re.compile(r"^A-\d{4}-\d{6}$")


def alert_id_of(session: Session, raw: str, *, field: str = "alert") -> int:
    """The id of the alert `raw` names: its numeric id ("42") or its reference ("A-2026-000042",
    as shown everywhere; case and spaces do not matter). Raises InvalidInput naming `field` for
    anything else, NotFound when no such alert exists."""
    value = raw.strip().upper()
    if value.isdigit() and len(value) <= 9:
        alert_id = session.scalar(select(Alert.id).where(Alert.id == int(value)))
    elif REFERENCE.match(value):
        alert_id = session.scalar(select(Alert.id).where(Alert.reference == value))
    else:
        raise InvalidInput(f"{field}: expected an alert id (42) or reference (A-2026-000042), got {raw.strip()!r}",
                           fields={field: "an alert id or reference such as A-2026-000042"})
    if alert_id is None:
        raise NotFound(f"alert {raw.strip()} does not exist", fields={field: "no such alert"})
    return int(alert_id)


def validate(session: Session, draft: AlertDraft) -> None:
    """Every check of a draft's own content (texts, sender, deadline, time, a drill's target), all
    problems at once: InvalidInput naming each field."""
    problems: dict[str, str] = {}
    if not draft.texts or not any(t.strip() for t in draft.texts.values()):
        problems["texts"] = "at least one language needs a text"
    for language, body in draft.texts.items():
        if language not in {"es", "en"}:
            problems[f"texts.{language}"] = "language must be es or en"
        elif not body.strip():
            problems[f"texts.{language}"] = "empty text"
        elif len(body) > MAX_TEXT_CHARS:
            problems[f"texts.{language}"] = f"longer than {MAX_TEXT_CHARS} characters (255 SMS parts)"
    if draft.ack_deadline_s is not None and not 60 <= draft.ack_deadline_s <= 7 * 86400:
        problems["ack_deadline_s"] = "must be between 60 seconds and 7 days"
    if draft.scheduled_at is not None:
        if draft.scheduled_at.tzinfo is None:
            problems["scheduled_at"] = "needs an explicit time zone"
        elif draft.scheduled_at <= utcnow():
            problems["scheduled_at"] = "is in the past"
    sender = session.scalar(select(Sender).where(Sender.name == draft.sender_name))
    if sender is None or not sender.active:
        problems["sender"] = (f'unknown or inactive sender "{draft.sender_name}"; the senders are: '
                              f"{describe_senders(session)}")
    if draft.mode is not AlertMode.LIVE:
        _validate_drill_target(session, draft.target, problems)
    if problems:
        raise InvalidInput("the alert cannot be composed as given", fields=problems)
    check_placeholders(draft.texts)
    _check_parts(draft)


def _validate_drill_target(session: Session, target: dict[str, Any], problems: dict[str, str]) -> None:
    """Exercise and test alerts reach only groups marked for drills: never zones, never the public."""
    if target.get("zones"):
        problems["target.zones"] = "exercise and test alerts cannot target zones, only drill groups"
    names = list(target.get("groups") or [])
    if not names:
        problems["target.groups"] = "exercise and test alerts need at least one drill group"
        return
    allowed = set(session.scalars(select(Group.name).where(Group.name.in_(names), Group.drill_allowed)))
    refused = [n for n in names if n not in allowed]
    if refused:
        problems["target.groups"] = "not marked for drills: " + ", ".join(refused)


def _check_parts(draft: AlertDraft) -> None:
    for language, body in draft.texts.items():
        parts = analyze(mode_prefix(draft.mode, language) + body).parts
        if parts > 255:
            raise InvalidInput("the text is too long for one SMS", fields={
                f"texts.{language}": f"needs {parts} parts; a phone reassembles at most 255"})


def new_reply_code(session: Session) -> str:
    """A 4-digit code not used by another alert that is still open for replies."""
    open_states = [S.DRAFT, S.PENDING_APPROVAL, S.APPROVED, S.SCHEDULED, S.SENDING]
    taken = set(session.scalars(select(Alert.reply_code).where(Alert.state.in_(open_states))))
    for _ in range(50):
        code = f"{secrets.randbelow(9000) + 1000}"
        if code not in taken:
            return code
    return f"{secrets.randbelow(900000) + 100000}"


def ack_deadline_of(draft: AlertDraft) -> int | None:
    """The draft's ACK deadline, or SIRENA_ACK_DEADLINE (900 s unless set) for an alert composed
    without one, from any interface. Corrections and cancellations have none: they are not chased."""
    if draft.ack_deadline_s is not None or draft.kind is not AlertKind.ALERT:
        return draft.ack_deadline_s
    settings = runtime.settings()
    return int((settings.ack_deadline if settings is not None else Settings.ack_deadline).total_seconds())


def required_approvals(priority: Priority, mode: AlertMode) -> int:
    """Approvals an alert needs: for a live alert SIRENA_APPROVALS of its priority (never below the
    built-in minimum, flash=2), for an exercise or test alert (drill groups only) one."""
    if mode is not AlertMode.LIVE:
        return 1
    settings = runtime.settings()
    if settings is None:
        return MIN_APPROVALS.get(priority.value, 1)
    return settings.required_approvals(priority.value)


def approval_hash(alert: Alert) -> str:
    """SHA-256 over what phones will show (prefix included), the target as given (zone versions
    pinned at submission), the recipients count fixed at submission, sender, priority and mode."""
    rendered = {lang: mode_prefix(alert.mode, lang) + body for lang, body in sorted(alert.texts.items())}
    material: dict[str, Any] = {
        "texts": rendered, "target": alert.target, "mode": alert.mode.value, "sender": alert.sender_name,
        "priority": alert.priority.value, "zone_versions": (alert.resolved or {}).get("zone_versions"),
    }
    if alert.submitted_recipients is not None:  # absent for alerts submitted before it was counted
        material["recipients"] = alert.submitted_recipients
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def record_author(session: Session, alert_id: int, actor: Actor, role: AuthorRole) -> None:
    """Record that `actor` wrote a version of the alert (idempotent). Actors that are not operators
    (the system, a CAP feed without an operator) are not authors: they can never approve anyway."""
    if actor.operator_id is None:
        return
    session.execute(pg_insert(AlertAuthor).values(alert_id=alert_id, operator_id=actor.operator_id, role=role.value)
                    .on_conflict_do_nothing())


def authors_of(session: Session, alert_id: int) -> set[int]:
    """The operator ids of everyone who composed, edited or submitted any version of the alert."""
    alert = session.get(Alert, alert_id)
    ids = set(session.scalars(select(AlertAuthor.operator_id).where(AlertAuthor.alert_id == alert_id)))
    if alert is not None and alert.composed_by_id is not None:
        ids.add(alert.composed_by_id)
    return ids


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))
