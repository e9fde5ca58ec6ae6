"""Receipts feed carrier health back to the pool.

The scheduler's pass (`assess_if_due`, every ASSESS_EVERY_S) judges each carrier from the
receipts of the last WINDOW (`receipts.carrier_health_from_receipts`: a failure rate, or a
delivery latency, well above the other carriers') and writes the verdict to `carrier_health`;
a change either way is an audit event (`carrier.degraded` / `carrier.recovered`). Every gateway
reads the table with its lease heartbeat (`degraded_carriers`) and gives a degraded carrier's
binds DEGRADED_SHARE of their rate (`CarrierPool.set_degraded`), so the healthy carriers take
the rest. A carrier with no receipts in the window has no evidence against it: it recovers.
The console dashboard and `sirena status` show degraded carriers with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerting.base.db import transaction, utcnow
from alerting.base.models import CarrierHealthRow
from audit import trail
from audit.actor import Actor
from broadcast.receipts import carrier_health_from_receipts

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=10)
ASSESS_EVERY_S = 30.0
DEGRADED_SHARE = 0.25  # of a degraded carrier's configured TPS, while another carrier can take the rest
_ACTOR = Actor.system("carrier-health")


@dataclass
class Assessment:
    degraded: dict[str, str] = field(default_factory=dict)  # carrier → why
    changed: list[str] = field(default_factory=list)  # "alpha degraded", "beta recovered"

    def as_dict(self) -> dict[str, Any]:
        return {"degraded": self.degraded, "changed": self.changed}


def assess(session: Session, now: datetime | None = None, *, window: timedelta = WINDOW) -> Assessment:
    """Judge every carrier from its recent receipts, store the verdicts, audit the changes."""
    now = now or utcnow()
    health = carrier_health_from_receipts(session, window, now=now)
    rows = {r.carrier: r for r in session.scalars(select(CarrierHealthRow).with_for_update())}
    out = Assessment()
    for name in sorted(set(health) | set(rows)):
        verdict = health.get(name)
        row = rows.get(name)
        if row is None:
            row = CarrierHealthRow(carrier=name, degraded=False, reason="", since=now)
            session.add(row)
        degraded = bool(verdict and verdict.degraded)
        if degraded != bool(row.degraded):
            row.since = now
            action = "carrier.degraded" if degraded else "carrier.recovered"
            out.changed.append(f"{name} {action.split('.')[1]}")
            trail.append(session, actor=_ACTOR, action=action, subject_type="carrier", subject_id=name,
                         payload={"finals": verdict.finals if verdict else 0,
                                  "failure_rate": round(verdict.failure_rate, 4) if verdict else 0,
                                  "latency_p90_s": verdict.latency_p90_s if verdict else None,
                                  "window_s": int(window.total_seconds())},
                         reason=verdict.reason if degraded and verdict else "no evidence against it in the window")
        row.degraded = degraded
        row.reason = verdict.reason if verdict else ""
        row.finals = verdict.finals if verdict else 0
        row.failure_rate = verdict.failure_rate if verdict else 0.0
        row.latency_p90_s = verdict.latency_p90_s if verdict else None
        row.checked_at = now
        if degraded:
            out.degraded[name] = row.reason
    if out.changed:
        log.warning("carrier health: %s", "; ".join(out.changed))
    return out


def assess_if_due(now: datetime | None = None, *, every_s: float = ASSESS_EVERY_S) -> Assessment | None:
    """The scheduler's periodic task: `assess` at most every `every_s` seconds."""
    now = now or utcnow()
    with transaction() as session:
        last = session.execute(text("SELECT max(checked_at) FROM carrier_health")).scalar()
        if last is not None and (now - last).total_seconds() < every_s:
            return None
        return assess(session, now)


def degraded_carriers(session: Session) -> dict[str, str]:
    """carrier → why, for the carriers judged degraded (what gateways and the console read)."""
    return {r.carrier: r.reason for r in session.scalars(
        select(CarrierHealthRow).where(CarrierHealthRow.degraded).order_by(CarrierHealthRow.carrier))}
