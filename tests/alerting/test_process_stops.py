"""SIGTERM stops every long-running `sirena` process cleanly (exit 0, within seconds), as systemd and
`docker stop` send it. The worker (tests/broadcast/test_worker_process.py) and `sirena web`
(tests/web/test_server.py) have tests of their own with work in flight."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alerting.base.settings import DEFAULT_CARRIERS_FILE
from tests.cluster import SIRENA, Cluster, wait_until
from tests.conftest import _free_port

EMPTY_FEED = b'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title></feed>'


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_scheduler_stops_after_its_pass(committed_db, redis_db, tmp_path):
    cluster = Cluster(committed_db, DEFAULT_CARRIERS_FILE, {}, tmp_path)
    try:
        scheduler = cluster.scheduler()
        wait_until(lambda: any(json.loads(redis_db.get(k) or "{}").get("leader")  # type: ignore[attr-defined]
                               for k in redis_db.scan_iter(match="sirena:presence:scheduler:*")),  # type: ignore[attr-defined]
                   30, "a scheduler pass", cluster.log_text)
        code, took = Cluster.terminate(scheduler)
    finally:
        cluster.stop()
    assert code == 0 and took < 5, (code, took, cluster.log_text())
    assert "scheduler: stopped on SIGTERM after its pass" in cluster.log_text()


def test_the_simulator_stops_on_sigterm(tmp_path):
    sim = subprocess.Popen([SIRENA, "smsc-sim", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = json.loads(sim.stdout.readline())  # type: ignore[union-attr]
        assert line["smsc_sim"] == "listening"
        code, took = Cluster.terminate(sim)  # type: ignore[arg-type]
    finally:
        if sim.poll() is None:
            sim.kill()
    assert code == 0 and took < 3, (code, took)
    assert not _listening(line["ports"]["default"])


def test_the_smtp_intake_stops_on_sigterm(committed_db, redis_db, tmp_path):
    port = _free_port()
    cluster = Cluster(committed_db, DEFAULT_CARRIERS_FILE, {"SIRENA_INTAKE_SMTP_PORT": str(port)}, tmp_path)
    try:
        intake = cluster._start("intake", "smtp")
        wait_until(lambda: _listening(port), 30, "the SMTP intake to listen", cluster.log_text)
        code, took = Cluster.terminate(intake)
    finally:
        cluster.stop()
    assert code == 0 and took < 5, (code, took, cluster.log_text())


def test_a_cap_feed_poller_stops_after_its_poll(committed_db, redis_db, tmp_path):
    from alerting.base.db import transaction
    from alerting.base.models import Operator

    with transaction() as s:
        s.add(Operator(username="cap-bot", password_hash="x", roles=["composer"]))

    class Feed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.end_headers()
            self.wfile.write(EMPTY_FEED)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cluster = Cluster(committed_db, DEFAULT_CARRIERS_FILE, {}, tmp_path)
    try:
        poller = cluster._start("cap", "poll", f"http://127.0.0.1:{server.server_port}/feed.atom", "--as", "cap-bot",
                                "--every", "60")
        wait_until(lambda: "0 entries" in cluster.log_text(), 30, "the first poll", cluster.log_text)
        code, took = Cluster.terminate(poller)
    finally:
        cluster.stop()
        server.shutdown()
    assert code == 0 and took < 5, (code, took, cluster.log_text())
