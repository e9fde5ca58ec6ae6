"""Pre-armed corrections (FIELD.md requirements 5, 6 and 13).

Hawaii 2018 had no correction message ready, and took 38 minutes to send one. Here:

- every alert carries a correction text and a cancellation text per language, written (or taken
  from the templates below) while it is still a draft. They can change only while the alert is
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
  (`approve_alert`), it replaces the original exactly as a fired correction does. A text given
  to `fire_correction` is refused (and the refusal audited by the error boundary).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.types import DateTime

from alerting.alerts import lifecycle
from alerting.base.db import Base, created_at_column, utcnow
from alerting.base.errors import InvalidInput, InvalidTransition, Refused
from alerting.base.models import Alert, AlertKind, AlertState, Delivery, DeliveryState, Priority
from alerting.base.models.alerts import AuthorRole, check_transition
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor

CORRECTION_TEMPLATES = {
    "es": "CORRECCIÓN: el mensaje {referencia} fue enviado por error. No hay emergencia. No haga nada.",
    "en": "CORRECTION: message {referencia} was sent in error. There is no emergency. Take no action.",
}
CANCEL_TEMPLATES = {
    "es": "ANULADA: la alerta {referencia} queda sin efecto. Siga las indicaciones de las autoridades.",
    "en": "CANCELLED: alert {referencia} no longer applies. Follow the authorities' instructions.",
}
MARKER = {"correction": {"es": "CORRECCIÓN {ref}: ", "en": "CORRECTION {ref}: "},
          "cancel": {"es": "ANULADA {ref}: ", "en": "CANCELLED {ref}: "}}
FIREABLE = frozenset({AlertState.APPROVED, AlertState.SCHEDULED, AlertState.SENDING, AlertState.COMPLETED,
                      AlertState.CANCELLED})
MAX_CORRECTION_CHARS = 1000
ORIGINS = frozenset({"console", "api", "cli", "email", "cap"})


class PrearmedTexts(Base):
    """The correction and cancellation texts of one alert, approved with it."""

    __tablename__ = "alert_prearmed"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    correction_texts: Mapped[dict[str, str]] = mapped_column(JSONB)
    cancel_texts: Mapped[dict[str, str]] = mapped_column(JSONB)
    texts_sha256: Mapped[str] = mapped_column(String(64))
    armed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    armed_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    fired_alert_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("alerts.id"))
    fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = created_at_column()


def _digest(correction: dict[str, str], cancel: dict[str, str]) -> str:
    material = json.dumps({"correction": correction, "cancel": cancel}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def default_texts(languages: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The templates' correction and cancellation texts for these languages."""
    langs = [lang for lang in languages if lang in CORRECTION_TEMPLATES] or ["es"]
    return ({lang: CORRECTION_TEMPLATES[lang] for lang in langs}, {lang: CANCEL_TEMPLATES[lang] for lang in langs})


def prearmed(session: Session, alert_id: int) -> PrearmedTexts | None:
    return session.get(PrearmedTexts, alert_id)


def set_prearmed_texts(session: Session, alert_id: int, correction: dict[str, str] | None,
                       cancel: dict[str, str] | None, editor: Actor) -> PrearmedTexts:
    """Write an editable alert's correction and cancellation texts (blank ones: the templates).

    A change to texts already saved goes through `lifecycle.update_draft`, which returns the alert
    to draft and voids its approvals. Raises InvalidTransition once the alert is no longer editable,
    InvalidInput for an empty or over-long text.
    """
    alert = lifecycle.get_alert(session, alert_id, lock=True)
    if alert.state not in lifecycle.EDITABLE:
        raise InvalidTransition(f"alert {alert.reference} is {alert.state.value}; its correction texts are fixed",
                                alert_id=alert_id)
    base_correction, base_cancel = default_texts(sorted(alert.texts))
    correction = {k: v.strip() for k, v in (correction or {}).items() if v and v.strip()} or base_correction
    cancel = {k: v.strip() for k, v in (cancel or {}).items() if v and v.strip()} or base_cancel
    problems = {f"{name}.{lang}": f"longer than {MAX_CORRECTION_CHARS} characters"
                for name, texts in (("correction_texts", correction), ("cancel_texts", cancel))
                for lang, body in texts.items() if len(body) > MAX_CORRECTION_CHARS}
    problems.update({f"{name}.{lang}": "language must be es or en"
                     for name, texts in (("correction_texts", correction), ("cancel_texts", cancel))
                     for lang in texts if lang not in ("es", "en")})
    if problems:
        raise InvalidInput("the correction texts cannot be used as given", fields=problems)
    digest = _digest(correction, cancel)
    row = session.get(PrearmedTexts, alert_id, with_for_update=True)
    if row is not None and row.texts_sha256 == digest:
        return row
    if row is not None and alert.state is not AlertState.DRAFT:
        lifecycle.update_draft(session, alert_id, {}, editor)  # voids approvals: they covered the old texts
    if row is not None or editor.operator_id != alert.composed_by_id:
        lifecycle.record_author(session, alert_id, editor, AuthorRole.EDITOR)  # these texts are approved with it
    if row is None:
        row = PrearmedTexts(alert_id=alert_id, correction_texts=correction, cancel_texts=cancel, texts_sha256=digest)
        session.add(row)
    else:
        row.correction_texts, row.cancel_texts, row.texts_sha256 = correction, cancel, digest
        row.armed_at, row.armed_by_id, row.updated_at = None, None, utcnow()
    session.flush()
    trail.append(session, actor=editor, action="alert.correction_texts_set", subject_type="alert",
                 subject_id=alert_id, payload={"correction_texts": correction, "cancel_texts": cancel,
                                               "texts_sha256": digest})
    return row


def approve_alert(session: Session, alert_id: int, approver: Actor, *, seen_hash: str | None,
                  override_reason: str | None = None, recipients_now: int | None = None) -> Alert:
    """`lifecycle.approve_alert`, then arm the alert's correction and cancellation with the same approval.

    A correction or cancellation notice that has all its approvals now also replaces its original:
    the original's unsent deliveries are purged and it becomes superseded, as `fire_correction` does
    (CAP Update and Cancel messages, imported as corrections, included).
    """
    alert = lifecycle.approve_alert(session, alert_id, approver, seen_hash=seen_hash, override_reason=override_reason,
                                    recipients_now=recipients_now)
    arm_on_approval(session, alert, approver)
    if (alert.kind is not AlertKind.ALERT and alert.corrects_alert_id is not None
            and alert.state is not AlertState.PENDING_APPROVAL):
        original = lifecycle.get_alert(session, alert.corrects_alert_id, lock=True)
        if original.state in FIREABLE:  # a CAP Update may reference an alert never approved: nothing to stop
            _supersede(session, original, alert, approver)
    return alert


def arm_on_approval(session: Session, alert: Alert, approver: Actor) -> PrearmedTexts:
    """Record that the approval covered the correction texts (the templates if none were written)."""
    row = session.get(PrearmedTexts, alert.id, with_for_update=True)
    if row is None:
        correction, cancel = default_texts(sorted(alert.texts))
        row = PrearmedTexts(alert_id=alert.id, correction_texts=correction, cancel_texts=cancel,
                            texts_sha256=_digest(correction, cancel))
        session.add(row)
    row.armed_at, row.armed_by_id = utcnow(), approver.operator_id
    session.flush()
    trail.append(session, actor=approver, action="alert.correction_armed", subject_type="alert", subject_id=alert.id,
                 payload={"texts_sha256": row.texts_sha256})
    return row


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
    permissions.require(actor, "alerts.correct", "send corrections")
    if text is not None:
        # One person may send only what was approved with the original: anything else could be a
        # new alert to the whole audience on one account's word.
        raise Refused("only the pre-approved text can be sent in one step; a different text needs another "
                      "operator's approval: propose it as a correction pending approval", alert_id=original_id)
    original = lifecycle.get_alert(session, original_id, lock=True)
    if original.state not in FIREABLE:
        raise InvalidTransition(f"alert {original.reference} is {original.state.value}: nothing was sent to correct",
                                alert_id=original_id)
    row = session.get(PrearmedTexts, original.id, with_for_update=True)
    if row is None or row.armed_at is None:
        raise Refused(f"alert {original.reference} has no approved correction; compose one for approval",
                      alert_id=original_id)
    armed = row.correction_texts if kind is AlertKind.CORRECTION else row.cancel_texts
    texts = {lang: body.replace("{referencia}", original.reference).replace("{reference}", original.reference)
             for lang, body in armed.items()}
    now = utcnow()
    correction = _correction_alert(session, original, actor, kind, texts, AlertState.APPROVED, now)
    correction.approved_by_id, correction.approved_at, correction.required_approvals = actor.operator_id, now, 1
    correction.approval_hash = lifecycle.approval_hash(correction)
    purged = _supersede(session, original, correction, actor)
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
    to, and then replaces the original (`approve_alert`). The text is marked with the correction
    marker and the original's reference in every language of the original. Composer, approver or
    admin role. Raises Refused (role), InvalidInput (text), InvalidTransition (nothing was sent yet,
    or another correction of it is already waiting for approval).
    """
    if kind is AlertKind.ALERT:
        raise InvalidInput("a correction is a correction or a cancellation notice",
                           fields={"kind": "correction or cancel"})
    permissions.require(actor, "alerts.propose_correction", "propose corrections")
    original = lifecycle.get_alert(session, original_id, lock=True)
    if original.state not in FIREABLE | {AlertState.SUPERSEDED}:
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
    correction.required_approvals = lifecycle.required_approvals(Priority.FLASH, original.mode)
    correction.approval_hash = lifecycle.approval_hash(correction)
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
        reply_code=lifecycle.new_reply_code(session), kind=kind, mode=original.mode, priority=Priority.FLASH,
        state=state, title=f"{kind.value.upper()} {original.reference}", sender_name=original.sender_name,
        texts=texts, target={}, corrects_alert_id=original.id, composed_by_id=actor.operator_id,
        submitted_at=now, origin=actor.interface if actor.interface in ORIGINS else "console",
        incident_id=original.incident_id,  # a correction belongs to its original's incident
    )
    session.add(correction)
    session.flush()
    correction.reference = f"A-{now:%Y}-{correction.id:06d}"
    lifecycle.record_author(session, correction.id, actor, AuthorRole.COMPOSER)  # never its approver
    return correction


def _supersede(session: Session, original: Alert, correction: Alert, actor: Actor) -> int:
    """Stop what is left of the original and mark it replaced by `correction`; returns how many
    unsent deliveries were purged. An original already superseded (a correction went first) stays so."""
    if original.state is AlertState.SUPERSEDED:
        return 0
    purged = 0
    if original.state in (AlertState.APPROVED, AlertState.SCHEDULED, AlertState.SENDING):
        purged = _unsent(session, original.id)
        lifecycle.cancel_alert(session, original.id, actor,
                               reason=f"{correction.kind.value} {correction.reference} sent")
    check_transition(original, AlertState.SUPERSEDED)
    original.state, original.updated_at, original.superseded_by_id = AlertState.SUPERSEDED, utcnow(), correction.id
    return purged


def _typed_texts(original: Alert, kind: AlertKind, text: str) -> dict[str, str]:
    body = " ".join((text or "").split())
    if not body:
        raise InvalidInput("the correction text is empty", fields={"text": "required"})
    if len(body) > MAX_CORRECTION_CHARS:
        raise InvalidInput("the correction text is too long", fields={"text": f"at most {MAX_CORRECTION_CHARS}"})
    if "{" in body or "}" in body:
        raise InvalidInput("a typed correction cannot hold placeholders", fields={"text": "remove { }"})
    marker = MARKER["correction" if kind is AlertKind.CORRECTION else "cancel"]
    return {lang: marker.get(lang, marker["es"]).format(ref=original.reference) + body
            for lang in sorted(original.texts or {"es": ""})}


def _unsent(session: Session, alert_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.alert_id == alert_id,
        or_(Delivery.state == DeliveryState.QUEUED, Delivery.state == DeliveryState.WAITING_ROUTE))) or 0)


def correction_timing(session: Session, correction: Alert) -> dict[str, Any]:
    """Seconds from the decision (the correction's creation) to its first SMS handed to a carrier."""
    first = correction.first_submit_at
    return {"decided_at": correction.created_at, "first_submit_at": first,
            "seconds": (first - correction.created_at).total_seconds() if first and correction.created_at else None}
