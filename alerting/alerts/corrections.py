"""Pre-armed corrections (FIELD.md requirements 5, 6 and 13).

Hawaii 2018 had no correction message ready, and took 38 minutes to send one. Here:

- every alert carries a correction text and a cancellation text per language, written (or taken
  from the templates in alerting/alerts/prearmed.py) while it is still a draft. They can change only while the alert is
  editable, and changing them returns it to draft and voids its approvals, so the approval of the
  alert is also the approval of its correction and cancellation (`arm_on_approval` records it);
- firing the PRE-APPROVED correction takes ONE operator with the approver or admin role and one
  step (`fire_correction`): the original's unsent deliveries are purged at once, the original
  becomes superseded, and a kind=correction alert at flash priority goes to every number that got
  the original or was queued to (the fan-out copies the original's deliveries). No second
  approval: speed over ceremony, audited like everything else;
- the same, with the cancellation text, is `fire_cancel_notice`;
- any other text is a new message to the whole audience, so it is never sent on one person's
  word: `propose_correction` makes a correction alert PENDING APPROVAL (flash, the same audience,
  marked with the correction marker and the original's reference) that needs the normal
  approval by other operators, as many as a flash alert of that mode needs. Once approved
  (`lifecycle.approve`), it replaces the original exactly as a fired correction does. A text given
  to `fire_correction` is refused (and the refusal audited by the error boundary).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.alerts import guards, lifecycle, prearmed
from alerting.alerts.drafts import approval_hash, get_alert, new_reply_code, record_author, required_approvals
from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, InvalidTransition, Refused
from alerting.base.models import Alert, AlertKind, AlertState, Priority
from alerting.base.models.alerts import AuthorRole
from audit import trail
from audit.actor import Actor

MARKER = {"correction": {"es": "CORRECCIÓN {ref}: ", "en": "CORRECTION {ref}: "},
          "cancel": {"es": "ANULADA {ref}: ", "en": "CANCELLED {ref}: "}}
ORIGINS = frozenset({"console", "api", "cli", "email", "cap"})


def fire_correction(session: Session, original_id: int, actor: Actor, text: str | None = None) -> Alert:
    """Send the original's PRE-APPROVED correction now, to everyone who got it or was queued to.

    One operator with the approver or admin role; no second approval (FIELD.md req. 5), because the
    original's approval approved this text. Purges the original's unsent deliveries, marks it
    superseded, queues the correction's fan-out on the flash queue. Returns the correction.
    `text` must be None: another text needs approval (`propose_correction`), and giving one here is
    Refused. Raises Refused (role, not armed, a text), InvalidTransition (nothing was sent, or
    already corrected).
    """
    return _fire(session, original_id, actor, AlertKind.CORRECTION, text)


def fire_cancel_notice(session: Session, original_id: int, actor: Actor, text: str | None = None) -> Alert:
    """Like fire_correction, with the pre-approved cancellation text ("this alert no longer applies")."""
    return _fire(session, original_id, actor, AlertKind.CANCEL, text)


def _fire(session: Session, original_id: int, actor: Actor, kind: AlertKind, text: str | None) -> Alert:
    guards.may(actor, "alerts.correct", "send corrections")
    if text is not None:
        # One person may send only what was approved with the original: anything else could be a
        # new alert to the whole audience on one account's word.
        raise Refused("only the pre-approved text can be sent in one step; a different text needs another "
                      "operator's approval: propose it as a correction pending approval", alert_id=original_id)
    original = get_alert(session, original_id, lock=True)
    if original.state not in lifecycle.FIREABLE:
        raise InvalidTransition(f"alert {original.reference} is {original.state.value}: nothing was sent to correct",
                                alert_id=original_id)
    row = prearmed.prearmed(session, original.id, lock=True)
    if row is None or row.armed_at is None:
        raise Refused(f"alert {original.reference} has no approved correction; compose one for approval",
                      alert_id=original_id)
    armed = row.correction_texts if kind is AlertKind.CORRECTION else row.cancel_texts
    texts = {lang: body.replace("{referencia}", original.reference).replace("{reference}", original.reference)
             for lang, body in armed.items()}
    now = utcnow()
    correction = _correction_alert(session, original, actor, kind, texts, AlertState.APPROVED, now)
    correction.approved_by_id, correction.approved_at, correction.required_approvals = actor.operator_id, now, 1
    correction.approval_hash = approval_hash(correction)
    purged = lifecycle.supersede(session, original, correction, actor)
    row.fired_alert_id, row.fired_at = correction.id, now
    trail.append(session, actor=actor, action=f"alert.{kind.value}_fired", subject_type="alert", subject_id=original.id,
                 payload={"alert_id": original.id, "correction_id": correction.id, "kind": kind.value,
                          "texts": texts, "pre_armed": True, "unsent_purged": purged,
                          "texts_sha256": row.texts_sha256})
    lifecycle.enqueue_fan_out(session, correction)
    return correction


def propose_correction(session: Session, original_id: int, text: str, actor: Actor, *,
                       kind: AlertKind = AlertKind.CORRECTION) -> Alert:
    """A correction (or cancellation notice) with a text of the moment, PENDING APPROVAL.

    It goes, once approved by other operators (as many as a flash alert of the original's mode
    needs; never its proposer), at flash priority to everyone who got the original or was queued
    to, and then replaces the original (`lifecycle.approve`). The text is marked with the correction
    marker and the original's reference in every language of the original. Composer, approver or
    admin role. Raises Refused (role), InvalidInput (text), InvalidTransition (nothing was sent yet,
    or another correction of it is already waiting for approval).
    """
    if kind is AlertKind.ALERT:
        raise InvalidInput("a correction is a correction or a cancellation notice",
                           fields={"kind": "correction or cancel"})
    guards.may(actor, "alerts.propose_correction", "propose corrections")
    original = get_alert(session, original_id, lock=True)
    if original.state not in lifecycle.FIREABLE | {AlertState.SUPERSEDED}:
        raise InvalidTransition(f"alert {original.reference} is {original.state.value}: nothing was sent to correct",
                                alert_id=original_id)
    waiting = session.scalar(select(Alert.reference).where(
        Alert.corrects_alert_id == original.id, Alert.state == AlertState.PENDING_APPROVAL).limit(1))
    if waiting is not None:
        raise InvalidTransition(f"correction {waiting} of {original.reference} is already waiting for approval; "
                                "approve or reject it first", alert_id=original_id)
    texts = _typed_texts(original, kind, text)
    now = utcnow()
    correction = _correction_alert(session, original, actor, kind, texts, AlertState.PENDING_APPROVAL, now)
    correction.required_approvals = required_approvals(Priority.FLASH, original.mode)
    correction.approval_hash = approval_hash(correction)
    trail.append(session, actor=actor, action=f"alert.{kind.value}_proposed", subject_type="alert",
                 subject_id=correction.id,
                 payload={"alert_id": original.id, "correction_id": correction.id, "kind": kind.value, "texts": texts,
                          "approval_hash": correction.approval_hash,
                          "required_approvals": correction.required_approvals})
    return correction


def _correction_alert(session: Session, original: Alert, actor: Actor, kind: AlertKind, texts: dict[str, str],
                      state: AlertState, now: datetime) -> Alert:
    correction = Alert(
        reference="pending-" + hashlib.sha256(f"{original.id}{now}".encode()).hexdigest()[:12],
        reply_code=new_reply_code(session), kind=kind, mode=original.mode, priority=Priority.FLASH,
        state=state, title=f"{kind.value.upper()} {original.reference}", sender_name=original.sender_name,
        texts=texts, target={}, corrects_alert_id=original.id, composed_by_id=actor.operator_id,
        submitted_at=now, origin=actor.interface if actor.interface in ORIGINS else "console",
        incident_id=original.incident_id,  # a correction belongs to its original's incident
    )
    session.add(correction)
    session.flush()
    correction.reference = f"A-{now:%Y}-{correction.id:06d}"
    record_author(session, correction.id, actor, AuthorRole.COMPOSER)  # never its approver
    return correction


def _typed_texts(original: Alert, kind: AlertKind, text: str) -> dict[str, str]:
    body = " ".join((text or "").split())
    if not body:
        raise InvalidInput("the correction text is empty", fields={"text": "required"})
    if len(body) > prearmed.MAX_CORRECTION_CHARS:
        raise InvalidInput("the correction text is too long",
                           fields={"text": f"at most {prearmed.MAX_CORRECTION_CHARS}"})
    if "{" in body or "}" in body:
        raise InvalidInput("a typed correction cannot hold placeholders", fields={"text": "remove { }"})
    marker = MARKER["correction" if kind is AlertKind.CORRECTION else "cancel"]
    return {lang: marker.get(lang, marker["es"]).format(ref=original.reference) + body
            for lang in sorted(original.texts or {"es": ""})}


def correction_timing(session: Session, correction: Alert) -> dict[str, Any]:
    """Seconds from the decision (the correction's creation) to its first SMS handed to a carrier."""
    first = correction.first_submit_at
    return {"decided_at": correction.created_at, "first_submit_at": first,
            "seconds": (first - correction.created_at).total_seconds() if first and correction.created_at else None}
