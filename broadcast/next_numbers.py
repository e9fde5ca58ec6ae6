"""A message that fails for good on one of a contact's numbers is tried on the next one.

The design, and why:

- Fan-out writes ONE delivery per contact, to its first number (`contacts.msisdn`), as before:
  the hot path (materialize, claim, submit, record) does not know a contact has more numbers.
- Where a final failure is recorded — the carrier's final failure receipt (UNDELIV, EXPIRED,
  REJECTD, DELETED: broadcast/receipts.py) or a final submit refusal (broadcast/gateway.py
  `_record`) — `try_next_numbers` takes the deliveries that just failed, in one set statement,
  and writes a NEW delivery per contact to its next number (`number_position` 2 or 3,
  `previous_delivery_id` the failed one), queued, and its send batch. The failed delivery
  becomes `next_number`: failed on that number, the contact tried on the next. Each number
  tried keeps its own row (its carrier, message ids, receipts, error), so the alert's
  deliveries show every number tried, and a late receipt of the first message still lands on
  the first message's row.
- People, not messages, are counted: the live counts (broadcast.jobs.counts_by_state), the
  progress summary, non-responders and escalation leave `next_number` rows out, so each
  contact is counted once, in the state of the last number tried. Per carrier, the row still
  counts as that carrier's failure.
- Not tried on another number: an opted-out contact (whatever the alert's opt-out override: it
  reaches the number the contact gave first, the others are theirs to give); a number the
  alert's target excludes (`exclude_numbers`); a number the alert already has a delivery for;
  a delivery whose alert is no longer sending or completed (cancelled, superseded), began
  sending more than WINDOW_S ago, or failed for our own refusal (an exercise without its prefix
  or without a test route); a contact deleted meanwhile.
- Tried on the next number INSTEAD of once more through another carrier on the same number
  (broadcast.escalation.retry_undelivered, which only takes deliveries still failed): a second
  phone is the better remedy, and one remedy at a time sends no duplicate. The last number of a
  contact still gets the carrier retry.
- An alert that completed before the failure came back (receipts come after the last submit)
  stays completed: the gateway sends queued deliveries of completed alerts too, and the
  reconciler queues a lost batch for them (broadcast/reconciler.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base import job_ids
from alerting.base.db import utcnow
from alerting.base.outbox import enqueue_after_commit, notify_flash

log = logging.getLogger("sirena.next_numbers")

# After this long since the alert began sending, a failure is no longer taken to another number
# (a receipt can come back days later: EXPIRED after the validity period).
WINDOW_S = 24 * 3600
# Our own refusals: nothing to do with the number.
OWN_REFUSALS = ("drill_unmarked", "drill_no_test_route")
BATCH_SIZE = 500
SEND_BATCH_TIMEOUT_S = 300  # as broadcast.jobs'

# The next number of each contact whose delivery just failed for good, written as a queued
# delivery. Deliveries of one alert are unique by number: ON CONFLICT leaves a number already
# written (a second pass, or a number moved between contacts) alone.
_NEXT = text("""
WITH failed AS (
    SELECT d.id, d.alert_id, d.contact_id, d.language, coalesce(d.number_position, 1) AS position,
           coalesce(a.target -> 'exclude_numbers', CAST('[]' AS jsonb)) AS excluded
      FROM deliveries d
      JOIN alerts a ON a.id = d.alert_id
      JOIN contacts c ON c.id = d.contact_id
     WHERE d.id = ANY(:ids) AND d.state IN ('failed', 'expired')
       AND coalesce(d.error_code, '') <> ALL(:own)
       AND c.opted_out_at IS NULL
       AND a.state IN ('sending', 'completed')
       AND coalesce(a.sending_at, a.approved_at) > now() - make_interval(secs => :window))
INSERT INTO deliveries AS d (alert_id, contact_id, msisdn, language, number_position, previous_delivery_id,
                             state, attempts, possible_duplicates, parts_delivered, queued_at, updated_at)
SELECT f.alert_id, f.contact_id, n.msisdn, f.language, n.position, f.id, 'queued', 0, 0, 0, now(), now()
  FROM failed f
  CROSS JOIN LATERAL (
       SELECT n.position, n.msisdn FROM contact_numbers n
        WHERE n.contact_id = f.contact_id AND n.position > f.position AND NOT (f.excluded ? n.msisdn)
          AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.alert_id = f.alert_id AND x.msisdn = n.msisdn)
        ORDER BY n.position LIMIT 1) n
 ORDER BY f.alert_id, f.id
ON CONFLICT (alert_id, msisdn) DO NOTHING
RETURNING d.id, d.alert_id, d.previous_delivery_id
""")

_MOVED_ON = text("""
UPDATE deliveries SET state = 'next_number', updated_at = now()
 WHERE id = ANY(:ids) AND state IN ('failed', 'expired')
""")


def try_next_numbers(session: Session, delivery_ids: Sequence[int]) -> list[int]:
    """Try each of these deliveries that failed for good on its contact's next number; returns the
    ids of those moved on (now `next_number`). Two set statements and, per alert, its send
    batches queued after commit. Idempotent: a moved delivery is no longer failed. Rows must be
    final already (the caller recorded the failure in this transaction); others are left alone.
    """
    if not delivery_ids:
        return []
    rows = session.execute(_NEXT, {"ids": sorted(set(delivery_ids)), "own": list(OWN_REFUSALS),
                                   "window": WINDOW_S}).all()
    if not rows:
        return []
    moved = sorted(r.previous_delivery_id for r in rows)
    session.execute(_MOVED_ON, {"ids": moved})
    by_alert: dict[int, list[int]] = {}
    for row in rows:
        by_alert.setdefault(row.alert_id, []).append(row.id)
    _queue_sends(session, by_alert)
    log.info("%d deliveries tried on the next number (alerts %s)", len(rows), sorted(by_alert))
    return moved


def _queue_sends(session: Session, by_alert: dict[int, list[int]]) -> None:
    """A send batch per BATCH_SIZE new deliveries of each alert, on the alert's priority queue; a
    flash alert still sending also wakes the gateways' flash lanes."""
    alerts = session.execute(text("SELECT id, priority, state FROM alerts WHERE id = ANY(:ids)"),
                             {"ids": list(by_alert)}).all()
    tag = f"-n{utcnow():%H%M%S%f}"
    for alert_id, priority, state in alerts:
        ids = sorted(by_alert[alert_id])
        for start in range(0, len(ids), BATCH_SIZE):
            lo, hi = ids[start], ids[min(start + BATCH_SIZE, len(ids)) - 1]
            job = job_ids.send_batch(alert_id, lo, hi, tag)
            enqueue_after_commit(session, job.func, alert_id, lo, hi, queue=priority, job_id=job.job_id,
                                 timeout_s=SEND_BATCH_TIMEOUT_S)
        if priority == "flash" and state == "sending":
            notify_flash(session, alert_id)


def moves_of(session: Session, alert_id: int, *, limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
    """How many of the alert's contacts were tried on a next number, and the first `limit` of those
    deliveries (oldest first): the contact's name, the number before and this one, its position,
    its state. Reads ix_deliveries_next_numbers and the trigger-kept counters only."""
    moved = session.execute(text("SELECT coalesce(sum(n), 0) FROM alert_counters "
                                 "WHERE alert_id = :a AND state = 'next_number'"), {"a": alert_id}).scalar_one()
    rows = session.execute(text("""
        SELECT d.id, d.contact_id, c.name, p.msisdn AS previous_msisdn, d.msisdn, d.number_position, d.state,
               p.error_code AS previous_error
          FROM deliveries d
          LEFT JOIN deliveries p ON p.id = d.previous_delivery_id
          LEFT JOIN contacts c ON c.id = d.contact_id
         WHERE d.alert_id = :a AND d.number_position IS NOT NULL
         ORDER BY d.id LIMIT :limit
    """), {"a": alert_id, "limit": limit}).mappings().all()
    return int(moved), [dict(r) for r in rows]
