"""The reconciler: rebuilds the work in Redis from Postgres alone.

Run by `sirena reconcile` once, and every few seconds by the scheduler loop (`sirena scheduler`,
alerting/interfaces/scheduler.py). It:
- returns expired `submitting` leases to `queued` (a dead worker's batch), counting possible re-sends;
- gives `waiting_route` deliveries another chance once in a while;
- queues the fan-out of approved alerts whose job never reached Redis, and of scheduled alerts now due
  (the schedule lives in Postgres, not in RQ's scheduler, so a Redis restart loses nothing);
- queues send batches for queued deliveries that no pending job covers (Redis flushed, jobs lost),
  of sending alerts and of completed ones still trying contacts' next numbers;
- completes alerts with nothing left to send.
Every action is idempotent; two reconcilers at once only queue harmless duplicate jobs, and
`sirena scheduler` takes an advisory lock per pass, so a standby never doubles one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from redis import Redis
from sqlalchemy import select, text

from alerting.base import job_ids
from alerting.base.db import rowcount, transaction, utcnow
from alerting.base.models import Alert, AlertState
from alerting.base.outbox import PRIORITY_QUEUES, enqueue_after_commit
from broadcast import claims, jobs, next_numbers

log = logging.getLogger("sirena.reconciler")

ORPHAN_GRACE_S = 5  # queued rows younger than this may still be on their way to Redis
WAITING_ROUTE_RETRY_S = 10


@dataclass
class ReconcileReport:
    reaped: dict[int, int] = field(default_factory=dict)
    waiting_retried: int = 0
    fan_outs_queued: list[int] = field(default_factory=list)
    batches_queued: dict[int, int] = field(default_factory=dict)
    completed: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"reaped": sum(self.reaped.values()), "waiting_route_retried": self.waiting_retried,
                "fan_outs_queued": self.fan_outs_queued, "batches_queued": sum(self.batches_queued.values()),
                "completed": self.completed, "seconds": round(self.seconds, 3)}


def pending_jobs(redis: Redis | None, prefix: str = "", *, waiting_only: bool = False) -> set[str]:
    """Ids of jobs waiting in any priority queue or running now (empty if Redis is unreachable).

    RQ keeps a SIGKILLed worker's job "started" for minutes, so `waiting_only` leaves running jobs
    out where a dead one would hide work.
    """
    if redis is None:
        return set()
    from rq import Queue
    from rq.registry import StartedJobRegistry
    from rq.serializers import JSONSerializer

    ids: set[str] = set()
    try:
        for name in PRIORITY_QUEUES:
            queue = Queue(prefix + name, connection=redis, serializer=JSONSerializer)
            ids.update(queue.get_job_ids())
            if not waiting_only:
                ids.update(StartedJobRegistry(queue=queue).get_job_ids(cleanup=False))
    except Exception as exc:
        log.warning("cannot read the queues: %s", exc)
    return ids


def reconcile(redis: Redis | None) -> ReconcileReport:
    """One pass; see the module docstring. Each part commits in its own short transaction."""
    started = time.monotonic()
    report = ReconcileReport()
    with transaction() as session:
        report.reaped = claims.reap_expired_leases(session)
        report.waiting_retried = rowcount(session.execute(text("""
            UPDATE deliveries SET state = 'queued', updated_at = now() - make_interval(secs => :grace)
             WHERE state = 'waiting_route' AND updated_at < now() - make_interval(secs => :retry)
        """), {"retry": WAITING_ROUTE_RETRY_S, "grace": ORPHAN_GRACE_S + 1}))
    live = pending_jobs(redis)
    waiting = pending_jobs(redis, waiting_only=True)
    tag = f"-rc{int(time.time() * 1000)}"
    with transaction() as session:
        now = utcnow()
        candidates = session.scalars(select(Alert).where(
            (Alert.state == AlertState.APPROVED) & (Alert.approved_at < now - timedelta(seconds=ORPHAN_GRACE_S))
            | (Alert.state == AlertState.SCHEDULED) & (Alert.scheduled_at <= now)
            | (Alert.state == AlertState.SENDING) & ~Alert.fanout_done
        )).all()
        for alert in candidates:
            if job_ids.has_fan_out(live, alert.id):
                continue
            job = job_ids.fan_out(alert.id, tag)
            enqueue_after_commit(session, job.func, alert.id, queue=alert.priority.queue_name, job_id=job.job_id,
                                 timeout_s=jobs.FAN_OUT_TIMEOUT_S)
            report.fan_outs_queued.append(alert.id)
    sending = _sending_alerts()
    for alert_id in sending:
        with transaction() as session:
            sending_alert = session.get(Alert, alert_id)
            if sending_alert is None or sending_alert.state not in (AlertState.SENDING, AlertState.COMPLETED):
                continue
            # Only waiting jobs cover rows: rows a live job is working on are `submitting`, not
            # `queued`; a duplicate job over a live one's range only adds a second claimer.
            batches = _orphan_batches(session, alert_id, job_ids.batch_ranges(waiting, alert_id))
            if batches:
                jobs.queue_batches(session, sending_alert, batches, tag=tag)
                report.batches_queued[alert_id] = len(batches)
            elif jobs.finish_if_done(session, alert_id):
                report.completed.append(alert_id)
    report.seconds = time.monotonic() - started
    if report.reaped or report.batches_queued or report.fan_outs_queued:
        log.info("reconcile %s", report.as_dict())
    return report


def _sending_alerts() -> list[int]:
    """Alerts sending, and alerts completed within next_numbers.WINDOW_S with a queued delivery:
    a contact's next number, tried after the alert's last submit (one probe of ix_deliveries_claim
    per recent completed alert)."""
    with transaction() as session:
        return list(session.scalars(text("""
            SELECT id FROM alerts WHERE state = 'sending'
            UNION ALL
            SELECT a.id FROM alerts a
             WHERE a.state = 'completed'
               AND coalesce(a.sending_at, a.approved_at) > now() - make_interval(secs => :window)
               AND EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = a.id AND d.state = 'queued')
            ORDER BY 1"""), {"window": next_numbers.WINDOW_S}))


def _orphan_batches(session, alert_id: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Batches of queued rows that no pending job's id range covers."""
    multirange = "{" + ",".join(f"[{lo},{hi}]" for lo, hi in covered) + "}"
    rows = session.execute(text("""
        SELECT min(id), max(id) FROM (
            SELECT id, (row_number() OVER (ORDER BY id) - 1) / :size AS b FROM deliveries
             WHERE alert_id = :a AND state = 'queued' AND updated_at < now() - make_interval(secs => :grace)
               AND NOT (id <@ CAST(:covered AS int8multirange))) t
         GROUP BY b ORDER BY 1
    """), {"a": alert_id, "size": jobs.BATCH_SIZE, "grace": ORPHAN_GRACE_S, "covered": multirange}).all()
    return [(r[0], r[1]) for r in rows]
