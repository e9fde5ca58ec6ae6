"""Claiming deliveries for sending, and recording what the carriers answered, in sets.

A claim is a committed lease written in the row (state `submitting`, `lease_until`, `claimed_by`),
not only a row lock: it survives a Postgres restart and a dead worker, and the reaper returns
expired leases to `queued`. Claim before submit: a crash after submit_sm re-sends once, never zero
times, and every such possible re-send is counted in `possible_duplicates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base.db import pg_array, rowcount

LEASE_S = 30


class Claimed(NamedTuple):
    """A leased delivery, as the claim returned it. A tuple: building frozen dataclasses was 5 % of
    a gateway worker's CPU during a blast (py-spy)."""

    id: int
    msisdn: str
    language: str
    attempts: int
    carriers_tried: tuple[str, ...]
    name: str | None
    attributes: dict[str, Any] | None


@dataclass(slots=True)
class Outcome:
    """What became of one claimed delivery or follow-up. `state` is a DeliveryState value. The same
    type is recorded for both, by one statement each (record_outcomes, followups._record), from
    the same columns (outcome_columns, OUTCOMES_TABLE)."""

    id: int
    state: str
    carrier: str | None = None
    bind: str | None = None
    message_ids: list[str] | None = None
    parts: int | None = None
    error_code: str | None = None
    error_reason: str | None = None
    possible_duplicates: int = 0  # copies that may already be on the air beyond one


def outcome_columns(outcomes: list[Outcome]) -> dict[str, str]:
    """The outcomes as one array constant per column (db.pg_array), for OUTCOMES_TABLE; a row's
    message ids are an array's text inside the text array `mids` (a column of arrays of different
    lengths cannot be one PostgreSQL array)."""
    return {
        "id": pg_array(o.id for o in outcomes), "state": pg_array(o.state for o in outcomes),
        "carrier": pg_array(o.carrier for o in outcomes), "bind": pg_array(o.bind for o in outcomes),
        "mids": pg_array(None if o.message_ids is None else pg_array(o.message_ids) for o in outcomes),
        "parts": pg_array(o.parts for o in outcomes), "error_code": pg_array(o.error_code for o in outcomes),
        "error_reason": pg_array(o.error_reason for o in outcomes),
        "dup": pg_array(o.possible_duplicates for o in outcomes),
    }


# The outcomes as a table `v`, one array constant per column. It replaced a VALUES row per outcome,
# whose parsing, planning and per-row expression set-up showed high in a profile of PostgreSQL
# during bench/pipeline.py. `v.mids::varchar[]` is the message ids.
OUTCOMES_TABLE = """unnest(%(id)s::bigint[], %(state)s::varchar[], %(carrier)s::varchar[], %(bind)s::varchar[],
              %(mids)s::text[], %(parts)s::smallint[], %(error_code)s::varchar[], %(error_reason)s::text[],
              %(dup)s::int[]) AS v(id, state, carrier, bind, mids, parts, error_code, error_reason, dup)"""


_CLAIM = text("""
WITH pick AS (SELECT id FROM deliveries
               WHERE alert_id = :alert_id AND id BETWEEN :lo AND :hi AND state = 'queued'
               ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED),
     claimed AS (UPDATE deliveries d
                    SET state = 'submitting', lease_until = now() + make_interval(secs => :lease_s),
                        claimed_by = :worker, attempts = d.attempts + 1, updated_at = now()
                   FROM pick WHERE d.id = pick.id
                 RETURNING d.id, d.msisdn, d.language, d.attempts, d.carriers_tried, d.contact_id)
SELECT claimed.id, claimed.msisdn, claimed.language, claimed.attempts, claimed.carriers_tried, c.name, c.attributes
  FROM claimed LEFT JOIN contacts c ON c.id = claimed.contact_id
 ORDER BY claimed.id
""")

_CLAIM_FAST = text("""
UPDATE deliveries d
   SET state = 'submitting', lease_until = now() + make_interval(secs => :lease_s),
       claimed_by = :worker, attempts = d.attempts + 1, updated_at = now()
 WHERE d.id IN (SELECT id FROM deliveries
                 WHERE alert_id = :alert_id AND id BETWEEN :lo AND :hi AND state = 'queued'
                 ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.msisdn, d.language, d.attempts, d.carriers_tried
""")


def claim_batch(session: Session, alert_id: int, lo: int, hi: int, *, worker: str, limit: int = 1000,
                with_contact: bool = False, lease_s: int = LEASE_S) -> list[Claimed]:
    """Lease the queued deliveries of `alert_id` with ids in [lo, hi]; rows others hold are skipped."""
    params = {"alert_id": alert_id, "lo": lo, "hi": hi, "worker": worker, "limit": limit, "lease_s": lease_s}
    if with_contact:
        rows = session.execute(_CLAIM, params).all()
        return [Claimed(r[0], r[1], r[2], r[3], tuple(r[4] or ()), r[5], r[6]) for r in rows]
    rows = session.execute(_CLAIM_FAST, params).all()
    return [Claimed(r[0], r[1], r[2], r[3], tuple(r[4] or ()), None, None) for r in rows]


_RECORD = f"""
UPDATE deliveries d
   SET state = v.state,
       carrier = coalesce(v.carrier, d.carrier),
       bind = coalesce(v.bind, d.bind),
       carriers_tried = CASE WHEN v.carrier IS NULL OR v.carrier = ANY(coalesce(d.carriers_tried, '{{}}'))
                             THEN d.carriers_tried ELSE array_append(d.carriers_tried, v.carrier) END,
       message_ids = coalesce(v.mids::varchar[], d.message_ids),
       parts = coalesce(v.parts, d.parts),
       error_code = v.error_code,
       error_reason = v.error_reason,
       possible_duplicates = d.possible_duplicates + v.dup,
       submitted_at = CASE WHEN v.state = 'submitted' THEN now() ELSE d.submitted_at END,
       failed_at = CASE WHEN v.state = 'failed' THEN now() ELSE d.failed_at END,
       lease_until = NULL, claimed_by = NULL, updated_at = now()
  FROM {OUTCOMES_TABLE}
 WHERE d.id = v.id AND d.state || '' = 'submitting' AND d.claimed_by = %(worker)s
"""
# The plan this gives whatever the statistics say (none, for rows written a second ago): for each
# outcome, the row by its primary key. `state || ''` is a condition the partial lease index's
# predicate (state = 'submitting') cannot match: that index keeps an entry for every row ever
# claimed until a vacuum, and a plan driven by it read all of them at every record (24 ms per slice
# at the end of a 100,000-recipient alert). An `id = ANY(ids)` beside the join, which had kept the
# lease index out, made the planner rescan the outcomes once per row instead (17 ms for 200 rows,
# 3 ms without it).


def record_outcomes(session: Session, outcomes: list[Outcome], *, worker: str) -> int:
    """Write every outcome of a batch in ONE statement; only rows still leased to `worker` change."""
    if not outcomes:
        return 0
    # Through SQLAlchemy's connection (not a bare DBAPI cursor): its errors arrive wrapped, as every
    # caller's retry expects (a deadlock victim's psycopg2 error had escaped the gateway's).
    return rowcount(session.connection().exec_driver_sql(_RECORD, {**outcome_columns(outcomes), "worker": worker}))


def reap_expired_leases(session: Session) -> dict[int, int]:
    """Return expired `submitting` leases to `queued`; each may have reached the carrier: counted.

    Returns {alert_id: rows reclaimed}.
    """
    rows = session.execute(text("""
        UPDATE deliveries SET state = 'queued', lease_until = NULL, claimed_by = NULL,
               possible_duplicates = possible_duplicates + 1, updated_at = now()
         WHERE state = 'submitting' AND lease_until < now()
        RETURNING alert_id
    """)).scalars().all()
    reclaimed: dict[int, int] = {}
    for alert_id in rows:
        reclaimed[alert_id] = reclaimed.get(alert_id, 0) + 1
    return reclaimed


def renew_leases(session: Session, *, worker: str, lease_s: int = LEASE_S) -> int:
    """Push back the expiry of every lease `worker` holds (its heartbeat).

    Rows locked by another transaction are skipped, never waited for: they are the worker's own
    slices being recorded (their leases end there). Waiting for them deadlocked with the record,
    which locks its rows in the order the carriers answered (the benchmark's 1M alert: a record
    chosen as the victim left 200 rows leased to a live worker, renewed forever).
    """
    return rowcount(session.execute(text("""
        UPDATE deliveries SET lease_until = now() + make_interval(secs => :lease_s)
         WHERE id IN (SELECT id FROM deliveries WHERE claimed_by = :worker AND state = 'submitting'
                       FOR UPDATE SKIP LOCKED)
    """), {"worker": worker, "lease_s": lease_s}))


def release_claims(session: Session, ids: list[int], *, worker: str) -> int:
    """Give back leased rows that were never written to a socket (a clean stop): no duplicate."""
    if not ids:
        return 0
    return rowcount(session.execute(text("""
        UPDATE deliveries SET state = 'queued', lease_until = NULL, claimed_by = NULL,
               attempts = greatest(attempts - 1, 0), updated_at = now()
         WHERE id = ANY(:ids) AND state = 'submitting' AND claimed_by = :worker
    """), {"ids": ids, "worker": worker}))


def cut_batches(session: Session, alert_id: int, *, after_id: int = 0, size: int = 500,
                contacts: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Id ranges of `size` queued deliveries each, for the rows of `alert_id` with id > after_id
    (and, given `contacts`, of contact ids in that inclusive range: what one fan-out chunk wrote,
    leaving out the rows another chunk writes at the same time, whose ids may interleave)."""
    in_chunk = "AND contact_id BETWEEN :clo AND :chi" if contacts else ""
    rows = session.execute(text(f"""
        SELECT min(id), max(id) FROM (
            SELECT id, (row_number() OVER (ORDER BY id) - 1) / :size AS b
              FROM deliveries WHERE alert_id = :alert_id AND id > :after AND state = 'queued' {in_chunk}) t
         GROUP BY b ORDER BY 1
    """), {"alert_id": alert_id, "after": after_id, "size": size,
           "clo": contacts[0] if contacts else None, "chi": contacts[1] if contacts else None}).all()
    return [(r[0], r[1]) for r in rows]


def any_unsent(session: Session, alert_id: int) -> bool:
    """Whether any delivery of the alert is still queued, submitting or waiting for a route.

    Read from the rows themselves (two probes of partial indexes: ix_deliveries_claim for
    queued, ix_deliveries_in_flight for the rest), never from the counters: completing an alert
    that still has work would strand it.
    """
    return bool(session.execute(text("""
        SELECT EXISTS (SELECT 1 FROM deliveries WHERE alert_id = :a AND state = 'queued')
            OR EXISTS (SELECT 1 FROM deliveries WHERE alert_id = :a AND state IN ('submitting', 'waiting_route'))
    """), {"a": alert_id}).scalar_one())


def recount(session: Session, alert_id: int) -> dict[str, int]:
    """Rebuild the alert's live counters from its rows (one GROUP BY); returns the counts by state."""
    session.execute(text("DELETE FROM alert_counters WHERE alert_id = :a"), {"a": alert_id})
    rows = session.execute(text("""
        INSERT INTO alert_counters (alert_id, state, carrier, n)
        SELECT alert_id, state, coalesce(carrier, ''), count(*) FROM deliveries WHERE alert_id = :a
         GROUP BY 1, 2, 3
        RETURNING state, n
    """), {"a": alert_id}).all()
    counts: dict[str, int] = {}
    for state, n in rows:
        counts[state] = counts.get(state, 0) + int(n)
    return counts
