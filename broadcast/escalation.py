"""Escalation: chase those who did not answer, and raise HELP at once.

Per alert, `ack_deadline_s` and a policy in `alerts.escalation` (all keys optional):

    {"resend": true,                 # at the deadline, re-send the alert to non-responders
     "resend_carrier": "beta",       # ... only through this carrier, or
     "resend_other_carrier": true,   # ... avoiding the carrier that carried it the first time
     "supervisors": "supervisores",  # the group told the list of non-responders
     "supervisors_after_s": 300,     # after the re-send (default: at the deadline when no re-send)
     "verification": false}          # a "reply SI to confirm" campaign: at the deadline non-responders
                                     # become unverified instead

`escalate_due(session, now)` is called by the reconciler/scheduler each pass with the time passed in
(tests control the clock). Each stage is recorded once in `escalations` (unique per alert and
stage), audited, and its messages are follow-ups sent by a job on the alert's priority queue
(broadcast/followups.py). HELP replies are raised by `raise_help_now` from the reply pass itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerting.base import runtime
from alerting.base.db import rowcount, transaction
from alerting.base.errors import InvalidTransition, NotFound
from alerting.base.models import Alert, AlertMode, AlertState
from alerting.base.models.messages import ANSWERED
from alerting.base.phones import mask_msisdn
from alerting.base.sms_text.rendering import render, texts_for_phones
from alerting.directory.senders import default_sender_name, sender_keyword
from audit import trail
from audit.actor import Actor
from broadcast.followups import FollowupDraft, create_followups, queue_pending
from broadcast.inbound import queue_sweep

log = logging.getLogger("sirena.escalation")

SYSTEM = Actor.system("escalation")
LOOKBACK = timedelta(days=7)
LIST_IN_SMS = 10


@dataclass(frozen=True)
class Policy:
    resend: bool = True
    resend_carrier: str | None = None
    resend_other_carrier: bool = False
    supervisors: str | None = None
    supervisors_after_s: int | None = None
    verification: bool = False

    @classmethod
    def of(cls, alert: Alert) -> Policy:
        raw: dict[str, Any] = dict(alert.escalation or {})
        return cls(resend=bool(raw.get("resend", True)), resend_carrier=raw.get("resend_carrier"),
                   resend_other_carrier=bool(raw.get("resend_other_carrier", False)),
                   supervisors=raw.get("supervisors"), supervisors_after_s=raw.get("supervisors_after_s"),
                   verification=bool(raw.get("verification", False)))

    def stages(self, deadline: datetime, ack_deadline_s: int) -> list[tuple[str, datetime]]:
        """(stage, when) in order."""
        if self.verification:
            return [("verify_close", deadline)]
        out = [("resend", deadline)] if self.resend else []
        if self.supervisors:
            after = self.supervisors_after_s if self.supervisors_after_s is not None else (
                ack_deadline_s if self.resend else 0)
            out.append(("supervisors", deadline + timedelta(seconds=after)))
        return out


def escalate_due(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Run every escalation stage due at `now`; returns what was done. Idempotent per stage.

    Also queues the sending of follow-ups whose job was lost (Redis flushed).
    """
    alerts = session.scalars(select(Alert).where(
        Alert.ack_deadline_s.is_not(None), Alert.sending_at.is_not(None),
        Alert.state.in_([AlertState.SENDING, AlertState.COMPLETED]),
        Alert.sending_at > now - LOOKBACK).order_by(Alert.id)).all()
    done: list[dict[str, Any]] = []
    for alert in alerts:
        assert alert.sending_at is not None and alert.ack_deadline_s is not None  # the query's condition
        deadline = alert.sending_at + timedelta(seconds=alert.ack_deadline_s)
        if deadline > now:
            continue
        for stage, when in Policy.of(alert).stages(deadline, alert.ack_deadline_s):
            if when <= now:
                result = run_stage(session, alert, stage, SYSTEM)
                if result is not None:
                    done.append(result)
    queue_pending(session)
    return done


def periodic_pass(now: datetime) -> dict[str, Any]:
    """What the reconciler/scheduler runs each pass (one line there): escalation stages due at `now`
    (own transaction) and a sweep job for inbound rows whose interpretation job never ran. The
    sweep is a job because it needs a gateway worker: receipt id styles and the routes for
    retrying through another carrier live in the carriers file the gateway loaded."""
    with transaction() as session:
        done = escalate_due(session, now)
    queued = queue_sweep(now.timestamp())
    return {"escalations": done, "sweep_queued": queued}


def escalate_now(session: Session, alert_id: int, actor: Actor) -> list[dict[str, Any]]:
    """The console's "escalate now": every stage not yet run, at once. Raises NotFound, InvalidTransition."""
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist", alert_id=alert_id)
    if alert.state not in (AlertState.SENDING, AlertState.COMPLETED):
        raise InvalidTransition(f"alert is {alert.state}: only a sent alert can be escalated", alert_id=alert_id)
    policy = Policy.of(alert)
    stages = policy.stages(alert.sending_at or alert.created_at, alert.ack_deadline_s or 0)
    return [r for stage, _ in stages if (r := run_stage(session, alert, stage, actor)) is not None]


def run_stage(session: Session, alert: Alert, stage: str, actor: Actor) -> dict[str, Any] | None:
    """Run one stage unless it ran already (the unique row decides, so two passes never both run it)."""
    claimed = session.execute(text("""
        INSERT INTO escalations (alert_id, stage) VALUES (:a, :s)
        ON CONFLICT (alert_id, stage, coalesce(reply_id, 0)) DO NOTHING RETURNING id
    """), {"a": alert.id, "s": stage}).scalar_one_or_none()
    if claimed is None:
        return None
    policy = Policy.of(alert)
    silent = _non_responders(session, alert.id)
    if stage == "resend":
        count = _resend(session, alert, policy, silent)
    elif stage == "supervisors":
        count = _notify_supervisors(session, alert, policy, silent)
    else:
        count = rowcount(session.execute(text("""
            UPDATE contacts SET verification_state = 'unverified', verified_at = now(), updated_at = now()
             WHERE id = ANY(:ids)"""), {"ids": [r["contact_id"] for r in silent if r["contact_id"]]}
        ))
    details = {"non_responders": len(silent), "messages": count}
    session.execute(text("UPDATE escalations SET recipients = :n, details = CAST(:d AS jsonb) WHERE id = :id"),
                    {"n": count, "d": _json(details), "id": claimed})
    trail.append(session, actor=actor, action=f"alert.escalated.{stage}", subject_type="alert", subject_id=alert.id,
                 payload={**details, "deliveries": [r["delivery_id"] for r in silent]})
    log.info("alert %s escalation %s: %d non-responders, %d messages", alert.id, stage, len(silent), count)
    return {"alert_id": alert.id, "stage": stage, **details}


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value)


def _non_responders(session: Session, alert_id: int) -> list[dict[str, Any]]:
    rows = session.execute(text("""
        SELECT d.id AS delivery_id, d.msisdn, d.language, d.carrier, d.contact_id, c.name, c.attributes
          FROM deliveries d LEFT JOIN contacts c ON c.id = d.contact_id
         WHERE d.alert_id = :a AND d.state IN ('submitted', 'delivered', 'failed', 'expired')
           AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.delivery_id = d.id AND r.meaning = ANY(:answered))
         ORDER BY d.id
    """), {"a": alert_id, "answered": list(ANSWERED)}).mappings().all()
    return [dict(r) for r in rows]


def _text_for(alert: Alert, row: Mapping[str, Any], keyword: str | None) -> str:
    """The text this recipient's phone showed the first time (same rendering as the gateway);
    `keyword`: the alert's sender's, when it is a shared code (alerting.directory.senders.sender_keyword)."""
    texts = texts_for_phones(alert, keyword)
    language = row["language"] if row["language"] in texts else next(iter(texts))
    return render(texts[language], mode=alert.mode, language=language, code=alert.reply_code,
                  reference=alert.reference, contact_name=row["name"], attributes=row["attributes"])


def retry_undelivered(session: Session, delivery_ids: list[int], carriers_by_sender: Mapping[str, set[str]]) -> int:
    """Re-send, once, each delivery a receipt declared undelivered/expired through another carrier
    that carries its sender (none: nothing to do). Returns how many follow-ups were queued."""
    rows = session.execute(text("""
        SELECT d.id AS delivery_id, d.alert_id, d.msisdn, d.language, d.carrier, d.contact_id, c.name, c.attributes
          FROM deliveries d LEFT JOIN contacts c ON c.id = d.contact_id
         WHERE d.id = ANY(:ids) AND d.state IN ('failed', 'expired')
           AND NOT EXISTS (SELECT 1 FROM followups f WHERE f.delivery_id = d.id AND f.kind = 'carrier_retry')
    """), {"ids": delivery_ids}).mappings().all()
    alerts = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_({r["alert_id"] for r in rows})))}
    by_queue: dict[str, list[FollowupDraft]] = {}
    keywords = {name: sender_keyword(session, name) for name in {a.sender_name for a in alerts.values()}}
    for row in rows:
        alert = alerts[row["alert_id"]]
        others = carriers_by_sender.get(alert.sender_name, set()) - {row["carrier"]}
        if alert.state is AlertState.CANCELLED or not others:
            continue
        by_queue.setdefault(alert.priority.queue_name, []).append(FollowupDraft(
            row["msisdn"], "carrier_retry", alert.sender_name, _text_for(alert, dict(row), keywords[alert.sender_name]),
            alert_id=alert.id, delivery_id=row["delivery_id"], contact_id=row["contact_id"],
            test_only=alert.mode is not AlertMode.LIVE,
            avoid_carriers=(row["carrier"],) if row["carrier"] else None))
    for queue, drafts in by_queue.items():
        create_followups(session, drafts, created_by="receipts", queue=queue)
    return sum(len(d) for d in by_queue.values())


def _resend(session: Session, alert: Alert, policy: Policy, silent: list[dict[str, Any]]) -> int:
    drafts = []
    keyword = sender_keyword(session, alert.sender_name)
    for row in silent:
        body = _text_for(alert, row, keyword)
        drafts.append(FollowupDraft(
            row["msisdn"], "resend", alert.sender_name, body, alert_id=alert.id, delivery_id=row["delivery_id"],
            contact_id=row["contact_id"], test_only=alert.mode is not AlertMode.LIVE,
            allowed_carriers=(policy.resend_carrier,) if policy.resend_carrier else None,
            avoid_carriers=(row["carrier"],) if policy.resend_other_carrier and row["carrier"] else None))
    create_followups(session, drafts, created_by="escalation", queue=alert.priority.queue_name)
    return len(drafts)


def _supervisors(session: Session, group: str) -> list[tuple[int, str, str]]:
    return [tuple(r) for r in session.execute(text("""
        SELECT c.id, c.msisdn, c.language FROM groups g JOIN group_members gm ON gm.group_id = g.id
          JOIN contacts c ON c.id = gm.contact_id WHERE g.name = :g ORDER BY c.id
    """), {"g": group}).all()]


def _notify_supervisors(session: Session, alert: Alert, policy: Policy, silent: list[dict[str, Any]]) -> int:
    if not policy.supervisors:
        return 0
    names = [r["name"] or mask_msisdn(r["msisdn"]) for r in silent[:LIST_IN_SMS]]
    more = f" y {len(silent) - LIST_IN_SMS} mas" if len(silent) > LIST_IN_SMS else ""
    body = (f"SIRENA {alert.reference}: {len(silent)} sin responder: {', '.join(names)}{more}. Ver consola."
            if silent else f"SIRENA {alert.reference}: todos respondieron.")
    drafts = [FollowupDraft(msisdn, "supervisor_notice", alert.sender_name, body, alert_id=alert.id,
                            contact_id=contact_id, test_only=alert.mode is not AlertMode.LIVE)
              for contact_id, msisdn, _ in _supervisors(session, policy.supervisors)]
    create_followups(session, drafts, created_by="escalation", queue=alert.priority.queue_name)
    return len(drafts)


def raise_help_now(session: Session, helps: list[tuple[int, int | None, str, str | None]], *,
                   oncall_group: str | None = None) -> None:
    """HELP replies (reply id, alert id, number, text): audited and told at once by SMS, at flash
    priority and in the reply's own transaction, to a person: the alert's supervisors' group, or
    the on-call group (`oncall_group`, by default SIRENA_ONCALL_GROUP) when the alert names none,
    its group has nobody in it, or the HELP matched no alert. Each also stays pinned on the
    console until an operator marks it handled (alerting/alerts/help_desk.py)."""
    if oncall_group is None:
        settings = runtime.settings()
        oncall_group = settings.oncall_group if settings is not None else None
    alert_ids = {a for _, a, _, _ in helps if a is not None}
    alerts = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(alert_ids)))} if alert_ids else {}
    names: dict[int, str] = dict(session.execute(text(
        "SELECT r.id, c.name FROM replies r JOIN contacts c ON c.id = r.contact_id WHERE r.id = ANY(:ids)"),
        {"ids": [h[0] for h in helps]}).all())
    fallback_sender: list[str | None] = []
    drafts = []
    for reply_id, alert_id, msisdn, body in helps:
        trail.append(session, actor=SYSTEM, action="reply.help", subject_type="alert", subject_id=alert_id,
                     payload={"reply_id": reply_id, "from": mask_msisdn(msisdn), "text": body})
        alert = alerts.get(alert_id) if alert_id is not None else None
        who = f"{names[reply_id]} {mask_msisdn(msisdn)}" if names.get(reply_id) else mask_msisdn(msisdn)
        if alert is not None:
            claimed = session.execute(text("""
                INSERT INTO escalations (alert_id, stage, reply_id) VALUES (:a, 'help', :r)
                ON CONFLICT (alert_id, stage, coalesce(reply_id, 0)) DO NOTHING RETURNING id
            """), {"a": alert_id, "r": reply_id}).scalar_one_or_none()
            if claimed is None:
                continue  # told already (this reply was interpreted before)
            policy = Policy.of(alert)
            people = _supervisors(session, policy.supervisors) if policy.supervisors else []
            if not people and oncall_group:
                people = _supervisors(session, oncall_group)
            notice = f"SIRENA {alert.reference}: AYUDA de {who}: {(body or '')[:80]}. Ver consola."
            drafts += [FollowupDraft(m, "help_notice", alert.sender_name, notice, alert_id=alert.id, contact_id=c,
                                     reply_id=reply_id, test_only=alert.mode is not AlertMode.LIVE)
                       for c, m, _ in people]
        elif oncall_group:
            if not fallback_sender:
                fallback_sender.append(default_sender_name(session))
            if fallback_sender[0] is None:
                log.warning("HELP reply %s matched no alert and no sender can tell the on-call group", reply_id)
                continue
            notice = f"SIRENA: AYUDA sin alerta de {who}: {(body or '')[:80]}. Ver consola."
            drafts += [FollowupDraft(m, "help_notice", fallback_sender[0], notice, contact_id=c, reply_id=reply_id)
                       for c, m, _ in _supervisors(session, oncall_group)]
    if drafts:
        create_followups(session, drafts, created_by="help", queue="flash")
