"""Every RQ job Sirena queues: the dotted name RQ imports and the job id, built and read here only.

A job id says what the job is for, so that a second enqueue of the same work is a no-op in Redis
(RQ refuses nothing, but the reconciler reads the ids back to know what is queued). The dotted
names never change between releases: jobs queued by an older worker must still run.

    fan-out-{alert}[{tag}]              broadcast.jobs.fan_out(alert)
    send-{alert}-{lo}-{hi}[{tag}]       broadcast.jobs.send_batch(alert, lo, hi)
    inbound-{min}-{max}[-{only}[-{n}]]  broadcast.replies.process_inbound(min, max[, only])
    inbound-sweep-{5 s slot}            broadcast.replies.sweep()
    followups-{min}-{max}               broadcast.followups.send_followups()
    followups-pending-{max id}          broadcast.followups.send_followups()
    webhook-{delivery}-{attempt}        alerting.webhooks.deliver(delivery)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FAN_OUT = "broadcast.jobs.fan_out"
SEND_BATCH = "broadcast.jobs.send_batch"
PROCESS_INBOUND = "broadcast.replies.process_inbound"
SWEEP_INBOUND = "broadcast.replies.sweep"
SEND_FOLLOWUPS = "broadcast.followups.send_followups"
DELIVER_WEBHOOK = "alerting.webhooks.deliver"


@dataclass(frozen=True)
class Job:
    """What to enqueue: the function RQ imports by name and the id the job is known by."""

    func: str
    job_id: str


def fan_out(alert_id: int, tag: str = "") -> Job:
    """A fan-out of `alert_id`; `tag` ("-…") makes a re-queue (lane, reconciler) a new job."""
    return Job(FAN_OUT, f"fan-out-{alert_id}{tag}")


def send_batch(alert_id: int, lo: int, hi: int, tag: str = "") -> Job:
    return Job(SEND_BATCH, f"send-{alert_id}-{lo}-{hi}{tag}")


def process_inbound(min_id: int, max_id: int, only: str | None = None, part: int = 0) -> Job:
    """Interpretation of the inbound rows in [min_id, max_id]: every kind, or `only` "receipts" or
    "replies" (every other kind); `part` numbers the continuations of one long receipts range."""
    suffix = (f"-{only}" if only else "") + (f"-{part}" if part else "")
    return Job(PROCESS_INBOUND, f"inbound-{min_id}-{max_id}{suffix}")


def sweep_inbound(now_s: float) -> Job:
    """One sweep per 5-second slot of `now_s`: a second scheduler's pass adds nothing."""
    return Job(SWEEP_INBOUND, f"inbound-sweep-{int(now_s) // 5}")


def send_followups(min_id: int, max_id: int) -> Job:
    return Job(SEND_FOLLOWUPS, f"followups-{min_id}-{max_id}")


def send_pending_followups(max_id: int) -> Job:
    return Job(SEND_FOLLOWUPS, f"followups-pending-{max_id}")


def deliver_webhook(delivery_id: int, attempt: int) -> Job:
    return Job(DELIVER_WEBHOOK, f"webhook-{delivery_id}-{attempt}")


def has_fan_out(job_ids: Iterable[str], alert_id: int) -> bool:
    """Whether one of `job_ids` is a fan-out of this alert: "fan-out-12" or "fan-out-12-…" (never
    alert 123's "fan-out-123-…", which a bare prefix test took for alert 12's)."""
    own = f"fan-out-{alert_id}"
    return any(j == own or j.startswith(own + "-") for j in job_ids)


def batch_ranges(job_ids: Iterable[str], alert_id: int) -> list[tuple[int, int]]:
    """The (lo, hi) delivery-id ranges of this alert's send-batch jobs among `job_ids`."""
    prefix = f"send-{alert_id}-"
    ranges = []
    for job_id in job_ids:
        if job_id.startswith(prefix):
            lo, hi = job_id[len(prefix):].split("-")[:2]
            ranges.append((int(lo), int(hi)))
    return ranges
