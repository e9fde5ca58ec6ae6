"""RQ jobs, enqueued by dotted name with ids only; Postgres state makes each idempotent.

- fan_out(alert_id): materializes the next chunk of the alert's deliveries (one INSERT … SELECT),
  queues that chunk's send batches, then queues itself for the next chunk, so the first SMS
  leaves before a million-row alert is written and flash work can overtake between chunks.
  After the first chunk, FAN_OUT_LANES runs write chunks at the same time (fanout_chunks).
- send_batch(alert_id, lo, hi): runs in a gateway worker (it holds the binds): claim, submit,
  record — see broadcast.gateway.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from alerting.base import job_ids, runtime
from alerting.base.db import rowcount, transaction, utcnow
from alerting.base.errors import ConfigError
from alerting.base.models import Alert, AlertKind, AlertState, Delivery, Priority
from alerting.base.models.alerts import move_alert
from alerting.base.outbox import enqueue_after_commit, notify_flash
from audit import trail
from audit.actor import Actor
from audit.checkpoints import checkpoint_after_commit
from audit.seal import seal_after_commit
from broadcast import claims, local_gateway
from geo import targeting

log = logging.getLogger("sirena.jobs")

BATCH_SIZE = 500
# Contacts per chunk (not id width: ids have gaps). The first is small, so the first batches are
# queued within ~0.1 s (bench/targeting.py; 20,000 took 0.18-0.21 s).
FIRST_CHUNK_CONTACTS = 10_000
CHUNK_CONTACTS = 100_000  # bench/targeting.py, 2 lanes: 200,000 2.27 s, 100,000 1.86-1.89 s, 50,000 1.94-2.17 s
# Chunks after the first are written by this many runs at once (the machine has 2 cores; the
# database does most of the work, in one backend per run).
FAN_OUT_LANES = 2
FAN_OUT_TIMEOUT_S = 600
SEND_BATCH_TIMEOUT_S = 300


def fan_out(alert_id: int, *, first_only: bool = False, queue_jobs: bool = True) -> None:
    """Materialize more of the alert's deliveries and queue their send batches. A re-run adds nothing.

    Accepts an approved alert, a scheduled alert that is due, or a sending alert whose fan-out is
    not finished; anything else (cancelled, done) is left alone. For the flash lane, which sends
    what it writes itself: `first_only` writes the first chunk if nobody has, nothing more;
    `queue_jobs=False` queues no RQ job (so no Redis call: with Redis hung, each would wait for
    its timeout), the reconciler queues batches for rows still queued a few seconds later.

    The first run writes the first, small chunk under the alert's row lock and queues
    FAN_OUT_LANES runs; each of those claims the next contact range (fanout_chunks, under the
    lock, committed at once), writes it in a transaction of its own while the other lane writes
    its range, and queues itself again until no contact is left. The alert's lock is taken again
    only at the end of a chunk, to the commit: a cancel committed meanwhile undoes the chunk, and
    a cancel waiting for it then sees and cancels the chunk's rows.
    """
    with transaction() as session:
        alert = session.get(Alert, alert_id, with_for_update=True)
        if alert is None or alert.fanout_done:
            return
        if alert.state is AlertState.SCHEDULED and alert.scheduled_at and alert.scheduled_at > utcnow():
            return  # not due yet; the ticker will queue it again
        if alert.state in (AlertState.APPROVED, AlertState.SCHEDULED):
            mark_sending(session, alert)
        elif alert.state is not AlertState.SENDING:
            return
        if alert.kind in (AlertKind.CORRECTION, AlertKind.CANCEL) and alert.corrects_alert_id:
            before = _last_delivery_id(session, alert.id)
            written = _materialize_correction(session, alert)
            _queue_written(session, alert, before, None, done=True, queue_jobs=queue_jobs)
            log.info("fan-out alert_id=%s correction wrote=%s", alert.id, written)
            return
        if alert.fanout_cursor is None:
            _first_chunk(session, alert, queue_jobs=queue_jobs)
            return
        if first_only:
            return
        if not _claim_next_chunk(session, alert) and not _pending_chunks(session, alert.id):
            # Nothing left to claim or to write (contacts deleted since the last claim).
            alert.fanout_done = True
            finish_if_done(session, alert.id)
            return
    _write_pending_chunk(alert_id, queue_jobs=queue_jobs)


class _StopChunk(Exception):
    """The alert stopped sending while a chunk was being written: the chunk is undone."""


def _last_delivery_id(session: Session, alert_id: int) -> int:
    return session.execute(select(func.coalesce(func.max(Delivery.id), 0))
                           .where(Delivery.alert_id == alert_id)).scalar_one()


def _first_chunk(session: Session, alert: Alert, *, queue_jobs: bool = True) -> None:
    """Pin the zone versions every later chunk uses, write the first chunk, start the lanes."""
    alert.resolved = {**(alert.resolved or {}), **targeting.resolution_record(session, _spec(alert))}
    session.flush()
    start = targeting.skip_unreachable(session, _spec(alert), 0)
    chunk = None if start is None else targeting.next_contact_range(session, start, FIRST_CHUNK_CONTACTS)
    alert.fanout_cursor = chunk[1] if chunk else 0
    written = _materialize(session, alert, chunk) if chunk else 0
    done = chunk is None or not _reachable_after(session, alert, alert.fanout_cursor)
    _queue_written(session, alert, 0, chunk, done=done, queue_jobs=queue_jobs)
    if not done and queue_jobs:
        for lane in range(FAN_OUT_LANES):
            _queue_lane(session, alert, f"{alert.fanout_cursor}-{lane}")
    log.info("fan-out alert_id=%s first chunk wrote=%s done=%s", alert.id, written, done)


def _claim_next_chunk(session: Session, alert: Alert) -> bool:
    """Under the alert's lock: record the next contact range as claimed and move the cursor past it."""
    start = targeting.skip_unreachable(session, _spec(alert), alert.fanout_cursor or 0)
    chunk = None if start is None else targeting.next_contact_range(session, start, CHUNK_CONTACTS)
    if chunk is None:
        return False
    session.execute(text("INSERT INTO fanout_chunks (alert_id, lo, hi) VALUES (:a, :lo, :hi)"),
                    {"a": alert.id, "lo": chunk[0], "hi": chunk[1]})
    alert.fanout_cursor = chunk[1]
    return True


def _pending_chunks(session: Session, alert_id: int) -> bool:
    return bool(session.execute(text("SELECT EXISTS (SELECT 1 FROM fanout_chunks WHERE alert_id = :a)"),
                                {"a": alert_id}).scalar_one())


def _reachable_after(session: Session, alert: Alert, cursor: int) -> bool:
    """Whether a contact after `cursor` may still be reached (targeting.skip_unreachable)."""
    start = targeting.skip_unreachable(session, _spec(alert), cursor)
    return start is not None and bool(session.execute(text("SELECT EXISTS (SELECT 1 FROM contacts WHERE id > :c)"),
                                                      {"c": start}).scalar_one())


def _write_pending_chunk(alert_id: int, *, queue_jobs: bool = True) -> None:
    """Write one claimed chunk (this run's, or one a dead run left) and queue its batches."""
    try:
        with transaction() as session:
            row = session.execute(text(
                "SELECT lo, hi FROM fanout_chunks WHERE alert_id = :a ORDER BY lo LIMIT 1 FOR UPDATE SKIP LOCKED"
            ), {"a": alert_id}).first()
            if row is None:
                return  # every claimed chunk is being written by another run
            chunk = (int(row[0]), int(row[1]))
            alert = session.get(Alert, alert_id)
            if alert is None or alert.state is not AlertState.SENDING:
                return
            before = _last_delivery_id(session, alert_id)
            written = _materialize(session, alert, chunk)
            session.execute(text("DELETE FROM fanout_chunks WHERE alert_id = :a AND lo = :lo"),
                            {"a": alert_id, "lo": chunk[0]})
            alert = session.get(Alert, alert_id, with_for_update=True, populate_existing=True)
            if alert is None or alert.state is not AlertState.SENDING:
                raise _StopChunk
            more = _reachable_after(session, alert, alert.fanout_cursor or 0)
            done = not more and not _pending_chunks(session, alert_id)
            _queue_written(session, alert, before, chunk, done=done, queue_jobs=queue_jobs)
            if not done and queue_jobs:  # more to claim, or a claimed chunk whose run died (taken next time)
                _queue_lane(session, alert, str(chunk[0]))
            log.info("fan-out alert_id=%s chunk=%s-%s wrote=%s done=%s", alert_id, *chunk, written, done)
    except _StopChunk:
        log.info("fan-out alert_id=%s stopped sending; chunk undone", alert_id)


def _materialize(session: Session, alert: Alert, chunk: tuple[int, int]) -> int:
    return targeting.materialize_chunk(session, alert.id, _spec(alert), *chunk,
                                       include_opted_out=_overrides_opt_out(alert) or None)


def _spec(alert: Alert) -> Any:
    return targeting.TargetSpec.from_json(alert.target or {})


def _queue_written(session: Session, alert: Alert, before: int, chunk: tuple[int, int] | None, *,
                   done: bool, queue_jobs: bool = True) -> None:
    """Queue the send batches of what this transaction wrote; on the last chunk, mark fan-out done."""
    batches = claims.cut_batches(session, alert.id, after_id=before, size=BATCH_SIZE, contacts=chunk)
    if queue_jobs:
        queue_batches(session, alert, batches)
    if batches and alert.priority is Priority.FLASH:
        notify_flash(session, alert.id)  # every gateway's lane sends them, whatever its RQ loop is doing
    if done:
        alert.fanout_done = True
        if not batches:
            finish_if_done(session, alert.id)  # e.g. a target that reached nobody


def _queue_lane(session: Session, alert: Alert, tag: str) -> None:
    job = job_ids.fan_out(alert.id, f"-{tag}")
    enqueue_after_commit(session, job.func, alert.id, queue=alert.priority.queue_name, job_id=job.job_id,
                         timeout_s=FAN_OUT_TIMEOUT_S)


def queue_batches(session: Session, alert: Alert, batches: list[tuple[int, int]], *, tag: str = "") -> None:
    for lo, hi in batches:
        job = job_ids.send_batch(alert.id, lo, hi, tag)
        enqueue_after_commit(session, job.func, alert.id, lo, hi, queue=alert.priority.queue_name, job_id=job.job_id,
                             timeout_s=SEND_BATCH_TIMEOUT_S)


def _overrides_opt_out(alert: Alert) -> bool:
    """Policy (SIRENA_OPT_OUT_OVERRIDE): e.g. a live flash alert reaches opted-out contacts too."""
    return targeting.opt_out_policy().overrides(alert.mode, alert.priority)


def _materialize_correction(session: Session, alert: Alert) -> int:
    """A correction goes to everyone who got the original or was queued to: all its deliveries, each
    to the number the original reached or last tried (not a number it moved on from: next_number)."""
    return rowcount(session.execute(text("""
        INSERT INTO deliveries (alert_id, contact_id, msisdn, language, number_position, state, attempts,
                                possible_duplicates, parts_delivered, queued_at, updated_at)
        SELECT :new, contact_id, msisdn, language, number_position, 'queued', 0, 0, 0, now(), now()
          FROM deliveries WHERE alert_id = :orig AND state <> 'next_number'
        ON CONFLICT (alert_id, msisdn) DO NOTHING
    """), {"new": alert.id, "orig": alert.corrects_alert_id}))


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
    mark_completed(session, alert, counts, digest)
    session.info.setdefault("completed_alerts", []).append(alert_id)
    _checkpoint_at_completion(session)
    return True


def _checkpoint_at_completion(session: Session) -> None:
    """Seal the completion event into the chain at once and write a checkpoint of the head outside
    the database (audit issue: at every alert completion). Without the secret key that signs
    checkpoints the seal still happens; the periodic checkpoint covers the rest."""
    settings = runtime.settings()
    try:
        if settings is None:
            raise ConfigError("this process has no settings")
        checkpoint_after_commit(session, settings)  # seals first, then writes the line
    except ConfigError as exc:
        log.warning("no audit checkpoint at completion (%s); sealing only", exc)
        seal_after_commit(session)


# A failed or expired delivery whose re-send through another carrier is still on its way
# (broadcast.escalation.retry_undelivered) is not final: it may yet be delivered. The partial index
# ix_followups_retry_pending (migration 0026) holds exactly the re-sends r counts. A `next_number`
# delivery is a message, not a person: its contact is counted by the delivery to its next number
# (broadcast/next_numbers.py).
_COUNTS = text("""
WITH c AS (SELECT state, sum(n) AS n FROM alert_counters WHERE alert_id = :a AND state <> 'next_number'
            GROUP BY state),
     r AS (SELECT d.state, count(DISTINCT d.id) AS n
             FROM followups f JOIN deliveries d ON d.id = f.delivery_id
            WHERE f.alert_id = :a AND f.kind = 'carrier_retry' AND f.state IN ('queued', 'submitting', 'submitted')
              AND d.state IN ('failed', 'expired')
            GROUP BY d.state)
SELECT c.state, c.n - coalesce(r.n, 0) FROM c LEFT JOIN r USING (state)
UNION ALL SELECT 'retrying', sum(n) FROM r
""")


def counts_by_state(session: Session, alert_id: int) -> dict[str, int]:
    """Live counts of recipients (people) by delivery state, from the trigger-kept counters (no
    scan of deliveries), with the failed and expired deliveries being re-sent through another
    carrier counted apart as `retrying`: `failed` and `expired` are final and never go down;
    `retrying` ends delivered or failed. A contact tried on its next number counts once, in the
    state of that delivery (`next_number` rows are left out). One statement, so one snapshot: the
    split always adds up to the counters."""
    rows = session.execute(_COUNTS, {"a": alert_id}).all()
    return {state: int(n) for state, n in rows if n}


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
    return local_gateway.current().send_batch(alert_id, lo, hi)


def mark_sending(session: Session, alert: Alert) -> None:
    """approved/scheduled → sending (called by the fan-out job)."""
    move_alert(alert, AlertState.SENDING)
    alert.sending_at = utcnow()
    # At commit, not now: the trail's lock must not be held while the first chunk is written, or
    # every other audited action (approving a flash alert) would wait for it.
    trail.append_at_commit(session, actor=Actor.system("fan-out"), action="alert.sending_started",
                           subject_type="alert", subject_id=alert.id)


def mark_completed(session: Session, alert: Alert, counts: dict[str, int], digest: str) -> None:
    """sending → completed, recording the final counts and a digest of the deliveries."""
    move_alert(alert, AlertState.COMPLETED)
    alert.completed_at = utcnow()
    trail.append(session, actor=Actor.system("completion"), action="alert.completed", subject_type="alert",
                 subject_id=alert.id, payload={"counts": counts, "deliveries_digest": digest})
