"""`sirena worker` as deployed: a real process that keeps listening through quiet hours, takes work
at once when Redis comes back, and stops cleanly on SIGTERM, idle or mid-alert.

No scheduler runs here: nothing but the worker's own loop may carry the work (a scheduler would
re-queue lost work and hide a deaf worker). Quiet time is compressed by configuration: the
workers' blocking wait on the queues ends every second (SIRENA_WORKER_IDLE_WAIT_S=1, tests/cluster.py),
so twelve seconds of idle are twelve of the cycles a deployed worker goes through every 5 s.
"""

from __future__ import annotations

import signal
import time
from dataclasses import replace

from sqlalchemy import text

from alerting.base import runtime
from alerting.base.db import transaction
from alerting.base.runtime import redis_connection
from tests.cluster import (
    Cluster,
    RedisServer,
    approved_alert,
    delivery_totals,
    seed_group,
    unsealed_events,
    wait_until,
)
from tests.conftest import carriers_toml

TEXT = {"es": "Prueba de sirena: responda ACK {codigo}"}
SENT = ("submitted", "delivered")


def handed(alert_id: int) -> int:
    totals = delivery_totals(alert_id)
    return sum(totals.get(s, 0) for s in SENT)


def first_submit_s(alert_id: int) -> float:
    """Seconds from approval to the first submit_sm recorded (what the alert page shows)."""
    with transaction() as s:
        return float(s.execute(text("SELECT extract(epoch FROM first_submit_at - approved_at) FROM alerts "
                                    "WHERE id = :a"), {"a": alert_id}).scalar_one())


def help_raised_s(number: str, sent_at: float) -> float | None:
    """Seconds from the handset's AYUDA to its HELP reply stored (raised in the same transaction)."""
    with transaction() as s:
        at = s.execute(text("SELECT extract(epoch FROM min(created_at)) FROM replies "
                            "WHERE msisdn = :n AND meaning = 'help'"), {"n": number}).scalar()
    return None if at is None else float(at) - sent_at


def test_an_idle_worker_keeps_listening_then_sends_and_raises_help_at_once(worker_process, redis_db, simulator):
    cluster, worker = worker_process()
    seed_group(20)
    time.sleep(12)  # twelve quiet cycles: before, each one ended RQ's loop and a back-off followed
    assert cluster.gateway_record(redis_db, worker)["loop_restarts"] == 0, cluster.log_text()

    alert_id = approved_alert(TEXT)
    wait_until(lambda: handed(alert_id) == 20, 20, "the alert to be handed to the carriers", cluster.log_text)
    to_air = first_submit_s(alert_id)

    time.sleep(6)  # quiet again, then a HELP
    sent_at = time.time()
    simulator.send_mo("alpha", "56990000007", "4242", "AYUDA estoy atrapado")
    wait_until(lambda: help_raised_s("+56990000007", sent_at) is not None, 20, "the HELP to be raised",
               cluster.log_text)
    help_s = help_raised_s("+56990000007", sent_at)
    print(f"approval -> first submit {to_air:.3f} s; HELP -> raised {help_s:.3f} s")
    assert to_air < 2.0, f"first submit {to_air:.2f} s after approval (target 1 s)"
    assert help_s is not None and help_s < 2.0, f"HELP raised {help_s:.2f} s after it was sent (target 2 s)"
    assert cluster.gateway_record(redis_db, worker)["loop_restarts"] == 0
    # No scheduler runs: the worker itself links the trail's new events (approval, HELP) within seconds.
    wait_until(lambda: unsealed_events() == 0, 5, "the worker to seal the audit trail", cluster.log_text)


def test_a_help_on_an_alert_without_supervisors_reaches_the_oncall_phones_from_a_real_worker(
        worker_process, redis_db, simulator):
    cluster, _worker = worker_process(SIRENA_ONCALL_GROUP="guardia")
    seed_group(5)
    seed_group(2, group="guardia", prefix="+5698")
    alert_id = approved_alert(TEXT)  # names no supervisors
    wait_until(lambda: handed(alert_id) == 5, 20, "the alert to be handed to the carriers", cluster.log_text)
    simulator.send_mo("alpha", "56990000003", "4242", "AYUDA se inunda la casa")
    wait_until(lambda: len(simulator.messages(dest="56980000001")) + len(simulator.messages(dest="56980000002")) == 2,
               20, "both on-call phones to get the HELP", cluster.log_text)
    [notice] = [m["text"] for m in simulator.messages(dest="56980000001")]
    assert notice.startswith("SIRENA A-") and "AYUDA de Persona 3 …0003: AYUDA se inunda la casa" in notice


def test_a_worker_takes_work_at_once_when_redis_comes_back(committed_db, simulator, tmp_path):
    redis = RedisServer(tmp_path).start()
    settings = replace(committed_db, redis_url=redis.url)
    cluster = Cluster.with_carriers(settings, carriers_toml(simulator.ports()), tmp_path)
    try:
        runtime.use_redis(redis_connection(redis.url))
        seed_group(20)
        worker = cluster.worker()
        cluster.wait_listening(redis_connection(redis.url), worker)
        redis.kill()
        time.sleep(8)  # RQ alone backs off 1, 2, 4 s … up to 60 s between reconnects
        redis.start()  # empty, same port
        alert_id = approved_alert(TEXT)
        wait_until(lambda: handed(alert_id) == 20, 20, "the alert to be handed to the carriers", cluster.log_text)
        to_air = first_submit_s(alert_id)
        print(f"Redis back -> approval -> first submit {to_air:.3f} s")
        assert to_air < 2.0, f"first submit {to_air:.2f} s after approval with Redis back (target 1 s)\n" \
                             + cluster.log_text()

        cluster.wait_completed(alert_id, 30)
        redis.kill()  # down again: a SIGTERM while the worker waits for Redis still stops it cleanly
        time.sleep(2)
        code, took = Cluster.terminate(worker)
        assert code == 0 and took < 5, (code, took, cluster.log_text())
        assert "internal error" not in cluster.log_text(400)  # before: exit 1, "internal error" and a traceback
    finally:
        runtime.use_redis(None)
        cluster.stop()
        redis.kill()


def test_sigterm_stops_an_idle_worker_at_once_and_it_unbinds(worker_process, redis_db, simulator):
    cluster, worker = worker_process()
    time.sleep(3)
    code, took = Cluster.terminate(worker)
    assert code == 0, cluster.log_text()
    assert took < 3, f"an idle worker took {took:.1f} s to stop"
    assert cluster.gateway_record(redis_db, worker) is None  # a clean stop removes its presence at once
    assert len(simulator.pdus(command="unbind")) == 4  # every bind (2 per carrier) unbound cleanly
    assert "stopped on SIGTERM" in cluster.log_text()


def test_sigterm_mid_alert_finishes_the_slice_and_another_worker_sends_the_rest(worker_process, redis_db,
                                                                                simulator):
    cluster, first = worker_process()
    _, second = worker_process()
    n = 3000
    seed_group(n)
    simulator.set_fault("alpha", "slow", delay_s=0.05)  # slices take a while: the signal lands mid-job
    simulator.set_fault("beta", "slow", delay_s=0.05)
    alert_id = approved_alert(TEXT)
    wait_until(lambda: simulator.submit_count() >= 400, 30, "the alert to be sending", cluster.log_text)
    code, took = Cluster.terminate(first)
    with transaction() as s:  # what it held is recorded and its leases released before it exits
        held = s.execute(text("SELECT count(*) FROM deliveries WHERE state = 'submitting' AND claimed_by = :w"),
                         {"w": cluster.names[first.pid]}).scalar_one()
    wait_until(lambda: handed(alert_id) == n, 60, "every delivery handed over", cluster.log_text)
    cluster.wait_completed(alert_id, 30)
    totals = delivery_totals(alert_id)
    got = simulator.messages_by_recipient()
    assert code == 0 and took < 10, (code, took, cluster.log_text())
    assert held == 0
    assert len(got) == n, f"lost {n - len(got)}"  # everyone got it
    assert all(len(texts) == 1 for texts in got.values()), "a clean stop must not duplicate"
    assert totals["possible_duplicates"] == 0
    first_log = (cluster.logs / "worker-1.log").read_text()
    assert "the rest of batch" in first_log and "stopped on SIGTERM" in first_log  # it was mid-job
    assert second.poll() is None


def test_sigint_stops_a_worker_like_sigterm(worker_process, redis_db):
    cluster, worker = worker_process()
    code, took = Cluster.terminate(worker, signal.SIGINT)
    assert code == 0 and took < 3, (code, took, cluster.log_text())
    assert "stopped on SIGINT" in cluster.log_text()
