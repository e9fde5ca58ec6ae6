"""The scheduler loop (`sirena scheduler`): every few seconds, under one advisory lock per pass so a
standby scheduler never doubles a pass, it

- reconciles Redis with PostgreSQL (broadcast/reconciler.py: leases, lost jobs, due alerts);
- seals the audit trail (an event waits at most one pass for its link in the chain);
- runs escalations at ACK deadlines and the inbound sweep (broadcast/escalation.py);
- fires recurring schedules due, turns new changes into webhook deliveries and re-queues due
  webhook retries (`tick`);
- writes an audit checkpoint when one is due, and judges each carrier from its recent receipts;
- expires self-registrations not confirmed in time (alerting/directory/registration.py).

Each task commits in its own short transaction and is idempotent; one that raises is logged and
tried again next pass, the others still run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from redis import Redis
from sqlalchemy import text

from alerting import schedules, webhooks
from alerting.base.db import engine, transaction, utcnow
from alerting.base.intake_config import IntakeConfig
from alerting.base.settings import Settings
from alerting.directory import registration
from audit.checkpoints import checkpoint_if_due
from audit.seal import seal_committed
from broadcast import escalation, metrics, presence
from broadcast.carrier_health import assess_if_due
from broadcast.reconciler import reconcile

log = logging.getLogger("sirena.scheduler")

Task = Callable[[datetime], object]
PASS_LOCK = 0x5152_4543  # pg advisory lock key: one scheduler pass at a time, whatever the machine


def tick(*, config: IntakeConfig, now: datetime | None = None) -> dict[str, int]:
    """Recurring schedules due (schedules.fire_due_schedules), new Postgres changes turned into
    webhook deliveries (webhooks.collect_events), due webhook retries re-queued; each step in its
    own transaction. Returns the counts (schedule runs made, webhook events emitted, retries)."""
    now = now or utcnow()
    with transaction() as session:
        runs = len(schedules.fire_due_schedules(session, now, config=config))
    with transaction() as session:
        events = webhooks.collect_events(session)
    with transaction() as session:
        retries = webhooks.queue_due_retries(session, now)
    if runs or events or retries:
        log.info("tick schedule_runs=%s webhook_events=%s webhook_retries=%s", runs, events, retries)
    return {"schedule_runs": runs, "webhook_events": events, "webhook_retries": retries}


def periodic_tasks(settings: Settings | None = None) -> list[tuple[str, Task]]:
    """What the scheduler runs each pass after reconciling, in order, with the time passed in."""
    # Read once, with the settings at process start (a bad SIRENA_QUIET_* stops the scheduler there).
    intake = settings.intake if settings is not None else IntakeConfig()

    def seal(now: datetime) -> object:
        """Link what has committed into the audit chain: an event waits at most one pass."""
        return seal_committed(engine())

    def escalations(now: datetime) -> object:
        return escalation.periodic_pass(now)

    def interfaces(now: datetime) -> object:
        """Recurring schedules due, webhook events collected and their retries re-queued."""
        return tick(config=intake, now=now)

    def checkpoint(now: datetime) -> object:
        return checkpoint_if_due(engine(), settings, every_s=300.0) if settings is not None else None

    def carriers(now: datetime) -> object:
        """Each carrier judged from its recent receipts; gateways follow the verdicts."""
        return assess_if_due(now)

    def registrations(now: datetime) -> object:
        """Self-registrations not confirmed in time expired (audited)."""
        with transaction() as session:
            return registration.expire_due(session, now)

    return [("seal", seal), ("escalations", escalations), ("interfaces", interfaces), ("checkpoint", checkpoint),
            ("carriers", carriers), ("registrations", registrations)]


def run_forever(redis: Redis | None, *, interval_s: float = 2.0, stop: threading.Event | None = None,
                settings: Settings | None = None) -> None:
    """The loop `sirena scheduler` runs: reconcile and the periodic tasks every `interval_s`."""
    tasks = periodic_tasks(settings)
    while stop is None or not stop.is_set():
        try:
            with exclusive_pass() as mine:
                if mine:
                    _one_pass(redis, tasks)
                elif redis is not None:
                    presence.publish(redis, "scheduler", presence.process_name(), {"leader": False})
        except Exception:  # Postgres unreachable: no lock, no pass
            log.exception("scheduler pass failed; retrying")
        if stop is None:
            time.sleep(interval_s)
        else:  # SIGTERM ends the wait: the scheduler stops after the pass it is in, never in one
            stop.wait(interval_s)


@contextmanager
def exclusive_pass() -> Iterator[bool]:
    """Yield True if this process holds the scheduler's pass lock, False if another scheduler does.

    A transaction-level advisory lock on its own connection: released at COMMIT, and by Postgres
    when the connection dies, so a SIGKILLed scheduler never keeps it. With it two schedulers
    (a standby, or one started by mistake) never fire the same due alert in the same instant.
    """
    with engine().connect() as conn, conn.begin():
        yield bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PASS_LOCK}).scalar())


def _one_pass(redis: Redis | None, tasks: list[tuple[str, Task]]) -> None:
    report = None
    try:
        report = reconcile(redis)
        metrics.observe_reconcile(report)
    except Exception:
        log.exception("reconcile pass failed; retrying")
    for name, task in tasks:
        try:
            task(utcnow())
        except Exception:
            log.exception("periodic task %s failed; retrying next pass", name)
    if redis is not None:  # what `sirena status` reads as the reconciler's lag
        presence.publish(redis, "scheduler", presence.process_name(),
                         {"leader": True, "last_pass": report.as_dict() if report else None})
