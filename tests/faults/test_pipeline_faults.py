"""The pipeline under faults, with real worker and scheduler processes (issue 6's recovery tests).

Each test asserts against the simulator, the ground truth of what reached the air: every
recipient got the alert exactly once, except re-sends the system counted as possible duplicates,
bounded by one slice of one worker's window.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from alerting.outbox import redis_connection
from tests.cluster import Cluster, approved_alert, delivery_totals, seed_group, wait_until
from tests.conftest import carriers_toml, sim_env

N = 5000


@pytest.fixture
def cluster(committed_db, redis_db, simulator, tmp_path):  # type: ignore[no-untyped-def]
    carriers = tmp_path / "carriers.toml"
    carriers.write_text(carriers_toml(simulator.ports(), binds=2, window=50))
    logs = tmp_path / "logs"
    logs.mkdir()
    from broadcast.carriers import parse_carriers
    from broadcast.gateway import sync_senders

    sync_senders(parse_carriers(carriers.read_text(), sim_env()))
    cl = Cluster(committed_db, carriers, sim_env(), logs)
    try:
        yield cl
    finally:
        cl.stop()


def received(simulator) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {dest: len(texts) for dest, texts in simulator.messages_by_recipient().items()}


def assert_everyone_once(simulator, alert_id: int, *, slice_bound: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    got = received(simulator)
    totals = delivery_totals(alert_id)
    duplicates = sum(n - 1 for n in got.values())
    assert len(got) == N, f"lost {N - len(got)} recipients"
    assert duplicates <= slice_bound
    assert duplicates <= totals["possible_duplicates"], "a duplicate reached the air that was not counted"
    assert totals.get("submitted", 0) + totals.get("delivered", 0) == N
    return {"duplicates": duplicates, **totals}


def test_worker_killed_mid_batch_loses_nothing(cluster, simulator):
    seed_group(N)
    alert_id = approved_alert({"es": "Evacuar sector norte. ACK {codigo}"})
    cluster.scheduler()
    first = cluster.worker()
    wait_until(lambda: simulator.submit_count() >= 800, 60, "the first 800 submits")
    cluster.kill(first)
    at_kill = simulator.submit_count()
    second = cluster.worker()
    wait_until(lambda: simulator.submit_count() >= at_kill + 800, 60, "sending to resume")
    cluster.kill(second)  # twice in one alert
    cluster.worker()
    cluster.wait_completed(alert_id)
    # 2 binds × window 50 per carrier, 2 carriers: a slice is 200; two kills → at most 400 re-sent
    assert_everyone_once(simulator, alert_id, slice_bound=400)


def test_redis_restarted_empty_mid_alert_still_completes(committed_db, simulator, tmp_path):
    from dataclasses import replace

    from broadcast.carriers import parse_carriers
    from broadcast.gateway import sync_senders
    from tests.conftest import _free_port

    port = _free_port()
    redis_cmd = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: _ping(url), 10, "redis up")
    settings = replace(committed_db, redis_url=url)
    from alerting.outbox import configure_outbox

    configure_outbox(redis_connection(url))
    carriers = tmp_path / "carriers.toml"
    carriers.write_text(carriers_toml(simulator.ports(), binds=2, window=50, tps=2000))
    sync_senders(parse_carriers(carriers.read_text(), sim_env()))
    (tmp_path / "logs").mkdir()
    cluster = Cluster(settings, carriers, sim_env(), tmp_path / "logs")
    try:
        seed_group(N)
        alert_id = approved_alert({"es": "Corte de agua. ACK {codigo}"}, priority=__import__(
            "alerting.models", fromlist=["Priority"]).Priority.NORMAL)
        cluster.scheduler()
        cluster.worker()
        wait_until(lambda: simulator.submit_count() >= 1000, 60, "the first 1000 submits")
        redis.kill()
        redis.wait(5)
        redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)  # same port, empty
        wait_until(lambda: _ping(url), 10, "redis back")
        cluster.wait_completed(alert_id)
        assert_everyone_once(simulator, alert_id, slice_bound=200)
    finally:
        cluster.stop()
        configure_outbox(None)
        redis.kill()


def _ping(url: str) -> bool:
    try:
        return bool(redis_connection(url, timeout_s=0.5).ping())
    except Exception:
        return False


def test_a_carrier_dropping_then_refusing_binds_moves_traffic_to_the_other(cluster, simulator):
    seed_group(N)
    alert_id = approved_alert({"es": "Incendio forestal: evacuar. ACK {codigo}"})
    cluster.scheduler()
    cluster.worker()
    wait_until(lambda: simulator.submit_count() >= 500, 60, "sending under way")
    simulator.set_fault("alpha", "refuse_bind", for_s=30)
    simulator.set_fault("alpha", "drop_after", n=1)
    cluster.wait_completed(alert_id)
    result = assert_everyone_once(simulator, alert_id, slice_bound=200)
    beta = sum(1 for m in simulator.messages("beta"))
    assert beta > N // 2, f"beta carried only {beta}: traffic did not move off alpha ({result})"


def test_throttling_on_one_carrier_slows_but_loses_nothing(cluster, simulator):
    seed_group(N)
    simulator.set_fault("alpha", "throttle", every_nth=5)
    alert_id = approved_alert({"es": "Simulacro no: alerta real de tsunami. ACK {codigo}"})
    cluster.scheduler()
    cluster.worker()
    cluster.wait_completed(alert_id)
    result = assert_everyone_once(simulator, alert_id, slice_bound=0)
    assert result["duplicates"] == 0  # a throttled submit is a definite "not accepted"
