"""The README's demo, headless, as the test suite runs it: the whole incident story must hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SIRENA = str(Path(sys.executable).parent / "sirena")


@pytest.mark.demo
def test_headless_demo_tells_the_whole_story_and_every_figure_holds(tmp_path):
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
    assert "failed  retrying" in proc.stdout  # the table tells final failures from those being re-sent
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

    from alerting.cli.demo_cmd import DEMO_DB
    from alerting.settings import Settings
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
