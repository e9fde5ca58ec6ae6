"""The alert lifecycle: every state change of an alert happens here, and only here.

draft → pending_approval → approved → (scheduled →) sending → completed,
plus rejected, cancelled and superseded (by a correction). Console, API, e-mail, CAP and CLI all
call these functions, so the two-person rule and the other safety rules cannot disagree.

The two-person rule is about authorship: every operator who composed, edited or submitted any
version of an alert is one of its authors (alert_authors), and no author may approve it. A second
composer may edit someone else's draft; they then become an author too, and can never approve it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.alerts import incidents
from alerting.base import job_ids
from alerting.base.db import configured_settings, utcnow
from alerting.base.errors import InvalidInput, InvalidTransition, NotFound, Refused, TwoPersonRuleViolated
from alerting.base.models import (
    Alert,
    AlertApproval,
    AlertAuthor,
    AlertKind,
    AlertMode,
    AlertState,
    Delivery,
    DeliveryState,
    Group,
    Priority,
    Sender,
)
from alerting.base.models.alerts import AuthorRole, move_alert
from alerting.base.outbox import enqueue_after_commit, notify_flash
from alerting.base.settings import MIN_APPROVALS, Settings
from alerting.base.sms_text.encoding import analyze
from alerting.base.sms_text.rendering import check_placeholders, mode_prefix
from alerting.directory import permissions
from alerting.directory.senders import describe_senders
from audit import trail
from audit.actor import Actor

S = AlertState
EDITABLE = frozenset({S.DRAFT, S.PENDING_APPROVAL, S.REJECTED})
MAX_TEXT_CHARS = 255 * 153  # beyond 255 parts no carrier can concatenate it


@dataclass
class AlertDraft:
    """What a composer asks for, from any interface. Validated by compose_alert."""

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


def _validate(session: Session, draft: AlertDraft) -> None:
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


def compose_alert(session: Session, draft: AlertDraft, composer: Actor) -> Alert:
    """Create a draft alert. Raises InvalidInput naming each bad field; idempotent by key."""
    if draft.idempotency_key:
        existing = session.scalar(select(Alert).where(Alert.idempotency_key == draft.idempotency_key))
        if existing is not None:
            return existing
    permissions.require(composer, "alerts.compose", "compose alerts")
    _validate(session, draft)
    incident_id = incidents.incident_for_new_alert(session, draft.incident_id, draft.corrects_alert_id)
    alert = Alert(
        reference="pending-" + secrets.token_hex(6),
        reply_code=new_reply_code(session),
        kind=draft.kind,
        mode=draft.mode,
        priority=draft.priority,
        state=S.DRAFT,
        title=draft.title,
        sender_name=draft.sender_name,
        texts=dict(draft.texts),
        target=dict(draft.target),
        ack_deadline_s=ack_deadline_of(draft),
        escalation=draft.escalation,
        poll_options=draft.poll_options,
        scheduled_at=draft.scheduled_at,
        corrects_alert_id=draft.corrects_alert_id,
        composed_by_id=composer.operator_id,
        origin=draft.origin,
        idempotency_key=draft.idempotency_key,
        cap_identifier=draft.cap_identifier,
        required_approvals=required_approvals(draft.priority, draft.mode),
        incident_id=incident_id,
    )
    session.add(alert)
    session.flush()
    alert.reference = f"A-{utcnow():%Y}-{alert.id:06d}"
    record_author(session, alert.id, composer, AuthorRole.COMPOSER)
    trail.append(session, actor=composer, action="alert.composed", subject_type="alert",
                 subject_id=alert.id, payload={"mode": alert.mode.value, "priority": alert.priority.value,
                                                "texts": alert.texts, "target": alert.target,
                                                **({"incident_id": incident_id} if incident_id else {})})
    return alert


def update_draft(session: Session, alert_id: int, changes: dict[str, Any], editor: Actor) -> Alert:
    """Edit a draft, pending or rejected alert; any edit voids its approvals and returns it to draft.

    Any composer may edit any editable alert; the editor becomes one of its authors, and so can
    never approve it (`approve_alert`).
    """
    alert = get_alert(session, alert_id, lock=True)
    if alert.state not in EDITABLE:
        raise InvalidTransition(f"alert {alert.reference} is {alert.state.value}; it can no longer be edited",
                                alert_id=alert_id)
    permissions.require(editor, "alerts.compose", "edit alerts")
    before = {k: getattr(alert, k) for k in changes}
    allowed = {"texts", "target", "priority", "title", "sender_name", "scheduled_at", "ack_deadline_s",
               "escalation", "poll_options", "mode"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput("unknown fields", fields={k: "cannot be changed" for k in sorted(unknown)})
    merged = AlertDraft(
        texts=changes.get("texts", alert.texts), mode=AlertMode(changes.get("mode", alert.mode)),
        sender_name=changes.get("sender_name", alert.sender_name),
        priority=Priority(changes.get("priority", alert.priority)), target=changes.get("target", alert.target),
        scheduled_at=changes.get("scheduled_at", alert.scheduled_at),
        ack_deadline_s=changes.get("ack_deadline_s", alert.ack_deadline_s),
    )
    _validate(session, merged)
    for key, value in changes.items():
        setattr(alert, key, value)
    if alert.state is not S.DRAFT:
        move_alert(alert, S.DRAFT)
    session.execute(AlertApproval.__table__.delete().where(AlertApproval.alert_id == alert.id))
    alert.approval_hash = None
    alert.updated_at = utcnow()
    record_author(session, alert.id, editor, AuthorRole.EDITOR)
    trail.append(session, actor=editor, action="alert.edited", subject_type="alert", subject_id=alert.id,
                 payload={"before": _jsonable(before), "after": _jsonable(changes)})
    return alert


def ack_deadline_of(draft: AlertDraft) -> int | None:
    """The draft's ACK deadline, or SIRENA_ACK_DEADLINE (900 s unless set) for an alert composed
    without one, from any interface. Corrections and cancellations have none: they are not chased."""
    if draft.ack_deadline_s is not None or draft.kind is not AlertKind.ALERT:
        return draft.ack_deadline_s
    settings = configured_settings()
    return int((settings.ack_deadline if settings is not None else Settings.ack_deadline).total_seconds())


def required_approvals(priority: Priority, mode: AlertMode) -> int:
    """Approvals an alert needs: for a live alert SIRENA_APPROVALS of its priority (never below the
    built-in minimum, flash=2), for an exercise or test alert (drill groups only) one."""
    if mode is not AlertMode.LIVE:
        return 1
    settings = configured_settings()
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


def submit_alert(session: Session, alert_id: int, composer: Actor, *, recipients: int | None = None) -> Alert:
    """Ask for approval: draft → pending_approval, fixing the approval hash of what will be sent.

    `recipients` is the count the target resolves to now (approvals.submit_for_approval passes
    it); it becomes part of the hash. The approvals needed are fixed now, from the priority and
    mode being submitted.
    """
    alert = get_alert(session, alert_id, lock=True)
    permissions.require(composer, "alerts.submit", "submit alerts")
    move_alert(alert, S.PENDING_APPROVAL)
    alert.submitted_at = utcnow()
    alert.submitted_recipients = recipients
    alert.required_approvals = required_approvals(alert.priority, alert.mode)
    alert.approval_hash = approval_hash(alert)
    record_author(session, alert.id, composer, AuthorRole.SUBMITTER)
    trail.append(session, actor=composer, action="alert.submitted", subject_type="alert", subject_id=alert.id,
                 payload={"approval_hash": alert.approval_hash, "recipients": recipients,
                          "required_approvals": alert.required_approvals})
    return alert


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


def require_seen_hash(seen_hash: str | None) -> str:
    """The hash the approver reviewed; InvalidInput naming `seen_hash` when it is missing: an
    approval always names the version it approves (a stale one is Refused by `approve_alert`)."""
    if not seen_hash or not seen_hash.strip():
        raise InvalidInput("seen_hash: required: the approval_hash of the version you reviewed",
                           fields={"seen_hash": "required: the approval_hash of the version you reviewed"})
    return seen_hash.strip()


def approve_alert(session: Session, alert_id: int, approver: Actor, *, seen_hash: str | None,
                  override_reason: str | None = None, recipients_now: int | None = None) -> Alert:
    """Approve a pending alert; with enough approvals, queue its fan-out (or schedule it).

    `seen_hash` is the approval hash of the version the approver reviewed (InvalidInput when
    missing, Refused when it is not the alert's current one). No author of the alert (composer,
    editor, submitter of any version) may approve it. `recipients_now` is the count the target
    resolves to at approval (approvals.approve_reviewed), kept with the approval beside the
    submitted one. Raises NotFound, InvalidInput, InvalidTransition, Refused (role, stale hash),
    TwoPersonRuleViolated. Locks the alert: two approvers clicking together produce one approval
    each, one transition.
    """
    seen_hash = require_seen_hash(seen_hash)
    alert = get_alert(session, alert_id, lock=True)
    if alert.state is not S.PENDING_APPROVAL:
        raise InvalidTransition(f"alert {alert.reference} is {alert.state.value}, not pending approval",
                                alert_id=alert_id)
    if approver.operator_id is not None and approver.operator_id in authors_of(session, alert.id):
        # One stolen account must not be able to alert a city: whoever wrote any version of it,
        # even by editing someone else's draft, is not the second person.
        raise TwoPersonRuleViolated(f"{approver.name} composed, edited or submitted {alert.reference}; an author "
                                    "cannot approve it", alert_id=alert_id)
    permissions.require(approver, "alerts.approve", "approve alerts")
    if approver.operator_id is None:
        raise Refused("only an operator (or a token acting as one) can approve", alert_id=alert_id)
    current = approval_hash(alert)
    if current != alert.approval_hash or seen_hash != current:
        raise Refused(f"alert {alert.reference} changed since it was shown; review it again", alert_id=alert_id)
    already = session.scalars(select(AlertApproval.operator_id).where(AlertApproval.alert_id == alert.id)).all()
    if approver.operator_id in already:
        raise TwoPersonRuleViolated(f"you already approved {alert.reference}; another approver is needed",
                                    alert_id=alert_id)
    _require_route(session, alert)
    session.add(AlertApproval(alert_id=alert.id, operator_id=approver.operator_id, approval_hash=current,
                              override_reason=override_reason, submitted_recipients=alert.submitted_recipients,
                              recipients_at_approval=recipients_now))
    trail.append(session, actor=approver, action="alert.approved", subject_type="alert", subject_id=alert.id,
                 payload={"approval_hash": current, "approvals": len(already) + 1,
                          "required": alert.required_approvals, "override_reason": override_reason,
                          "submitted_recipients": alert.submitted_recipients, "recipients_at_approval": recipients_now})
    if len(already) + 1 < alert.required_approvals:
        return alert
    alert.approved_by_id, alert.approved_at = approver.operator_id, utcnow()
    if alert.scheduled_at is not None and alert.scheduled_at > utcnow():
        move_alert(alert, S.SCHEDULED)  # the scheduler ticker enqueues it when due (Postgres holds the time)
    else:
        move_alert(alert, S.APPROVED)
        enqueue_fan_out(session, alert)
    return alert


def enqueue_fan_out(session: Session, alert: Alert) -> None:
    """Queue the alert's fan-out after commit (best effort: the reconciler re-enqueues if lost). A flash
    alert also wakes every gateway's flash lane at commit, which starts it without Redis."""
    job = job_ids.fan_out(alert.id)
    enqueue_after_commit(session, job.func, alert.id, queue=alert.priority.queue_name, job_id=job.job_id)
    if alert.priority is Priority.FLASH:
        notify_flash(session, alert.id)


def _require_route(session: Session, alert: Alert) -> None:
    """Refuse an approval that could only fail at send: no carrier carries the sender, or (exercise and
    test alerts, which go only through carriers marked `test`) no test carrier does."""
    sender = session.scalar(select(Sender).where(Sender.name == alert.sender_name))
    if sender is None or not sender.active:
        raise Refused(f'no route: sender "{alert.sender_name}" is not carried by any configured carrier',
                      alert_id=alert.id)
    if alert.mode is not AlertMode.LIVE and not sender.test_route:
        raise Refused(f'no route: {alert.mode.value} alerts go only through carriers marked test, and none '
                      f'carries sender "{alert.sender_name}"', alert_id=alert.id)


def reject_alert(session: Session, alert_id: int, approver: Actor, reason: str) -> Alert:
    """Reject a pending alert with a reason; the composer may revise it (rejected → draft)."""
    if not reason or not reason.strip():
        raise InvalidInput("a rejection needs a reason", fields={"reason": "required"})
    alert = get_alert(session, alert_id, lock=True)
    permissions.require(approver, "alerts.reject", "reject alerts")
    move_alert(alert, S.REJECTED)
    alert.reason = reason.strip()
    trail.append(session, actor=approver, action="alert.rejected", subject_type="alert", subject_id=alert.id,
                 payload={"reason": alert.reason})
    return alert


def cancel_alert(session: Session, alert_id: int, actor: Actor, reason: str) -> Alert:
    """Stop an alert: its unsent deliveries become cancelled at once, in one statement.

    Cancelling is not informing: for a live alert already reaching phones, the console offers the
    correction right after (see fire_correction).
    """
    alert = get_alert(session, alert_id, lock=True)
    if actor.operator_id is None or actor.operator_id != alert.composed_by_id:  # its composer may always stop it
        permissions.require(actor, "alerts.cancel", "cancel alerts")
    move_alert(alert, S.CANCELLED)
    alert.cancelled_at, alert.reason = utcnow(), reason
    purged = session.execute(
        update(Delivery)
        .where(Delivery.alert_id == alert.id,
               # Two equalities, not IN: each uses its partial index (claim, in-flight).
               or_(Delivery.state == DeliveryState.QUEUED, Delivery.state == DeliveryState.WAITING_ROUTE))
        .values(state=DeliveryState.CANCELLED, updated_at=utcnow())
    ).rowcount
    trail.append(session, actor=actor, action="alert.cancelled", subject_type="alert", subject_id=alert.id,
                 payload={"reason": reason, "deliveries_cancelled": purged})
    return alert


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))
