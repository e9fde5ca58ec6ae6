"""RQ jobs, enqueued by dotted name with ids only; Postgres state makes each idempotent.

- fan_out(alert_id): materializes the next chunk of the alert's deliveries (one INSERT … SELECT),
  queues that chunk's send batches, then queues itself for the next chunk, so the first SMS
  leaves before a million-row alert is written and flash work can overtake between chunks.
- send_batch(alert_id, lo, hi): runs in a gateway worker (it holds the binds): claim, submit,
  record — see broadcast.gateway.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from alerting import lifecycle
from alerting.db import configured_settings, transaction, utcnow
from alerting.models import Alert, AlertKind, AlertState, Delivery
from alerting.outbox import enqueue_after_commit
from audit.seal import seal_after_commit
from broadcast import claims

log = logging.getLogger("sirena.jobs")

BATCH_SIZE = 500
# Contacts per chunk (not id width: ids have gaps). The first is small, so the first batches are
# queued within ~0.1 s (bench/targeting.py; 20,000 took 0.18-0.21 s).
FIRST_CHUNK_CONTACTS = 10_000
CHUNK_CONTACTS = 200_000
FAN_OUT_TIMEOUT_S = 600
SEND_BATCH_TIMEOUT_S = 300


def fan_out(alert_id: int) -> None:
    """Materialize one more chunk of deliveries and queue its send batches. A re-run adds nothing.

    Accepts an approved alert, a scheduled alert that is due, or a sending alert whose fan-out is
    not finished; anything else (cancelled, done) is left alone.
    """
    with transaction() as session:
        alert = session.get(Alert, alert_id, with_for_update=True)
        if alert is None or alert.fanout_done:
            return
        if alert.state is AlertState.SCHEDULED and alert.scheduled_at and alert.scheduled_at > utcnow():
            return  # not due yet; the ticker will queue it again
        if alert.state in (AlertState.APPROVED, AlertState.SCHEDULED):
            lifecycle.mark_sending(session, alert)
        elif alert.state is not AlertState.SENDING:
            return
        before = session.scalar(select(func.coalesce(func.max(Delivery.id), 0)).where(Delivery.alert_id == alert.id))
        if alert.kind in (AlertKind.CORRECTION, AlertKind.CANCEL) and alert.corrects_alert_id:
            written, done = _materialize_correction(session, alert), True
        else:
            written, done = _materialize_next_chunk(session, alert)
        batches = claims.cut_batches(session, alert.id, after_id=before, size=BATCH_SIZE)
        queue_batches(session, alert, batches)
        if done:
            alert.fanout_done = True
            if not batches:
                finish_if_done(session, alert.id)  # e.g. a target that reached nobody
        else:
            enqueue_after_commit(session, "broadcast.jobs.fan_out", alert.id, queue=alert.priority.queue_name,
                                 job_id=f"fan-out-{alert.id}-{alert.fanout_cursor}", timeout_s=FAN_OUT_TIMEOUT_S)
        log.info("fan-out alert_id=%s wrote=%s batches=%s done=%s", alert.id, written, len(batches), done)


def queue_batches(session: Session, alert: Alert, batches: list[tuple[int, int]], *, tag: str = "") -> None:
    for lo, hi in batches:
        enqueue_after_commit(session, "broadcast.jobs.send_batch", alert.id, lo, hi,
                             queue=alert.priority.queue_name, job_id=f"send-{alert.id}-{lo}-{hi}{tag}",
                             timeout_s=SEND_BATCH_TIMEOUT_S)


def _materialize_next_chunk(session: Session, alert: Alert) -> tuple[int, bool]:
    """The next chunk of contacts (by id order); returns (rows written, whether every chunk is now done)."""
    from geo import targeting

    spec = targeting.TargetSpec.from_json(alert.target or {})
    cursor = alert.fanout_cursor or 0
    last_contact = session.execute(text("SELECT coalesce(max(id), 0) FROM contacts")).scalar_one()
    if cursor == 0:  # pin the zone versions every later chunk will use
        alert.resolved = {**(alert.resolved or {}), **targeting.resolution_record(session, spec)}
        session.flush()
    chunk = targeting.next_contact_range(session, cursor, FIRST_CHUNK_CONTACTS if cursor == 0 else CHUNK_CONTACTS)
    if chunk is None:
        return 0, True
    written = targeting.materialize_chunk(session, alert.id, spec, *chunk,
                                          include_opted_out=_overrides_opt_out(alert) or None)
    alert.fanout_cursor = chunk[1]
    return written, chunk[1] >= last_contact


def _overrides_opt_out(alert: Alert) -> bool:
    """Policy (SIRENA_OPT_OUT_OVERRIDE): e.g. a live flash alert reaches opted-out contacts too."""
    from geo import targeting

    return targeting.opt_out_policy().overrides(alert.mode, alert.priority)


def _materialize_correction(session: Session, alert: Alert) -> int:
    """A correction goes to everyone who got the original or was queued to: all its deliveries."""
    return session.execute(text("""
        INSERT INTO deliveries (alert_id, contact_id, msisdn, language, state, attempts,
                                possible_duplicates, parts_delivered, queued_at, updated_at)
        SELECT :new, contact_id, msisdn, language, 'queued', 0, 0, 0, now(), now()
          FROM deliveries WHERE alert_id = :orig
        ON CONFLICT (alert_id, msisdn) DO NOTHING
    """), {"new": alert.id, "orig": alert.corrects_alert_id}).rowcount


def finish_if_done(session: Session, alert_id: int) -> bool:
    """sending → completed once fan-out is done and nothing is left to hand to a carrier."""
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None or alert.state is not AlertState.SENDING or not alert.fanout_done:
        return False
    if claims.any_unsent(session, alert_id):
        return False
    # The counters are kept by triggers; at the end they are rebuilt from the rows, so the final
    # counts an auditor sees are exact whatever happened on the way.
    counts = claims.recount(session, alert_id)
    digest = session.execute(text("""
        SELECT encode(sha256(convert_to(coalesce(string_agg(
                 id || ':' || msisdn || ':' || state || ':' || coalesce(array_to_string(message_ids, ','), ''),
                 ';' ORDER BY id), ''), 'UTF8')), 'hex')
          FROM deliveries WHERE alert_id = :a
    """), {"a": alert_id}).scalar_one()
    lifecycle.mark_completed(session, alert, counts, digest)
    session.info.setdefault("completed_alerts", []).append(alert_id)
    _checkpoint_at_completion(session)
    return True


def _checkpoint_at_completion(session: Session) -> None:
    """Seal the completion event into the chain at once and write a checkpoint of the head outside
    the database (audit issue: at every alert completion). Without the secret key that signs
    checkpoints the seal still happens; the periodic checkpoint covers the rest."""
    from alerting.errors import ConfigError
    from audit.checkpoints import checkpoint_after_commit

    settings = configured_settings()
    try:
        if settings is None:
            raise ConfigError("this process has no settings")
        checkpoint_after_commit(session, settings)  # seals first, then writes the line
    except ConfigError as exc:
        log.warning("no audit checkpoint at completion (%s); sealing only", exc)
        seal_after_commit(session)


def counts_by_state(session: Session, alert_id: int) -> dict[str, int]:
    """Live counts by delivery state, from the trigger-kept counters (no scan of deliveries)."""
    rows = session.execute(text(
        "SELECT state, sum(n) FROM alert_counters WHERE alert_id = :a GROUP BY state HAVING sum(n) <> 0"
    ), {"a": alert_id}).all()
    return {state: int(n) for state, n in rows}


def counts_by_carrier(session: Session, alert_id: int) -> dict[str, dict[str, int]]:
    rows = session.execute(text(
        "SELECT carrier, state, n FROM alert_counters WHERE alert_id = :a AND carrier <> '' AND n <> 0"
    ), {"a": alert_id}).all()
    out: dict[str, dict[str, int]] = {}
    for carrier, state, n in rows:
        out.setdefault(carrier, {})[state] = int(n)
    return out


def send_batch(alert_id: int, lo: int, hi: int) -> dict[str, Any]:
    """Claim, submit and record one batch; runs only in a gateway worker (it holds the binds)."""
    from broadcast import gateway

    return gateway.current().send_batch(alert_id, lo, hi)
