"""Redis hung for 30 s (SIGSTOP, then SIGCONT) while an alert sends (RELIABILITY.md row 9).

Redis only carries work; PostgreSQL holds the truth. While Redis does not answer, an operator must
still be able to use the console and approve (the approval commits; its enqueue gives up after
SIRENA_REDIS_TIMEOUT_S and the reconciler queues the work later), and a flash alert approved then
must still leave: the gateways' flash lanes take it from PostgreSQL. Measured: the latency of every
console and API request made during the hang, the flash alert's first SMS, and how long the rest
took once Redis answered again.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace

import pytest
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base import db as dbmod
from alerting.base import runtime
from alerting.base.db import utcnow
from alerting.base.models import AlertMode, AlertState, Priority
from alerting.base.runtime import redis_connection
from alerting.directory.accounts import create_operator, create_token
from audit.actor import Actor
from tests.cluster import RedisServer, approved_alert, operators, seed_group, state_of, wait_until
from tests.faults.conftest import N, fault_carriers
from tests.faults.rig import FaultRow, Stopwatch, check_recovered, record

pytestmark = pytest.mark.faults

HUNG_S = 30


def _pending(composer: Actor, group: str, priority: Priority, body: str) -> tuple[int, str]:
    with dbmod.transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": body}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                            priority=priority, target={"groups": [group]}), composer)
        lifecycle.submit(s, alert.id, composer)
        return alert.id, alert.approval_hash


def test_redis_hung_console_and_approvals_answer_and_a_flash_alert_still_leaves(committed_db, simulator,
                                                                                 make_cluster, tmp_path, request):
    from alerting.interfaces.web.app import create_app
    from tests.web.conftest import PASSWORD, Person, sign_in

    redis = RedisServer(tmp_path).start()
    url = redis.url
    stopped = False
    try:
        settings = replace(committed_db, redis_url=url)
        runtime.use_redis(redis_connection(url, timeout_s=settings.redis_timeout_s))
        # 500 TPS per carrier: the routine alert is still sending when Redis stops.
        cluster = make_cluster(settings, fault_carriers(simulator.ports(), binds=2, window=50, tps=500))
        seed_group(N)  # the routine alert: +5699…
        seed_group(50, group="evacuar", prefix="+5697")
        seed_group(200, group="vecinos", prefix="+5698")
        composer, approver = operators("-hung")
        _, second = operators("-hung-2")
        key = settings.secret_key()
        with dbmod.transaction() as s:
            new = create_operator(s, "jefa-hung", ["approver"], key, Actor.system("test"), password=PASSWORD)
            new.operator.totp_enrolled_at = utcnow()
            from alerting.directory.accounts import decrypt_totp

            person = Person(new.operator, PASSWORD, decrypt_totp(new.operator.totp_secret_enc, key))  # type: ignore[arg-type]
            tokens = [create_token(s, who.name, ["read", "alerts:approve"], Actor.system("test"))[1]
                      for who in (approver, second)]
        app = create_app(settings, configure_services=False)
        console = app.test_client()
        sign_in(console, person)  # before the hang: sign-in counts attempts in Redis
        api = app.test_client()
        flash, flash_seen = _pending(composer, "evacuar", Priority.FLASH, "EVACUAR YA: aluvión en quebrada.")
        routine2, routine2_seen = _pending(composer, "vecinos", Priority.NORMAL, "Corte de agua mañana.")
        clock = Stopwatch()
        routine = approved_alert({"es": "Lluvia intensa: evite cruzar cauces. ACK {codigo}"},
                                 priority=Priority.NORMAL)
        cluster.scheduler()
        cluster.worker()
        wait_until(lambda: simulator.submit_count() >= 1000, 60, "the routine alert under way")
        os.kill(redis.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        stopped, hung_at = True, time.monotonic()
        latencies: dict[str, float] = {}

        def timed(name: str, call) -> object:  # type: ignore[no-untyped-def]
            t0 = time.monotonic()
            response = call()
            latencies[name] = round(time.monotonic() - t0, 2)
            return response

        auth = [{"Authorization": f"Bearer {t}"} for t in tokens]
        pages = {"dashboard": "/", "alert page": f"/alerts/{routine}", "live counts": f"/alerts/{routine}/live.json"}
        for name, path in pages.items():
            answer = timed(f"console {name}", lambda p=path: console.get(p))
            assert answer.status_code == 200, f"{name}: {answer.status_code}"
        answer = timed("API read alert", lambda: api.get(f"/api/v1/alerts/{routine}", headers=auth[0]))
        assert answer.status_code == 200
        for n, (alert_id, seen) in enumerate(((flash, flash_seen), (flash, flash_seen), (routine2, routine2_seen))):
            who = auth[n % 2] if alert_id == flash else auth[0]
            answer = timed(f"API approve #{n + 1}", lambda a=alert_id, s=seen, h=who: api.post(
                f"/api/v1/alerts/{a}/approve", json={"seen_hash": s}, headers=h))
            assert answer.status_code == 200, answer.get_data(as_text=True)
        ready = timed("readyz", lambda: api.get("/readyz"))
        assert ready.status_code == 503, "readyz must say Redis is down"
        wait_until(lambda: _first_submit(flash) is not None, 20, "the flash alert's first SMS with Redis hung")
        flash_first_s = _first_submit(flash)
        wait_until(lambda: state_of(flash) is AlertState.COMPLETED, 30, "the flash alert to complete with Redis hung",
                   cluster.log_text)
        assert time.monotonic() - hung_at < HUNG_S, "the flash alert needed Redis back"
        slowest = max(latencies.values())
        assert slowest < 5, f"requests during the hang: {latencies}"
        time.sleep(max(0.0, HUNG_S - (time.monotonic() - hung_at)))
        os.kill(redis.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        stopped = False
        back = time.monotonic()
        cluster.wait_completed(routine, timeout_s=180)
        cluster.wait_completed(routine2, timeout_s=60)
        after_s = time.monotonic() - back
        result = check_recovered(simulator, routine, N, bound=SLICE, settings=settings, prefix="5699")
        for alert_id, n, prefix in ((flash, 50, "5697"), (routine2, 200, "5698")):
            other = check_recovered(simulator, alert_id, n, bound=0, settings=settings, prefix=prefix)
            assert other["duplicates"] == 0
        shown = ", ".join(f"{k} {v:.2f} s" for k, v in latencies.items())
        record(request, FaultRow(f"Redis hung {HUNG_S} s (SIGSTOP)", N, **result, bound=SLICE,
                                 seconds=clock.seconds(),
                                 notes=f"during the hang: {shown}; a flash alert approved then sent its first SMS "
                                       f"{flash_first_s:.2f} s after its approval (flash lane, no Redis); the rest "
                                       f"done {after_s:.1f} s after SIGCONT"))
    finally:
        if stopped:
            os.kill(redis.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        runtime.use_redis(None)
        redis.kill()


SLICE = 200  # 2 carriers × 2 binds × window 50


def _first_submit(alert_id: int) -> float | None:
    """Seconds from the alert's approval to its first submit recorded (None: not yet)."""
    with dbmod.transaction() as s:
        seconds = s.scalar(text("SELECT extract(epoch FROM first_submit_at - approved_at) FROM alerts WHERE id = :a"),
                           {"a": alert_id})
    return None if seconds is None else float(seconds)
