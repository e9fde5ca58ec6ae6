"""PostgreSQL restarted mid-alert (`pg_ctl restart -m immediate`: a crash, every connection cut).

Runs on a throwaway cluster the test creates (initdb in a temp dir, its own port, removed at the
end), never the machine's own. Workers and the scheduler reconnect (the pool pings a connection
that sat idle, and renews the pool at the first disconnect) and carry on: uncommitted claims
roll back with the crash, committed ones are leases that outlive it.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from alerting.base import db as dbmod
from alerting.base import runtime
from tests.cluster import approved_alert, seed_group, wait_until
from tests.conftest import _free_port
from tests.faults.conftest import N, fault_carriers
from tests.faults.pgcluster import ThrowawayPostgres
from tests.faults.rig import FaultRow, Stopwatch, check_recovered, record

pytestmark = pytest.mark.faults

SLICE = 200  # 2 carriers × 2 binds × window 50: the slice a worker may lose the record of


@pytest.fixture
def throwaway_postgres(base_settings, settings, tmp_path):  # type: ignore[no-untyped-def]
    """(cluster, settings on it); the session's own database is bound again afterwards. Checkpoints
    of its own: every case's cluster names its database alike, and its chain starts again."""
    pg = ThrowawayPostgres(_free_port())
    try:
        pg.start()
        own = replace(pg.settings_for(base_settings), audit_checkpoint_dir=tmp_path / "checkpoints")
        runtime.use_database(own, name="sirena-test-faults-pg")
        yield pg, own
    finally:
        dbmod.engine().dispose()
        pg.remove()
        runtime.use_database(settings, name="sirena-test-faults")


def test_postgres_restarted_mid_alert_workers_reconnect_and_finish(throwaway_postgres, redis_db, simulator,
                                                                   make_cluster, request):
    """Bound: one slice (a slice submitted while the database was down may be re-sent, counted)."""
    pg, settings = throwaway_postgres
    # 300 TPS per carrier: the alert takes ~8 s, so the restart lands mid-send.
    cluster = make_cluster(settings, fault_carriers(simulator.ports(), binds=2, window=50, tps=300))
    seed_group(N)
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Sismo: revise gas y agua. ACK {codigo}"})
    cluster.scheduler()
    cluster.worker()
    wait_until(lambda: simulator.submit_count() >= 1500, 60, "the first 1500 submits")
    at_restart = simulator.submit_count()
    restart_s = pg.restart("immediate")
    resumed = time.monotonic()
    wait_until(lambda: simulator.submit_count() > at_restart + 200, 60, "sending to resume after the restart",
               cluster.log_text)
    resume_s = time.monotonic() - resumed
    cluster.wait_completed(alert_id)
    result = check_recovered(simulator, alert_id, N, bound=SLICE, settings=settings)
    record(request, FaultRow("PostgreSQL restarted (immediate)", N, **result, bound=SLICE, seconds=clock.seconds(),
                             notes=f"throwaway cluster; restart took {restart_s:.1f} s, sending resumed "
                                   f"{resume_s:.1f} s after it"))


DOWN_S = 60  # the minute


def test_postgres_down_for_a_minute_mid_alert_nothing_lost(throwaway_postgres, redis_db, simulator, make_cluster,
                                                          request):
    """PostgreSQL stopped (immediate) for 60 s mid-send, then started again. Workers keep their binds and
    the outcomes of the slice in flight (recorded once the database answers); leases lapse meanwhile,
    so the reaper may return a slice to the queue before its outcomes are recorded: it is re-sent and
    counted. Bound: one slice."""
    pg, settings = throwaway_postgres
    cluster = make_cluster(settings, fault_carriers(simulator.ports(), binds=2, window=50, tps=300))
    seed_group(N)
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Incendio: evacuar hacia el norte. ACK {codigo}"})
    cluster.scheduler()
    worker = cluster.worker()
    wait_until(lambda: simulator.submit_count() >= 1500, 60, "the first 1500 submits")
    pg.stop()
    at_stop = simulator.submit_count()
    time.sleep(DOWN_S)
    during = simulator.submit_count() - at_stop
    pg.start()
    back = time.monotonic()
    wait_until(lambda: simulator.submit_count() > at_stop + during + 200, 90, "sending to resume", cluster.log_text)
    resume_s = time.monotonic() - back
    cluster.wait_completed(alert_id, timeout_s=180)
    assert worker.poll() is None, "the gateway worker exited while PostgreSQL was down"
    result = check_recovered(simulator, alert_id, N, bound=SLICE, settings=settings)
    record(request, FaultRow(f"PostgreSQL down {DOWN_S} s", N, **result, bound=SLICE, seconds=clock.seconds(),
                             notes=f"throwaway cluster stopped (immediate) and started again; {during} submits "
                                   f"while down (the slice in flight), sending resumed {resume_s:.1f} s after the "
                                   f"start"))
