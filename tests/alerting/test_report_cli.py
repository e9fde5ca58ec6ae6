"""`sirena report incident` as a user runs it, on an incident made by the real pipeline: the
figures it prints are the deliveries' and replies' own, and the HTML it writes is accepted by
`sirena audit verify --export` (and refused once an event in it is edited)."""

from __future__ import annotations

import csv
import json

from alerting.base.db import bind_sessions, engine
from tests.conftest import cli_env, last_json_line, run_sirena
from tests.web import incident_world


def test_the_report_command_writes_html_csv_and_json_and_audit_verify_accepts_the_html(
        committed_db, redis_db, gateway, simulator, run_jobs, tmp_path):
    bind_sessions(engine(), join_transaction_mode="conditional_savepoint")
    world = incident_world.build(committed_db, simulator, run_jobs)
    env = cli_env(committed_db, tmp_path)

    html = tmp_path / "informe.html"
    summary = last_json_line(run_sirena(env, "report", "incident", world.reference, "--out", str(html), "--json"))
    assert summary["incident"] == world.reference and summary["format"] == "html"
    assert summary["recipients"] == 12 and summary["delivered"] == 12  # the alert and its correction
    assert summary["helps"] == 1 and summary["helps_open"] == 0 and summary["signed"] is True
    assert summary["verify_command"] == "sirena audit verify --export informe.html"
    page = html.read_text(encoding="utf-8")
    assert world.help_text in page and "llamamos a bomberos" in page

    verified = run_sirena(env, "audit", "verify", "--export", str(html), "--json")
    verdict = last_json_line(verified)
    assert verdict["ok"] is True and verdict["count"] == summary["audit_events"] > 5
    assert verdict["signature_checked"] is True
    tampered = tmp_path / "editado.html"
    tampered.write_text(page.replace('"actor_name": "aprueba"', '"actor_name": "mallory"', 1), encoding="utf-8")
    assert tampered.read_text(encoding="utf-8") != page
    refused = run_sirena(env, "audit", "verify", "--export", str(tampered))
    assert refused.returncode == 1 and "changed" in refused.stderr

    as_json = tmp_path / "informe.json"
    last_json_line(run_sirena(env, "report", "incident", str(world.incident_id), "--format", "json",
                              "--out", str(as_json), "--json"))
    doc = json.loads(as_json.read_text(encoding="utf-8"))
    figures = next(f for f in doc["figures"] if f["alert_id"] == world.alert_id and f["breakdown"] == "all")
    expected = incident_world.expected(world.alert_id)
    for key in ("t50_s", "t90_s", "t99_s", "ack_t50_s", "ack_t90_s"):
        assert (figures[key] is None) == (expected[key] is None), key
        assert figures[key] is None or abs(figures[key] - expected[key]) < 0.002, (key, figures[key], expected[key])
    assert (figures["recipients"], figures["answered"]) == (expected["recipients"], expected["answered"]) == (6, 3)
    zone = next(f for f in doc["figures"] if f["alert_id"] == world.alert_id and f["breakdown"] == "zone")
    assert (zone["key"], zone["recipients"]) == ("Sector 7", 4)
    assert {a["action"] for a in doc["actions"]} >= {"incident.opened", "alert.composed", "alert.approved",
                                                    "reply.help_handled", "alert.correction_fired",
                                                    "incident.report_exported"}
    assert last_json_line(run_sirena(env, "audit", "verify", "--export", str(as_json), "--json"))["ok"] is True

    as_csv = tmp_path / "informe.csv"
    last_json_line(run_sirena(env, "report", "incident", world.reference, "--format", "csv", "--out", str(as_csv),
                              "--json"))
    rows = list(csv.DictReader(as_csv.open(encoding="utf-8")))
    assert {(r["scope"], r["breakdown"]) for r in rows} >= {("incident", "all"), ("alert", "all"),
                                                            ("alert", "carrier"), ("alert", "zone")}
    missing = run_sirena(env, "report", "incident", "I-2026-999999", "--out", str(tmp_path / "x.html"))
    assert missing.returncode == 3 and "does not exist" in missing.stderr
