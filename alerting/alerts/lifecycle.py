"""The alert lifecycle: one public service per action, and every state change of an alert.

    compose → (edit)* → submit → approve (×N) → [scheduled →] sending → completed
                                 reject → edit …        cancel · supersede (by a correction)

Console, API, e-mail, CAP, schedules and CLI call these services, each in one line, so the
two-person rule and every other safety rule cannot disagree between them. Each service is a short
list of named guards (alerting/alerts/guards.py), then one transition, audited. The fan-out and
completion transitions are the sending side's (broadcast/jobs.py); corrections fired or proposed
after sending are in alerting/alerts/corrections.py.

The two-person rule is about authorship: every operator who composed, edited or submitted any
version of an alert is one of its authors (alert_authors), and no author may approve it. A second
composer may edit someone else's draft; they then become an author too, and can never approve it.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from alerting.alerts import guards, incidents, prearmed, template_use
from alerting.alerts.drafts import (
    EDITABLE,
    AlertDraft,
    ack_deadline_of,
    approval_hash,
    get_alert,
    jsonable,
    new_reply_code,
    record_author,
    required_approvals,
    validate,
)
from alerting.base import job_ids
from alerting.base.db import rowcount, utcnow
from alerting.base.errors import InvalidInput, InvalidTransition
from alerting.base.models import (
    Alert,
    AlertApproval,
    AlertKind,
    AlertMode,
    AlertState,
    Delivery,
    DeliveryState,
    Priority,
)
from alerting.base.models.alerts import AuthorRole, PrearmedTexts, move_alert
from alerting.base.outbox import enqueue_after_commit, notify_flash
from audit import trail
from audit.actor import Actor
from geo import targeting

S = AlertState
# States a correction or cancellation can replace: the alert was approved (and may have reached phones).
FIREABLE = frozenset({S.APPROVED, S.SCHEDULED, S.SENDING, S.COMPLETED, S.CANCELLED})
Prearmed = tuple[dict[str, str] | None, dict[str, str] | None]


# -- compose and edit -------------------------------------------------------------------------

def compose(session: Session, draft: AlertDraft, composer: Actor, *, prearmed_texts: Prearmed | None = None,
            quiet_override_reason: str | None = None) -> Alert:
    """Create a draft alert. Idempotent by `draft.idempotency_key` (a retried request gets the same
    alert). `prearmed_texts` (correction, cancellation; blank ones: the templates) are set with it;
    a test or drill scheduled in quiet hours needs `quiet_override_reason`, audited with the alert.
    Raises InvalidInput naming each bad field, NotFound naming each unknown zone or group, Refused."""
    if draft.idempotency_key:
        existing = session.scalar(select(Alert).where(Alert.idempotency_key == draft.idempotency_key))
        if existing is not None:
            return existing
    guards.may(composer, "alerts.compose", "compose alerts")
    guards.within_area(session, composer, draft.target, "compose")
    validate(session, draft)
    guards.target_exists(session, draft)
    override = guards.outside_quiet_hours(draft, quiet_override_reason)
    incident_id = incidents.incident_for_new_alert(session, draft.incident_id, draft.corrects_alert_id)
    alert = _new_draft(session, draft, composer, incident_id)
    if prearmed_texts is not None:
        set_correction_texts(session, alert.id, *prearmed_texts, composer)
    if override is not None:
        trail.append(session, actor=composer, action="alert.quiet_hours_overridden", subject_type="alert",
                     subject_id=alert.id, payload={"scheduled_at": draft.scheduled_at}, reason=override)
    return alert


def _new_draft(session: Session, draft: AlertDraft, composer: Actor, incident_id: int | None) -> Alert:
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
        template_id=draft.template_id, template_version=draft.template_version,
        template_values=draft.template_values,
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


EDITABLE_FIELDS = frozenset({"texts", "target", "priority", "title", "sender_name", "scheduled_at", "ack_deadline_s",
                             "escalation", "poll_options", "mode", "template_id", "template_version",
                             "template_values"})


def edit(session: Session, alert_id: int, changes: dict[str, Any], editor: Actor, *,
         prearmed_texts: Prearmed | None = None, quiet_override_reason: str | None = None) -> Alert:
    """Edit a draft, pending or rejected alert; any edit voids its approvals and returns it to draft.

    Any composer may edit any editable alert; the editor becomes one of its authors, and so can
    never approve it. A test or drill moved into quiet hours needs `quiet_override_reason`, as at
    compose. Raises InvalidTransition (no longer editable), InvalidInput, NotFound, Refused."""
    alert = get_alert(session, alert_id, lock=True)
    _editable(alert)
    guards.may(editor, "alerts.compose", "edit alerts")
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise InvalidInput("unknown fields", fields={k: "cannot be changed" for k in sorted(unknown)})
    merged = AlertDraft(
        texts=changes.get("texts", alert.texts), mode=AlertMode(changes.get("mode", alert.mode)),
        sender_name=changes.get("sender_name", alert.sender_name),
        priority=Priority(changes.get("priority", alert.priority)), target=changes.get("target", alert.target),
        scheduled_at=changes.get("scheduled_at", alert.scheduled_at),
        ack_deadline_s=changes.get("ack_deadline_s", alert.ack_deadline_s),
        corrects_alert_id=alert.corrects_alert_id,
    )
    guards.within_area(session, editor, merged.target, "edit")
    validate(session, merged)
    if "target" in changes:
        guards.target_exists(session, merged)
    override = guards.outside_quiet_hours(merged, quiet_override_reason) if "scheduled_at" in changes else None
    _back_to_draft(session, alert, changes, editor)
    if prearmed_texts is not None:
        set_correction_texts(session, alert.id, *prearmed_texts, editor)
    if override is not None:
        trail.append(session, actor=editor, action="alert.quiet_hours_overridden", subject_type="alert",
                     subject_id=alert.id, payload={"scheduled_at": merged.scheduled_at}, reason=override)
    return alert


def _editable(alert: Alert) -> None:
    if alert.state not in EDITABLE:
        raise InvalidTransition(f"alert {alert.reference} is {alert.state.value}; it can no longer be edited",
                                alert_id=alert.id)


def _back_to_draft(session: Session, alert: Alert, changes: dict[str, Any], editor: Actor) -> None:
    """The edit transition: apply `changes`, void every approval, → draft, the editor an author."""
    before = {k: getattr(alert, k) for k in changes}
    for key, value in changes.items():
        setattr(alert, key, value)
    if alert.state is not S.DRAFT:
        move_alert(alert, S.DRAFT)
    session.execute(delete(AlertApproval).where(AlertApproval.alert_id == alert.id)
                    .execution_options(synchronize_session=False))
    alert.approval_hash = None
    alert.updated_at = utcnow()
    record_author(session, alert.id, editor, AuthorRole.EDITOR)
    trail.append(session, actor=editor, action="alert.edited", subject_type="alert", subject_id=alert.id,
                 payload={"before": jsonable(before), "after": jsonable(changes)})


def set_correction_texts(session: Session, alert_id: int, correction: dict[str, str] | None,
                         cancel: dict[str, str] | None, editor: Actor) -> PrearmedTexts:
    """Write an editable alert's correction and cancellation texts (blank ones: the templates).

    They are approved with the alert, so changing texts already saved returns it to draft and
    voids its approvals. Raises InvalidTransition once the alert is no longer editable,
    InvalidInput for an over-long text or a language other than es and en."""
    alert = get_alert(session, alert_id, lock=True)
    if alert.state not in EDITABLE:
        raise InvalidTransition(f"alert {alert.reference} is {alert.state.value}; its correction texts are fixed",
                                alert_id=alert_id)
    correction, cancel = prearmed.checked_texts(alert, correction, cancel)
    digest = prearmed.texts_digest(correction, cancel)
    row = prearmed.prearmed(session, alert_id, lock=True)
    if row is not None and row.texts_sha256 == digest:
        return row
    if row is not None and alert.state is not S.DRAFT:
        _back_to_draft(session, alert, {}, editor)  # voids approvals: they covered the old texts
    if row is not None or editor.operator_id != alert.composed_by_id:
        record_author(session, alert_id, editor, AuthorRole.EDITOR)  # these texts are approved with it
    return prearmed.write(session, alert_id, row, correction, cancel, editor)


# -- submit, approve, reject ------------------------------------------------------------------

def submit(session: Session, alert_id: int, composer: Actor) -> Alert:
    """Ask for approval: draft → pending_approval. The zone versions are pinned into the target and
    the recipients counted before the approval hash is fixed over both, so what is approved is what
    fans out, even if a zone is redrawn meanwhile. Raises InvalidInput (a live alert that reaches
    nobody, with the breakdown), InvalidTransition, Refused."""
    alert = get_alert(session, alert_id, lock=True)
    guards.may(composer, "alerts.submit", "submit alerts")
    guards.within_area(session, composer, alert.target, "submit")
    guards.may_become(alert, S.PENDING_APPROVAL)
    _pin_zone_versions(session, alert, composer)
    if prearmed.prearmed(session, alert_id) is None:
        set_correction_texts(session, alert_id, None, None, composer)
    recipients = guards.reaches_someone(session, alert)
    move_alert(alert, S.PENDING_APPROVAL)
    alert.submitted_at = utcnow()
    alert.submitted_recipients = recipients
    alert.required_approvals = template_use.approvals_needed(
        session, alert, required_approvals(alert.priority, alert.mode), composer)
    alert.approval_hash = approval_hash(alert)
    record_author(session, alert.id, composer, AuthorRole.SUBMITTER)
    trail.append(session, actor=composer, action="alert.submitted", subject_type="alert", subject_id=alert.id,
                 payload={"approval_hash": alert.approval_hash, "recipients": recipients,
                          "required_approvals": alert.required_approvals})
    return alert


def _pin_zone_versions(session: Session, alert: Alert, composer: Actor) -> None:
    target = dict(alert.target or {})
    if not target.get("zones"):
        return
    record = targeting.resolution_record(session, targeting.TargetSpec.from_json(target))
    if target.get("zone_versions") != record["zone_versions"]:
        target["zone_versions"] = record["zone_versions"]
        _back_to_draft(session, alert, {"target": target}, composer)


def approve(session: Session, alert_id: int, approver: Actor, *, seen_hash: str | None,
            override_reason: str | None = None) -> Alert:
    """Approve a pending alert after reviewing it (`seen_hash`: the approval hash shown). With all
    the approvals it needs it is queued for fan-out (or scheduled), its correction and cancellation
    texts are armed, and an approved correction replaces its original.

    Raises NotFound, InvalidInput (no seen_hash; a blast radius without a reason),
    InvalidTransition, Refused (role, stale hash, audience moved, no route),
    TwoPersonRuleViolated. Locks the alert: two approvers clicking together produce one approval
    each, one transition."""
    seen = guards.seen_hash_given(seen_hash)
    alert = get_alert(session, alert_id, lock=True)
    guards.pending_approval(alert)
    guards.not_an_author(session, alert, approver)
    guards.may(approver, "alerts.approve", "approve alerts")
    guards.within_area(session, approver, alert.target, "approve")
    operator_id = guards.an_operator(approver, alert)
    current = guards.unchanged_since_review(alert, seen)
    before = guards.first_approval_by(session, alert, operator_id)
    guards.has_route(session, alert)
    preview = guards.audience_as_submitted(session, alert)
    reason = guards.blast_radius_explained(session, alert, preview, override_reason)
    if alert.template_id is not None:  # still its approved template's words? else its priority's rule
        alert.required_approvals = template_use.approvals_needed(
            session, alert, required_approvals(alert.priority, alert.mode), approver)
    return _record_approval(session, alert, approver, current, before + 1, reason,
                            preview.total if preview is not None else None)


def _record_approval(session: Session, alert: Alert, approver: Actor, current: str, count: int,
                     reason: str | None, recipients_now: int | None) -> Alert:
    session.add(AlertApproval(alert_id=alert.id, operator_id=approver.operator_id, approval_hash=current,
                              override_reason=reason, submitted_recipients=alert.submitted_recipients,
                              recipients_at_approval=recipients_now))
    trail.append(session, actor=approver, action="alert.approved", subject_type="alert", subject_id=alert.id,
                 payload={"approval_hash": current, "approvals": count,
                          "required": alert.required_approvals, "override_reason": reason,
                          "submitted_recipients": alert.submitted_recipients, "recipients_at_approval": recipients_now})
    prearmed.arm_on_approval(session, alert, approver)
    if count < alert.required_approvals:
        return alert
    alert.approved_by_id, alert.approved_at = approver.operator_id, utcnow()
    if alert.scheduled_at is not None and alert.scheduled_at > utcnow():
        move_alert(alert, S.SCHEDULED)  # the scheduler's pass queues it when due (Postgres holds the time)
    else:
        move_alert(alert, S.APPROVED)
        enqueue_fan_out(session, alert)
    if alert.kind is not AlertKind.ALERT and alert.corrects_alert_id is not None:
        original = get_alert(session, alert.corrects_alert_id, lock=True)
        if original.state in FIREABLE:  # a CAP Update may reference an alert never approved: nothing to stop
            supersede(session, original, alert, approver)
    return alert


def enqueue_fan_out(session: Session, alert: Alert) -> None:
    """Queue the alert's fan-out after commit (best effort: the reconciler re-enqueues if lost). A flash
    alert also wakes every gateway's flash lane at commit, which starts it without Redis."""
    job = job_ids.fan_out(alert.id)
    enqueue_after_commit(session, job.func, alert.id, queue=alert.priority.queue_name, job_id=job.job_id)
    if alert.priority is Priority.FLASH:
        notify_flash(session, alert.id)


def reject(session: Session, alert_id: int, approver: Actor, reason: str) -> Alert:
    """Reject a pending alert with a reason; the composer may revise it (rejected → draft)."""
    why = guards.reason_given(reason)
    alert = get_alert(session, alert_id, lock=True)
    guards.may(approver, "alerts.reject", "reject alerts")
    move_alert(alert, S.REJECTED)
    alert.reason = why
    trail.append(session, actor=approver, action="alert.rejected", subject_type="alert", subject_id=alert.id,
                 payload={"reason": alert.reason})
    return alert


# -- stop -------------------------------------------------------------------------------------

def cancel(session: Session, alert_id: int, actor: Actor, reason: str) -> Alert:
    """Stop an alert: its unsent deliveries become cancelled at once, in one statement. Its composer
    may always stop it; anyone else needs the role.

    Cancelling is not informing: for a live alert already reaching phones, the console offers the
    correction right after (alerting/alerts/corrections.py)."""
    alert = get_alert(session, alert_id, lock=True)
    if actor.operator_id is None or actor.operator_id != alert.composed_by_id:
        guards.may(actor, "alerts.cancel", "cancel alerts")
    _cancel(session, alert, actor, reason)
    return alert


def _cancel(session: Session, alert: Alert, actor: Actor, reason: str) -> int:
    """The cancel transition; returns how many unsent deliveries it cancelled."""
    move_alert(alert, S.CANCELLED)
    alert.cancelled_at, alert.reason = utcnow(), reason
    purged = rowcount(session.execute(
        update(Delivery)
        .where(Delivery.alert_id == alert.id,
               # Two equalities, not IN: each uses its partial index (claim, in-flight).
               or_(Delivery.state == DeliveryState.QUEUED, Delivery.state == DeliveryState.WAITING_ROUTE))
        .values(state=DeliveryState.CANCELLED, updated_at=utcnow())
    ))
    trail.append(session, actor=actor, action="alert.cancelled", subject_type="alert", subject_id=alert.id,
                 payload={"reason": reason, "deliveries_cancelled": purged})
    return purged


def supersede(session: Session, original: Alert, correction: Alert, actor: Actor) -> int:
    """Stop what is left of the original and mark it replaced by `correction`; returns how many
    unsent deliveries were purged. An original already superseded (a correction went first) stays so."""
    if original.state is S.SUPERSEDED:
        return 0
    purged = 0
    if original.state in (S.APPROVED, S.SCHEDULED, S.SENDING):
        purged = _cancel(session, original, actor, reason=f"{correction.kind.value} {correction.reference} sent")
    move_alert(original, S.SUPERSEDED)
    original.superseded_by_id = correction.id
    return purged
