"""An alert's timeline as an operator reads it: one line per event, except replies.

A flood brings hundreds of `reply.*` events a minute (each HELP is audited on its own, and must
stay so in the trail and its exports); on the alert's page they collapse into one line per action
and minute (`reply.help × 37`), so approvals, cancellations and escalations stay in sight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

COLLAPSED = "reply."  # actions with this prefix collapse per minute


@dataclass(frozen=True)
class TimelineLine:
    seq: int | None
    at: datetime
    actor_name: str
    action: str
    outcome: str
    reason: str | None
    count: int  # events on this line: more than one only for collapsed reply events


def alert_timeline(session: Session, alert_id: int) -> list[TimelineLine]:
    """The events about alert `alert_id` in chain order (unsealed ones last), `reply.*` events
    collapsed into one line per action, outcome and minute (its first event's time and seq)."""
    rows = session.execute(text("""
        SELECT min(seq) AS seq, min(at) AS at, min(action) AS action, min(outcome) AS outcome,
               CASE WHEN count(DISTINCT actor_name) = 1 THEN min(actor_name) ELSE '…' END AS actor_name,
               CASE WHEN count(*) = 1 THEN min(reason) END AS reason, count(*) AS n, min(id) AS first_id
          FROM audit.events
         WHERE subject_type = 'alert' AND subject_id = :a
         GROUP BY CASE WHEN starts_with(action, :collapsed) THEN action || outcome || date_trunc('minute', at)::text
                       ELSE id::text END
         ORDER BY min(seq) NULLS LAST, min(id)
    """), {"a": str(alert_id), "collapsed": COLLAPSED}).mappings().all()
    return [TimelineLine(r["seq"], r["at"], r["actor_name"], r["action"], r["outcome"], r["reason"], int(r["n"]))
            for r in rows]
