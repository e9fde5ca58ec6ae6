"""Receipts that overtake their submit_sm_resp, and every receipt sent twice, on both carriers.

A receipt naming a message id Sirena has not recorded yet is stored (never dropped) and matched
by a later pass (the scheduler queues the inbound sweep); a duplicated receipt is stored as
evidence and changes nothing (the first final receipt of a part decides it). Checked: every
delivery ends `delivered` exactly once, every receipt the carriers sent is stored, none is left
unmatched, and no duplicate reached the air that Sirena did not count.

Bound: one slice (200). The receipts themselves cause no re-send, but each deliver_sm is stored
before it is answered, on the bind's reader thread; on a loaded machine that can hold a window's
submit_sm_resp past `response_timeout_s`, and the pool then re-sends through another bind,
counting each (seen once here: 100 under a load average of 12).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.base import db as dbmod
from tests.cluster import approved_alert, delivery_totals, seed_group, wait_until
from tests.faults.conftest import N
from tests.faults.rig import FaultRow, Stopwatch, check_recovered, record

pytestmark = pytest.mark.faults

BOUND = 200  # 2 carriers × 2 binds × window 50


def _receipts() -> dict[str, float]:
    with dbmod.transaction() as s:
        row = s.execute(text("""
            SELECT count(*), count(*) FILTER (WHERE matched_at IS NULL),
                   coalesce(max(extract(epoch FROM matched_at - received_at)), 0)
              FROM receipts""")).one()
    return {"stored": int(row[0]), "unmatched": int(row[1]), "max_wait_s": float(row[2])}


def test_early_and_duplicated_receipts_each_delivery_delivered_once(cluster, simulator, committed_db, request):
    for carrier in ("alpha", "beta"):
        simulator.set_fault(carrier, "dlr_before_resp")
        simulator.set_fault(carrier, "duplicate_receipts", share=1.0)
    seed_group(N)
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Alerta de tsunami: evacuar la costa. ACK {codigo}"})
    cluster.scheduler()
    cluster.worker()
    cluster.wait_completed(alert_id)
    wait_until(lambda: delivery_totals(alert_id).get("delivered", 0) == N, 90, "every receipt to be matched",
               lambda: f"{delivery_totals(alert_id)} receipts {_receipts()}\n{cluster.log_text()}")
    seconds = clock.seconds()
    sent = sum(simulator.status()["carriers"][c]["counts"]["receipts"] for c in ("alpha", "beta"))
    wait_until(lambda: _receipts()["stored"] >= sent, 30, "every receipt sent to be stored")
    receipts = _receipts()
    result = check_recovered(simulator, alert_id, N, bound=BOUND, settings=committed_db, handed_states=("delivered",))
    assert sent >= 2 * N, f"the simulator sent {sent} receipts for {N} messages: duplicates were not exercised"
    assert receipts["stored"] == sent and receipts["unmatched"] == 0, receipts
    with dbmod.transaction() as s:
        early = s.scalar(text("SELECT count(*) FROM receipts WHERE matched_at > received_at + interval '0.5 s'"))
    record(request, FaultRow("receipts before ids stored, duplicated", N, **result, bound=BOUND, seconds=seconds,
                             notes=f"{sent:,} receipts stored (each twice), {early:,} waited for their id "
                                   f"(longest {receipts['max_wait_s']:.1f} s), 0 unmatched"))
