"""The pipeline under faults, with real worker and scheduler processes (issue 6's recovery tests,
moved here from tests/broadcast/ so the fault suite reports them in its table).

Each test asserts against the simulator, the ground truth of what reached the air: every recipient
got the alert, and the only duplicates are re-sends the system counted as possible duplicates,
bounded by one slice of the killed worker's windows per kill.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import replace

import pytest

from alerting.alerts import lifecycle
from alerting.base import runtime
from alerting.base.models import Priority
from alerting.base.runtime import redis_connection
from tests.cluster import Cluster, approved_alert, seed_group, wait_until
from tests.conftest import _free_port
from tests.faults.conftest import N, fault_carriers
from tests.faults.rig import FaultRow, Stopwatch, check_recovered, record

pytestmark = pytest.mark.faults

# 2 carriers × 2 binds × window 50: a worker's slice (what it may have in flight) is 200 messages.
SLICE = 200


def test_worker_killed_mid_batch_twice_loses_nothing(cluster, simulator, committed_db, request):
    """Bound: one slice per kill (2 × 200); every re-send of a reaped lease is counted."""
    seed_group(N)
    clock = Stopwatch()
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
    result = check_recovered(simulator, alert_id, N, bound=2 * SLICE, settings=committed_db)
    record(request, FaultRow("worker SIGKILLed mid-batch (twice)", N, **result, bound=2 * SLICE,
                             seconds=clock.seconds(), notes="SIGKILL of the whole process, twice"))


def test_redis_restarted_empty_mid_alert_still_completes(committed_db, simulator, make_cluster, tmp_path, request):
    """Bound: one slice (the batch a worker was in when its job vanished is finished by the lease)."""
    port = _free_port()
    redis_cmd = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: _ping(url), 10, "redis up")
        settings = replace(committed_db, redis_url=url)
        runtime.use_redis(redis_connection(url))
        cluster = make_cluster(settings, fault_carriers(simulator.ports(), binds=2, window=50, tps=2000))
        seed_group(N)
        clock = Stopwatch()
        alert_id = approved_alert({"es": "Corte de agua. ACK {codigo}"}, priority=Priority.NORMAL)
        cluster.scheduler()
        worker = cluster.worker()
        wait_until(lambda: simulator.submit_count() >= 1000, 60, "the first 1000 submits")
        redis.kill()
        redis.wait(5)
        time.sleep(3)  # long enough for RQ's loop to hit the outage outside a job (it then quits)
        redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)  # same port, empty
        wait_until(lambda: _ping(url), 10, "redis back")
        cluster.wait_completed(alert_id)
        assert worker.poll() is None, "the gateway worker process exited when Redis went away"
        result = check_recovered(simulator, alert_id, N, bound=SLICE, settings=committed_db)
        record(request, FaultRow("Redis restarted empty", N, **result, bound=SLICE, seconds=clock.seconds(),
                                 notes="SIGKILL of redis-server (no persistence), same port restarted empty"))
    finally:
        runtime.use_redis(None)
        redis.kill()


def _ping(url: str) -> bool:
    try:
        return bool(redis_connection(url, timeout_s=0.5).ping())
    except Exception:
        return False


def test_a_carrier_dropping_then_refusing_binds_moves_traffic_to_the_other(cluster, simulator, committed_db,
                                                                            request):
    """Bound: one slice (alpha's unanswered window when the link dropped is re-sent, counted)."""
    seed_group(N)
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Incendio forestal: evacuar. ACK {codigo}"})
    cluster.scheduler()
    cluster.worker()
    wait_until(lambda: simulator.submit_count() >= 500, 60, "sending under way")
    simulator.set_fault("alpha", "refuse_bind", for_s=30)
    simulator.set_fault("alpha", "drop_after", n=1, times=2)  # both of alpha's binds
    cluster.wait_completed(alert_id)
    result = check_recovered(simulator, alert_id, N, bound=SLICE, settings=committed_db)
    beta = len(simulator.messages("beta"))
    assert beta > N // 2, f"beta carried only {beta}: traffic did not move off alpha ({result})"
    record(request, FaultRow("carrier bind dropped, then refusing binds", N, **result, bound=SLICE,
                             seconds=clock.seconds(), notes=f"beta carried {beta:,}"))


def test_throttling_on_one_carrier_slows_but_loses_nothing(cluster, simulator, committed_db, request):
    """Bound: 0 (a throttled submit is a definite "not accepted")."""
    seed_group(N)
    simulator.set_fault("alpha", "throttle", every_nth=5)
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Simulacro no: alerta real de tsunami. ACK {codigo}"})
    cluster.scheduler()
    cluster.worker()
    cluster.wait_completed(alert_id)
    result = check_recovered(simulator, alert_id, N, bound=0, settings=committed_db)
    throttled = simulator.summary("alpha")
    record(request, FaultRow("throttling every 5th submit", N, **result, bound=0, seconds=clock.seconds(),
                             notes=f"ESME_RTHROTTLED on alpha; alpha accepted {throttled['messages']:,}"))


def test_two_workers_sending_one_alert_at_once_never_send_a_delivery_twice(cluster, simulator, committed_db):
    """No fault: the claim (FOR UPDATE SKIP LOCKED and a lease) alone keeps two live workers apart."""
    import re
    import urllib.request

    seed_group(N)
    alert_id = approved_alert({"es": "Simulacro de tsunami: suba a la cota 30. ACK {codigo}"})
    ports = [_free_port(), _free_port()]
    for k, port in enumerate(ports, start=1):
        cluster._start("worker", "--share", f"{k}/2", "--name", f"gw-pair-{k}", "--metrics-port", str(port))
    cluster.scheduler()
    wait_until(lambda: simulator.submit_count() >= N // 2, 60, "half the alert on the air")
    sent = []
    for port in ports:  # read while both are alive: each process counts its own submits
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        sent.append(sum(float(v) for v in re.findall(r"^sirena_submits_total\{[^}]*\} ([0-9.e+]+)$", scrape, re.M)))
    cluster.wait_completed(alert_id)
    result = check_recovered(simulator, alert_id, N, bound=0, settings=committed_db)
    assert result["duplicates"] == 0 and result["counted"] == 0
    assert all(n > 0 for n in sent), f"both workers should have sent part of the alert: {sent}"


def test_a_flash_alert_overtakes_a_routine_alert_already_sending(make_cluster, simulator, committed_db, redis_db):
    """A running worker, mid-way through a routine alert, sends a flash alert approved meanwhile before
    it finishes the routine one (checked on the air, in the order messages arrived)."""
    from alerting.alerts.drafts import AlertDraft
    from alerting.base.db import transaction
    from alerting.base.models import AlertMode
    from tests.cluster import operators

    seed_group(N)  # routine: everyone
    seed_group(50, group="evacuar", prefix="+5697")  # flash: another 50 numbers
    # 2 × 250 TPS: the routine alert takes ~10 s, time enough to approve the flash one mid-way.
    cluster = make_cluster(committed_db, fault_carriers(simulator.ports(), binds=2, window=50, tps=250))
    routine = approved_alert({"es": "Corte de agua programado mañana."}, priority=Priority.LOW)
    cluster.scheduler()
    cluster.worker()
    wait_until(lambda: simulator.submit_count() >= 500, 60, "the routine alert under way")
    composer, first = operators("-flash-a")
    _, second = operators("-flash-b")
    with transaction() as s:
        flash = lifecycle.compose(s, AlertDraft(texts={"es": "EVACUE YA: tsunami."}, mode=AlertMode.LIVE,
                                            sender_name="SIRENA-SC", priority=Priority.FLASH,
                                            target={"groups": ["evacuar"]}), composer)
        lifecycle.submit(s, flash.id, composer)
    for approver in (first, second):  # a live flash alert needs two approvers
        with transaction() as s:
            lifecycle.approve(s, flash.id, approver, seen_hash=flash.approval_hash,
                              override_reason="a fault test: the whole directory on purpose")
    cluster.wait_completed(flash.id)
    cluster.wait_completed(routine)
    order = [m["dest"] for m in simulator.messages()]
    last_flash = max(i for i, dest in enumerate(order) if dest.startswith("5697"))
    routine_after = sum(1 for dest in order[last_flash + 1:] if dest.startswith("5699"))
    assert routine_after > 0, "the routine alert had finished before the flash went out: nothing was overtaken"
    assert len([d for d in order if d.startswith("5697")]) == 50


def test_a_deploy_sigterms_each_worker_mid_alert_and_nothing_is_lost_or_sent_twice(committed_db, redis_db, simulator,
                                                                                   make_cluster, request):
    """A rolling deploy (RELIABILITY.md row 3): each of two workers gets SIGTERM mid-alert in turn and a
    new one starts in its place, as systemd or `docker stop`/`start` do. A clean stop finishes the
    slice in flight, records it, hands the rest of its batch to the queue and exits 0. Bound: 0
    duplicates (nothing is left in the ambiguous window), counted 0."""
    # 300 TPS per carrier: the alert lasts ~8 s, time for both stops mid-send.
    cluster = make_cluster(committed_db, fault_carriers(simulator.ports(), binds=2, window=50, tps=300))
    seed_group(N)
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Actualización del sistema: alerta vigente. ACK {codigo}"})
    cluster.scheduler()
    workers = {share: cluster.worker(share) for share in ("1/2", "2/2")}
    stops = []
    for share, at in (("1/2", 800), ("2/2", 2500)):
        wait_until(lambda at=at: simulator.submit_count() >= at, 60, f"{at} submits", cluster.log_text)
        code, took = Cluster.terminate(workers[share])
        stops.append((code, round(took, 1), simulator.submit_count()))
        workers[share] = cluster.worker(share)  # the new version
    cluster.wait_completed(alert_id)
    result = check_recovered(simulator, alert_id, N, bound=0, settings=committed_db)
    assert [code for code, *_ in stops] == [0, 0], f"exit codes {stops}\n{cluster.log_text()}"
    assert all(at < N for *_, at in stops), f"a stop came after the alert was sent: {stops}"
    record(request, FaultRow("worker SIGTERMed mid-batch (deploy)", N, **result, bound=0, seconds=clock.seconds(),
                             notes=f"2 workers stopped in turn mid-alert and replaced; exit 0 after "
                                   f"{stops[0][1]:.1f} s and {stops[1][1]:.1f} s"))
