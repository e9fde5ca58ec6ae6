"""`sirena web` as deployed: gunicorn with threaded workers, signed in over real HTTP, stopped by SIGTERM."""

from __future__ import annotations

import threading
import time

import pyotp
import requests

from alerting.base.db import transaction, utcnow
from alerting.base.settings import DEFAULT_CARRIERS_FILE
from alerting.directory.accounts import create_operator, decrypt_totp
from audit.actor import Actor
from tests.broadcast.inbound_rig import seed_alert
from tests.cluster import Cluster, unsealed_events, wait_until
from tests.conftest import _free_port
from tests.web.conftest import CSRF, PASSWORD


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _operator(settings, name: str, roles: list[str]) -> str:  # type: ignore[no-untyped-def]
    """A signed-up operator with TOTP enrolled, committed; returns the TOTP seed."""
    key = settings.secret_key()
    with transaction() as db:
        new = create_operator(db, name, roles, key, Actor.system("server-test"), password=PASSWORD)
        new.operator.totp_enrolled_at = utcnow()
        return decrypt_totp(new.operator.totp_secret_enc, key)  # type: ignore[arg-type]


def _sign_in(base: str, name: str, seed: str) -> requests.Session:
    http = requests.Session()
    token = CSRF.search(http.get(f"{base}/login", timeout=5).text).group(1)  # type: ignore[union-attr]
    r = http.post(f"{base}/login", data={"csrf_token": token, "username": name, "password": PASSWORD},
                  allow_redirects=False, timeout=5)
    assert r.status_code == 303, r.text[:300]
    token = CSRF.search(http.get(f"{base}/login/code", timeout=5).text).group(1)  # type: ignore[union-attr]
    r = http.post(f"{base}/login/code", data={"csrf_token": token, "code": pyotp.TOTP(seed).now()},
                  allow_redirects=False, timeout=5)
    assert r.status_code == 303, r.text[:300]
    return http


def test_sirena_web_serves_under_gunicorn_and_a_sigterm_ends_long_polls_and_exits(committed_db, redis_db, tmp_path):
    cluster = Cluster(committed_db, DEFAULT_CARRIERS_FILE, {}, tmp_path)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        server = cluster.web(port)
        wait_until(lambda: _answers(f"{base}/healthz"), 30, "sirena web to answer", cluster.log_text)
        assert requests.get(f"{base}/healthz", timeout=5).headers["Server"].startswith("gunicorn")
        alert_id = seed_alert(["+56981000001"])
        http = _sign_in(base, "vigia", _operator(committed_db, "vigia", ["approver"]))
        dashboard = http.get(f"{base}/", timeout=5)
        assert dashboard.status_code == 200 and "No hay ninguna pasarela en marcha" in dashboard.text
        # No scheduler runs: the web app itself links its sign-in events into the chain within seconds.
        wait_until(lambda: unsealed_events() == 0, 5, "the web app to seal the audit trail", cluster.log_text)

        # Open alert pages hold a thread each for their long poll; a plain request still answers at once.
        polls: list[tuple[int, float]] = []

        def long_poll() -> None:
            started = time.monotonic()
            r = http.get(f"{base}/alerts/{alert_id}/live.json?wait=20", timeout=30)
            polls.append((r.status_code, time.monotonic() - started))

        threads = [threading.Thread(target=long_poll) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        started = time.monotonic()
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0

        code, took = Cluster.terminate(server)
        for thread in threads:
            thread.join(30)
    finally:
        cluster.stop()
    assert code == 0, cluster.log_text()
    assert took < 10, f"sirena web took {took:.1f} s to stop (its graceful timeout is 10 s)"
    assert [status for status, _ in polls] == [200] * 6
    assert max(seconds for _, seconds in polls) < 6, polls  # answered at the stop, not after their 20 s
    assert "Shutting down: Master" in cluster.log_text()  # gunicorn went through its graceful stop
