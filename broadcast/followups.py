"""Follow-up messages: one-off SMS that belong to an alert (or to a reply) but are not broadcasts.

Re-sends to those who did not acknowledge, notices to supervisors, opt-out/opt-in confirmations,
HELP notices and an operator's direct answer to one responder. They are not alerts: the two-person
rule guards what a whole population receives, and each follow-up either repeats an approved
alert's text to people it already reached, goes to the alert's own supervisors, or answers one
person who wrote to us (audited). They are not deliveries either: `deliveries` holds one row per
(alert, number), the broadcast itself, whose counters must not move when a follow-up is sent.

So they live in `followups`, are claimed with a lease like deliveries, go through the gateway's
carrier pool (`broadcast.local_gateway.current().pool.submit_many`) in the job `send_followups`, and
get receipts like deliveries (broadcast/receipts.py matches both). A follow-up of an exercise or
test alert may only use test carriers, as the alert itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import execute_values
from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base import job_ids
from alerting.base.db import transaction
from alerting.base.errors import InvalidInput, NotFound
from alerting.base.outbox import enqueue_after_commit
from alerting.base.sms_text.encoding import encode_parts, next_reference
from audit import trail
from audit.actor import Actor
from broadcast import local_gateway
from broadcast.claims import OUTCOMES_TABLE, Outcome, outcome_columns
from broadcast.pool import OutboundMessage, SubmitResult, submit_within_cap
from broadcast.pool import Outcome as SubmitOutcome

log = logging.getLogger("sirena.followups")

KINDS = ("resend", "carrier_retry", "supervisor_notice", "help_notice", "optout_confirm", "optin_confirm",
         "direct_reply", "registration_request", "registration_answer")
LEASE_S = 30
BATCH = 500
PENDING_GRACE_S = 5


@dataclass(frozen=True, slots=True)
class FollowupDraft:
    msisdn: str
    kind: str
    sender_name: str
    text: str
    alert_id: int | None = None
    delivery_id: int | None = None
    contact_id: int | None = None
    reply_id: int | None = None
    test_only: bool = False  # a follow-up of an exercise/test alert: test carriers only
    allowed_carriers: tuple[str, ...] | None = None
    avoid_carriers: tuple[str, ...] | None = None


def create_followups(session: Session, drafts: Sequence[FollowupDraft], *, created_by: str,
                     queue: str = "high") -> list[int]:
    """Insert the follow-ups in one statement and queue their sending after commit; returns their ids."""
    if not drafts:
        return []
    for d in drafts:
        if d.kind not in KINDS:
            raise ValueError(f"unknown follow-up kind {d.kind!r}")
    rows = [(d.alert_id, d.delivery_id, d.contact_id, d.reply_id, d.msisdn, d.kind, d.sender_name, d.text,
             d.test_only, list(d.allowed_carriers) if d.allowed_carriers is not None else None,
             list(d.avoid_carriers) if d.avoid_carriers else None, created_by[:64]) for d in drafts]
    cursor = session.connection().connection.cursor()
    try:
        ids = [r[0] for r in execute_values(cursor, """
            INSERT INTO followups (alert_id, delivery_id, contact_id, reply_id, msisdn, kind, sender_name, text,
                                   test_only, allowed_carriers, avoid_carriers, created_by)
            VALUES %s RETURNING id""", rows,
            template="(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::varchar[], %s::varchar[], %s)",
            page_size=len(rows), fetch=True)]
    finally:
        cursor.close()
    job = job_ids.send_followups(min(ids), max(ids))
    enqueue_after_commit(session, job.func, queue=queue, job_id=job.job_id, timeout_s=120)
    return ids


def queue_pending(session: Session, *, queue: str = "high", grace_s: float = PENDING_GRACE_S) -> int:
    """Queue a sending job when queued (or lease-expired) follow-ups wait longer than `grace_s`.

    Called by every escalation pass, so a follow-up whose job Redis lost is still sent, and by a
    stopping worker for what it leaves (grace 0).
    """
    waiting = session.execute(text("""
        SELECT count(*), max(id) FROM followups
         WHERE (state = 'queued' AND updated_at < now() - make_interval(secs => :grace))
            OR (state = 'submitting' AND lease_until < now())
    """), {"grace": grace_s}).one()
    if waiting[0]:
        job = job_ids.send_pending_followups(waiting[1])
        enqueue_after_commit(session, job.func, queue=queue, job_id=job.job_id, timeout_s=120)
    return int(waiting[0])


def direct_reply(session: Session, reply_id: int, body: str, actor: Actor) -> int:
    """An operator answers one responder, from the sender their reply reached. Audited. Raises NotFound,
    InvalidInput."""
    if not body.strip():
        raise InvalidInput("the answer is empty", fields={"text": "write the answer to send"})
    row = session.execute(text("""
        SELECT r.id, r.msisdn, r.alert_id, r.delivery_id, r.contact_id, a.sender_name, a.mode
          FROM replies r LEFT JOIN alerts a ON a.id = r.alert_id WHERE r.id = :id
    """), {"id": reply_id}).one_or_none()
    if row is None:
        raise NotFound(f"reply {reply_id} does not exist", reply_id=reply_id)
    if row.sender_name is None:
        raise InvalidInput("this reply matched no alert, so no sender can answer it",
                           fields={"reply_id": "unmatched reply"})
    [followup_id] = create_followups(session, [FollowupDraft(
        row.msisdn, "direct_reply", row.sender_name, body, alert_id=row.alert_id, delivery_id=row.delivery_id,
        contact_id=row.contact_id, reply_id=reply_id, test_only=row.mode != "live")],
        created_by=actor.name, queue="flash")
    trail.append(session, actor=actor, action="reply.answered", subject_type="alert", subject_id=row.alert_id,
                 payload={"reply_id": reply_id, "followup_id": followup_id, "to": "…" + row.msisdn[-4:],
                          "text": body})
    return followup_id


_CLAIM = text("""
UPDATE followups f SET state = 'submitting', lease_until = now() + make_interval(secs => :lease),
       attempts = f.attempts + 1, updated_at = now(),
       possible_duplicates = f.possible_duplicates + (f.state = 'submitting')::int  -- a dead worker's lease
 WHERE f.id IN (SELECT id FROM followups
                 WHERE state = 'queued' OR (state = 'submitting' AND lease_until < now())
                 ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING f.id, f.msisdn, f.sender_name, f.text, f.test_only, f.allowed_carriers, f.avoid_carriers, f.attempts
""")

_RECORD = f"""
UPDATE followups f SET state = v.state, carrier = v.carrier, bind = v.bind, message_ids = v.mids::varchar[],
       parts = v.parts, error_code = v.error_code, error_reason = v.error_reason, lease_until = NULL,
       submitted_at = CASE WHEN v.state = 'submitted' THEN now() ELSE f.submitted_at END,
       failed_at = CASE WHEN v.state = 'failed' THEN now() ELSE f.failed_at END, updated_at = now(),
       possible_duplicates = f.possible_duplicates + v.dup
  FROM {OUTCOMES_TABLE}
 WHERE f.id = v.id AND f.state = 'submitting'
"""


MAX_ATTEMPTS = 30  # one pass every few seconds: minutes of retrying before a follow-up is given up


def send_followups(limit: int = BATCH) -> dict[str, int]:
    """Job: claim queued follow-ups, submit them through this gateway's pool, record the outcomes.

    Runs only in a gateway worker. One transaction to claim, none during SMPP, one to record; a
    crash in between leaves leases that the next run (or `queue_pending`) takes again.
    """
    gateway = local_gateway.current()
    sent = 0
    for _ in range(20):  # bounded: a flood of follow-ups yields to other jobs between runs
        if gateway.draining:  # this worker is stopping: another one sends what is left
            with transaction() as session:
                queue_pending(session, grace_s=0, queue="flash")
            break
        with transaction() as session:
            claimed = session.execute(_CLAIM, {"lease": LEASE_S, "limit": limit}).all()
        if not claimed:
            break
        messages: list[OutboundMessage] = []
        outcomes: list[Outcome] = []
        for row in claimed:
            if row.attempts > MAX_ATTEMPTS:
                outcomes.append(Outcome(row.id, "failed", error_code="gave_up",
                                        error_reason=f"not accepted after {MAX_ATTEMPTS} attempts"))
                continue
            encoded = encode_parts(row.text, next_reference())
            allowed = frozenset(row.allowed_carriers) if row.allowed_carriers else None
            if row.test_only and row.msisdn not in gateway.drill_allowlist:
                allowed = gateway.test_carriers if allowed is None else allowed & gateway.test_carriers
            if allowed is not None and not allowed:
                outcomes.append(Outcome(row.id, "failed", error_code="drill_no_test_route",
                                        error_reason="exercise/test follow-ups may only use test carriers"))
                continue
            messages.append(OutboundMessage(
                delivery_id=row.id, sender=row.sender_name, destination=row.msisdn, parts=encoded.parts,
                data_coding=encoded.data_coding, esm_class=0x40 if encoded.esm_class_udhi else 0,
                allowed_carriers=allowed, avoid_carriers=frozenset(row.avoid_carriers or ())))
        results = submit_within_cap(gateway.pool, messages, priority=0) if messages else []
        outcomes += [_outcome(r) for r in results]
        sent += sum(o.state == "submitted" for o in outcomes)
        with transaction() as session:
            _record(session, outcomes)
        if any(o.state == "queued" for o in outcomes):
            # Not accepted now (route down, throttled, no answer): retried by the next pass a few
            # seconds later, not at once, so a carrier outage does not burn every attempt.
            break
    return {"submitted": sent}


def _outcome(result: SubmitResult) -> Outcome:
    """A follow-up is submitted, failed, or queued again for the next pass (it has no
    waiting_route state: the pass a few seconds later is its retry)."""
    code = f"0x{result.error_code:02X}" if result.error_code is not None else None
    if result.outcome is SubmitOutcome.SUBMITTED:
        return Outcome(result.delivery_id, "submitted", result.carrier, result.bind,
                       [i or "" for i in result.message_ids], len(result.message_ids),
                       error_reason=result.reason or None, possible_duplicates=result.possible_duplicates)
    state = "failed" if result.outcome is SubmitOutcome.FAILED else "queued"
    return Outcome(result.delivery_id, state, result.carrier, result.bind, error_code=code,
                   error_reason=result.reason or None, possible_duplicates=result.possible_duplicates)


def _record(session: Session, outcomes: list[Outcome]) -> None:
    """Every outcome of a pass in one statement (the same Outcome type as deliveries')."""
    if not outcomes:
        return
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(_RECORD, outcome_columns(outcomes))
    finally:
        cursor.close()


def followups_of(session: Session, alert_id: int) -> list[dict[str, Any]]:
    """The alert's follow-ups, newest first, numbers shown by their last 4 digits (console timeline)."""
    rows = session.execute(text("""
        SELECT id, kind, msisdn, state, carrier, created_by, created_at, delivered_at, error_reason
          FROM followups WHERE alert_id = :a ORDER BY id DESC LIMIT 500
    """), {"a": alert_id}).mappings().all()
    return [{**r, "msisdn": "…" + r["msisdn"][-4:]} for r in rows]
