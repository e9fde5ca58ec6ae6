"""The README's demo, headless, as the test suite runs it: the whole incident story must hold."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SIRENA = str(Path(sys.executable).parent / "sirena")


@pytest.fixture
def one_demo_at_a_time() -> Iterator[None]:
    """A demo owns its database (sirena_demo, dropped at start) and ports 8000, 2775, 2776, 2780:
    two at once, in two test processes or two checkouts of this machine, break each other. A lock
    file shared by every process of the machine runs them one after another."""
    with open("/tmp/sirena-demo-tests.lock", "w") as lock:  # one machine-wide lock, on purpose
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.mark.demo
def test_headless_demo_tells_the_whole_story_and_every_figure_holds(tmp_path, one_demo_at_a_time):
    env = {**os.environ, "SIRENA_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([SIRENA, "demo", "--headless", "--json", "--contacts", "20000"], capture_output=True,
                          text=True, timeout=900, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "every figure is as expected" in out
    for step in ("Flash evacuation order", "Carrier alpha drops", "a corrected text goes for approval",
                 "audit verify: OK"):
        assert step in out, step
    assert list(tmp_path.glob("demo/timeline-alert-*.json")), "the auditor's export was not written"
    import json

    report = json.loads([line for line in proc.stdout.splitlines() if line.startswith('{"demo"')][-1])
    assert report["ok"] and report["problems"] == []
    alerts = {a["alert"]: a for a in report["alerts"]}
    assert {"flood", "evacuation", "correction"} <= set(alerts)
    assert all(a["recipients"] > 0 and a["not_handed"] == 0 for a in alerts.values())
    assert alerts["correction"]["recipients"] >= alerts["flood"]["recipients"]
    assert all(report["replies"].get(m) for m in ("ack", "no", "help", "free_text")), report["replies"]
    assert report["air"]["air_duplicates"] <= sum(a["possible_duplicates"] for a in alerts.values())
    assert "\r" not in proc.stdout  # no progress bar drawn into a pipe or a log
    assert "failed retrying" in proc.stdout  # the table tells final failures from those being re-sent
    # The table against the database, after the fact: a failure shown as final stays final.
    now = _demo_counts([a["reference"] for a in alerts.values()])
    for a in alerts.values():
        counts = now[a["reference"]]
        assert a["failed"] <= counts.get("failed", 0) + counts.get("expired", 0), (a, counts)
        assert a["delivered"] <= counts.get("delivered", 0), (a, counts)
        assert sum(counts.values()) == a["recipients"], (a, counts)


def _demo_counts(references: list[str]) -> dict[str, dict[str, int]]:
    """Each alert's counts as the console shows them now, read from the demo's own database."""
    from sqlalchemy import create_engine, pool, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import Session

    from alerting.base.settings import Settings
    from alerting.interfaces.cli.demo_cmd import DEMO_DB
    from broadcast.jobs import counts_by_state

    url = make_url(Settings.from_env().database_url).set(database=DEMO_DB)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with Session(engine) as session:
            ids = dict(session.execute(text("SELECT reference, id FROM alerts WHERE reference = ANY(:r)"),
                                       {"r": references}).all())
            return {ref: counts_by_state(session, alert_id) for ref, alert_id in ids.items()}
    finally:
        engine.dispose()


DEMO_PORTS = (8000, 2775, 2776, 2780)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _processes_of(data_dir: Path) -> list[int]:
    """Processes whose environment names this demo's data directory: the demo and its children."""
    marker = f"SIRENA_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.demo
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_to_the_demo_stops_every_process_it_started_and_frees_its_ports(tmp_path, sig, one_demo_at_a_time):
    import signal
    import time

    env = {**os.environ, "SIRENA_DATA_DIR": str(tmp_path)}
    log = (tmp_path / "demo.out").open("wb")
    demo = subprocess.Popen([SIRENA, "demo", "--contacts", "1000", "--minutes", "1"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not all(_listening(port) for port in DEMO_PORTS):  # the console is up: every child runs
            assert demo.poll() is None and time.monotonic() < deadline, (tmp_path / "demo.out").read_text()[-3000:]
            time.sleep(0.5)
        children = [pid for pid in _processes_of(tmp_path) if pid != demo.pid]
        assert len(children) >= 5, children  # simulator, two workers, scheduler, web (gunicorn: more)
        demo.send_signal(getattr(signal, sig))
        assert demo.wait(60) == 0, (tmp_path / "demo.out").read_text()[-3000:]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        log.close()
    out = (tmp_path / "demo.out").read_text()
    assert "stopped everything the demo started" in out
    assert [port for port in DEMO_PORTS if _listening(port)] == []
    gone_by = time.monotonic() + 10  # a gunicorn worker may take a moment after its master
    while _processes_of(tmp_path) and time.monotonic() < gone_by:
        time.sleep(0.2)
    assert _processes_of(tmp_path) == [], "a child of the demo outlived it"
