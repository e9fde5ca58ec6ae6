"""Carrier faults the pipeline tests do not cover: a black hole, and binds refused for a while.

- Black hole: alpha takes every submit_sm onto the air but never answers it (nor enquire_link).
  Each unanswered submit times out (`response_timeout_s`), is counted as a possible duplicate and
  re-sent through beta; the breaker opens and traffic leaves alpha. Bound: every bind of alpha can
  lose one window per link it opens during the fault (the first, then one per reconnect after the
  dead-link watchdog), so window × binds × links; the test asserts the duplicates seen on the air
  never exceed what Sirena counted, and reports both.
- Refused binds for a minute, as the issue asks: no tight reconnect loop, traffic on beta, alpha
  used again once it accepts binds. Bound: 0 duplicates (a refused bind never took a message).
"""

from __future__ import annotations

import time
import urllib.request

import pytest
from sqlalchemy import text

from alerting.base import db as dbmod
from tests.cluster import approved_alert, seed_group, wait_until
from tests.conftest import _free_port, carriers_toml, sim_env
from tests.faults.conftest import N, fault_carriers
from tests.faults.rig import FaultRow, Stopwatch, check_recovered, record

pytestmark = pytest.mark.faults

WINDOW, BINDS = 50, 2
REFUSE_S = 60  # the minute


def _alpha_down_in_status(settings) -> bool:  # type: ignore[no-untyped-def]
    from alerting.interfaces.status import system_status

    report = system_status(settings, sim_env())
    alpha = report.carriers.get("alpha")
    return bool(alpha and alpha["binds"] and alpha["up"] == 0
                and any("carrier alpha" in p.what for p in report.problems))


def _binds_opened(simulator, carrier: str) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for p in simulator.pdus(carrier) if p["command"].startswith("bind_"))


def test_black_hole_carrier_bounded_counted_duplicates(committed_db, redis_db, simulator, make_cluster, request):
    # 400 TPS per carrier: the alert lasts long enough for the hole to open mid-send.
    cluster = make_cluster(committed_db, carriers_toml(simulator.ports(), binds=BINDS, window=WINDOW, tps=400))
    seed_group(N)
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Aluvion: suba a zonas altas. ACK {codigo}"})
    cluster.scheduler()
    cluster.worker()
    wait_until(lambda: simulator.submit_count() >= 800, 60, "sending under way")
    links_before = _binds_opened(simulator, "alpha")
    simulator.set_fault("alpha", "black_hole", deliver=True, enquire_link=False, for_s=8)
    cluster.wait_completed(alert_id)
    links = _binds_opened(simulator, "alpha") - links_before + BINDS  # the links open when the hole opened
    unanswered = simulator.status()["carriers"]["alpha"]["counts"]["unanswered"]
    bound = WINDOW * links
    result = check_recovered(simulator, alert_id, N, bound=bound, settings=committed_db)
    assert unanswered > 0, "the black hole never swallowed a submit: the fault was not exercised"
    record(request, FaultRow("carrier black hole (accepts, never answers)", N, **result, bound=bound,
                             seconds=clock.seconds(),
                             notes=f"alpha silent 8 s, submits reach the air; {unanswered} unanswered; "
                                   f"bound = window {WINDOW} × {links} links"))


def test_carrier_refusing_binds_for_a_while_traffic_waits_for_nobody(committed_db, redis_db, simulator,
                                                                      make_cluster, request):
    # 50 TPS per carrier: beta alone would need 100 s, so alpha comes back before the end.
    cluster = make_cluster(committed_db, fault_carriers(simulator.ports(), binds=BINDS, window=WINDOW, tps=50))
    seed_group(N)
    simulator.set_fault("alpha", "refuse_bind", for_s=REFUSE_S)
    refused_at = time.monotonic()
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Corte de ruta 5 por incendio. ACK {codigo}"})
    cluster.scheduler()
    port = _free_port()
    cluster._start("worker", "--name", "gw-refused-binds", "--metrics-port", str(port))
    # While alpha refuses: the worker's metrics and `sirena status` both say so.
    wait_until(lambda: _alpha_down_in_status(committed_db), 20, "sirena status to show alpha down")
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'sirena_bind_up{bind="alpha-1",carrier="alpha"} 0.0' in scrape
    assert 'sirena_bind_up{bind="beta-1",carrier="beta"} 1.0' in scrape
    wait_until(lambda: time.monotonic() - refused_at >= REFUSE_S, REFUSE_S + 5, "the refusal period")
    attempts = _binds_opened(simulator, "alpha")
    cluster.wait_completed(alert_id)
    result = check_recovered(simulator, alert_id, N, bound=0, settings=committed_db)
    alpha, beta = len(simulator.messages("alpha")), len(simulator.messages("beta"))
    assert beta > alpha, "beta should have carried the refusal period"
    assert alpha > 0, "alpha accepted binds again but was never used"
    # Backoff 0.5 → 1 → 2 s (reconnect_max_s) with jitter: about one attempt a second per bind at worst.
    assert attempts <= BINDS * (REFUSE_S + 5), f"{attempts} bind attempts in {REFUSE_S} s: a reconnect storm"
    per_min = attempts * 60 / REFUSE_S
    record(request, FaultRow(f"carrier refusing binds for {REFUSE_S} s", N, **result, bound=0, seconds=clock.seconds(),
                             notes=f"{attempts} bind attempts while refused (~{per_min:.0f}/min for {BINDS} binds); "
                                   f"alpha {alpha:,} / beta {beta:,} messages"))


SLOW_S = (0.5, 2.0)  # RELIABILITY.md row 7: every response 0.5-2 s late


def test_slow_carriers_throughput_follows_the_window_and_nothing_times_out(committed_db, redis_db, simulator,
                                                                          make_cluster, request):
    """Both carriers answer every PDU 0.5-2 s late. The windows (50 outstanding per bind, 4 binds) keep
    throughput at window / latency; the response timeout (10 s) is never reached, so nothing is
    re-sent. Bound: 0 duplicates."""
    cluster = make_cluster(committed_db, fault_carriers(simulator.ports(), binds=BINDS, window=WINDOW))
    seed_group(N)
    for carrier in ("alpha", "beta"):
        simulator.set_fault(carrier, "slow", delay_s=list(SLOW_S))
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Temporal: no salga de su casa. ACK {codigo}"})
    cluster.scheduler()
    cluster.worker()
    cluster.wait_completed(alert_id, timeout_s=240)
    seconds = clock.seconds()
    result = check_recovered(simulator, alert_id, N, bound=0, settings=committed_db)
    with dbmod.transaction() as s:
        sending_s = float(s.scalar(text("SELECT extract(epoch FROM last_submit_at - first_submit_at) FROM alerts "
                                        "WHERE id = :a"), {"a": alert_id}))
    rate = N / sending_s
    ceiling = 2 * BINDS * WINDOW / (sum(SLOW_S) / 2)  # what the windows allow at the mean latency
    assert rate > ceiling / 3, f"{rate:.0f} msg/s with {2 * BINDS} windows of {WINDOW} at ~1.25 s: windows not full"
    record(request, FaultRow(f"slow carriers ({SLOW_S[0]}-{SLOW_S[1]} s per response)", N, **result, bound=0,
                             seconds=seconds,
                             notes=f"{rate:.0f} msg/s against a window ceiling of {ceiling:.0f} msg/s "
                                   f"({2 * BINDS} binds × window {WINDOW} / 1.25 s mean latency)"))
