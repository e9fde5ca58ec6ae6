"""Worker metrics (broadcast/metrics.py) and presence records (broadcast/presence.py).

The live path (a worker's --metrics-port scraped while a carrier refuses binds) is checked in
tests/faults/test_carrier_faults.py; these check the pieces on a real pool, Redis and Postgres.
"""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from broadcast import metrics, presence
from broadcast.carriers import parse_carriers
from broadcast.pool import CarrierPool
from broadcast.reconciler import ReconcileReport
from tests.conftest import carriers_toml, sim_env


def _pool() -> CarrierPool:
    return CarrierPool(parse_carriers(carriers_toml({"alpha": 1, "beta": 2}, binds=2), sim_env()), lambda *a: None)


def test_every_bind_is_exported_with_its_carrier_and_state():
    registry = CollectorRegistry()
    registry.register(metrics.PoolCollector(_pool().health))
    text = generate_latest(registry).decode()
    for bind in ("alpha-1", "alpha-2", "beta-1", "beta-2"):
        carrier = bind.split("-")[0]
        assert f'sirena_bind_up{{bind="{bind}",carrier="{carrier}"}} 0.0' in text
        assert f'sirena_window_size{{bind="{bind}",carrier="{carrier}"}} 50.0' in text
        assert f'sirena_breaker_open{{bind="{bind}",carrier="{carrier}",state="closed"}} 1.0' in text
    assert 'sirena_possible_duplicates_total{source="pool"} 0.0' in text


def test_a_reconcile_pass_counts_its_actions_and_marks_the_time():
    before = metrics.RECONCILER_ACTIONS.labels("reaped")._value.get()
    metrics.observe_reconcile(ReconcileReport(reaped={7: 3, 8: 2}, batches_queued={7: 1}, seconds=0.25))
    assert metrics.RECONCILER_ACTIONS.labels("reaped")._value.get() == before + 5
    assert metrics.RECONCILER_PASS_SECONDS._value.get() == 0.25
    assert metrics.RECONCILER_LAST_PASS._value.get() > 0


def test_queue_depth_and_postgres_figures_come_from_the_real_stores(db, redis_db):
    redis_db.rpush("rq:queue:flash", "job-a", "job-b")
    registry = CollectorRegistry()
    registry.register(metrics.SystemCollector(redis_db))
    text = generate_latest(registry).decode()
    assert 'sirena_queue_depth{queue="flash"} 2.0' in text
    assert 'sirena_queue_depth{queue="low"} 0.0' in text


def test_presence_records_are_read_back_and_expire(redis_db):
    assert presence.publish(redis_db, "gateway", "gw-a", {"share": "1/2"})
    records = presence.read_all(redis_db)
    assert [(r["role"], r["name"], r["share"]) for r in records] == [("gateway", "gw-a", "1/2")]
    ttl = redis_db.ttl("sirena:presence:gateway:gw-a")
    assert 0 < ttl <= presence.TTL_S  # a dead worker disappears on its own
    beat = presence.Heartbeat(redis_db, "scheduler", "s-1", lambda: {"leader": True}).start()
    beat._stop.wait(0.2)
    beat.stop()
    assert json.loads(redis_db.get("sirena:presence:gateway:gw-a"))["name"] == "gw-a"
    assert redis_db.get("sirena:presence:scheduler:s-1") is None  # a clean stop removes its record
