"""The periodic work of the machine interfaces, for the scheduler loop (`sirena scheduler`) to call.

One pass: make due schedule occurrences (schedules.fire_due_schedules), turn new Postgres changes
into webhook deliveries (webhooks.collect_events), and re-queue due webhook retries. Each step in its
own short transaction; each is idempotent, so two schedulers at once do no harm.
"""

from __future__ import annotations

import logging
from datetime import datetime

from alerting.base.db import transaction, utcnow
from alerting.base.intake_config import IntakeConfig

log = logging.getLogger("sirena.intake.tick")


def tick(*, config: IntakeConfig, now: datetime | None = None) -> dict[str, int]:
    """One pass; returns counts (schedule runs made, webhook events emitted, retries queued)."""
    from alerting import schedules, webhooks

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
