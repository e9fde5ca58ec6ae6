"""Jobs reach Redis only after the transaction that asked for them has committed.

Postgres is the truth: if Redis is down or slow when we enqueue, the enqueue is dropped with a
log line and the reconciler re-derives the work from Postgres. Nothing here may block a request
for long: the Redis client (the runtime's, alerting/base/runtime.py) has short timeouts and no
retry storm.
"""

from __future__ import annotations

import logging

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from alerting.base import runtime

log = logging.getLogger(__name__)

PRIORITY_QUEUES = ("flash", "high", "normal", "low")
FLASH_CHANNEL = "sirena_flash"  # PostgreSQL NOTIFY channel every gateway's flash lane listens on


def enqueue_after_commit(
    session: Session,
    func: str,
    *args: object,
    queue: str,
    job_id: str,
    timeout_s: int = 600,
) -> None:
    """Queue `func(*args)` on `queue` once `session` commits; dropped if it rolls back."""
    pending: list[tuple[str, tuple[object, ...], str, str, int]] = session.info.setdefault("outbox", [])
    if not pending:
        event.listen(session, "after_commit", _flush, once=True)
        event.listen(session, "after_rollback", _discard, once=True)
    pending.append((func, args, queue, job_id, timeout_s))


def _discard(session: Session) -> None:
    session.info.pop("outbox", None)


def _flush(session: Session) -> None:
    pending = session.info.pop("outbox", [])
    for func, args, queue, job_id, timeout_s in pending:
        enqueue_now(func, *args, queue=queue, job_id=job_id, timeout_s=timeout_s)


def enqueue_now(func: str, *args: object, queue: str, job_id: str, timeout_s: int = 600,
                at_front: bool = False) -> bool:
    """Best-effort enqueue; returns False (and logs) when Redis is unreachable. `at_front`: ahead of
    every job already waiting in `queue` (for short jobs a person is waiting on)."""
    rt = runtime.current()
    if rt.redis is None:
        return False
    from rq import Queue
    from rq.serializers import JSONSerializer

    try:
        q = Queue(rt.redis_prefix + queue, connection=rt.redis, serializer=JSONSerializer)
        q.enqueue(func, *args, job_id=job_id, job_timeout=timeout_s, result_ttl=60, failure_ttl=86400,
                  at_front=at_front)
    except Exception as exc:  # Redis down or hung: the reconciler re-enqueues from Postgres
        log.warning("enqueue of %s (%s) failed: %s", func, job_id, exc)
        return False
    return True


def notify_flash(session: Session, alert_id: int) -> None:
    """Wake every gateway's flash lane when `session` commits (NOTIFY is transactional): a flash
    alert's first SMS leaves without waiting for Redis (broadcast/flash_lane.py)."""
    session.execute(text("SELECT pg_notify(:c, :a)"), {"c": FLASH_CHANNEL, "a": str(alert_id)})
