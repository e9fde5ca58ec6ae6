"""`sirena status`: what is wrong and what to do, from real PostgreSQL and Redis.

The fault suite checks the live side (a worker's published binds, a carrier refusing binds:
tests/faults/test_carrier_faults.py); these check the plain cases without any process running.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from click.testing import CliRunner

from alerting.base.db import utcnow
from alerting.base.models import AlertState
from alerting.interfaces.status import system_status
from tests.conftest import _free_port


def _whats(report) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(f"{p.severity}: {p.what} → {p.do}" for p in report.problems)


def test_nothing_running_is_down_and_says_which_process_to_start(db, settings, redis_db):
    report = system_status(settings, {})
    assert report.level == "down"
    text = _whats(report)
    assert "no gateway worker is running" in text and "sirena worker" in text
    assert "no scheduler is running" in text and "sirena scheduler" in text
    assert report.postgres["ok"] and report.postgres["schema_current"]
    assert report.redis["ok"] and set(report.redis["queue_depth"]) == {"flash", "high", "normal", "low"}


def test_unreachable_redis_is_critical_and_names_the_runbook(db, settings):
    report = system_status(replace(settings, redis_url=f"redis://127.0.0.1:{_free_port()}/0"), {})
    assert report.level == "down"
    redis = next(p for p in report.problems if "Redis is unreachable" in p.what)
    assert redis.severity == "critical" and "runbooks/redis-loss.md" in redis.do


def test_an_approved_alert_that_never_started_is_reported_stuck(db, settings, redis_db, factories):
    alert = factories.AlertFactory(state=AlertState.APPROVED)
    alert.approved_at = utcnow() - timedelta(minutes=5)
    db.flush()
    report = system_status(settings, {})
    assert [a["id"] for a in report.alerts] == [alert.id]
    stuck = next(p for p in report.problems if f"id {alert.id}" in p.what)
    assert "has not started" in stuck.what and "sirena reconcile" in stuck.do


def test_status_json_prints_one_object_and_exits_1_when_down(settings, redis_db):
    from alerting.interfaces.cli import _load

    env = {"SIRENA_DATABASE_URL": settings.database_url, "SIRENA_REDIS_URL": settings.redis_url,
           "SIRENA_SECRET_KEY_FILE": str(settings.secret_key_file)}
    result = CliRunner().invoke(_load(), ["status", "--json"], env=env)
    assert result.exit_code == 1, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["level"] == "down" and data["problems"][0]["severity"] == "critical"


def test_autovacuum_off_is_a_warning_with_the_command_to_turn_it_on(db, settings, redis_db):
    from sqlalchemy import text as sql

    on = db.execute(sql("SHOW autovacuum")).scalar_one() == "on"
    report = system_status(settings, {})
    assert report.postgres["autovacuum"] is on
    warned = [p for p in report.problems if "autovacuum is off" in p.what]
    assert bool(warned) is (not on)  # this machine's PostgreSQL runs with it off; a default one has it on
    if warned:
        assert warned[0].severity == "warning" and "ALTER SYSTEM SET autovacuum = on" in warned[0].do


def test_a_running_worker_is_listed_with_its_binds_and_loop_restarts(worker_process, redis_db):
    from tests.conftest import run_sirena

    cluster, _worker = worker_process()
    out = run_sirena(cluster.env, "status").stdout  # the worker's own environment: database, Redis, carriers
    assert "Gateway workers: 1" in out and "4/4 binds up" in out and "0 loop restart(s)" in out, out
    assert "no gateway worker is running" not in out
    assert "alpha (test): 2/2 binds up" in out and "beta (test): 2/2 binds up" in out
    assert "Audit events waiting for their seal:" in out


def test_a_shell_without_the_carrier_passwords_checks_the_routes_and_says_what_it_could_not_check(
        worker_process, redis_db):
    from tests.conftest import run_sirena

    cluster, _worker = worker_process()
    shell = {k: v for k, v in cluster.env.items() if not (k.startswith("SIM_") and k.endswith("_PASSWORD"))}
    done = run_sirena(shell, "status", "--json")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert not [p for p in data["problems"] if "carriers file" in p["what"] or "PASSWORD" in p["what"]], data
    assert not [p for p in data["problems"] if p["what"].startswith("sender ")]  # routes checked: binds are up
    notes = "\n".join(data["notes"])
    assert "not checked here: SIM_ALPHA_PASSWORD (carrier alpha's password) is not set in this shell" in notes
    assert "SIM_BETA_PASSWORD" in notes
    human = run_sirena(shell, "status").stdout
    assert "[note] not checked here: SIM_ALPHA_PASSWORD" in human


def test_the_oncall_group_is_noted_when_unset_and_a_warning_when_it_has_nobody(db, settings, redis_db, factories):
    unset = system_status(settings, {})
    assert any("no on-call group (SIRENA_ONCALL_GROUP)" in n for n in unset.notes)
    assert not [p for p in unset.problems if "on-call" in p.what]
    missing = system_status(replace(settings, oncall_group="guardia"), {})
    warned = next(p for p in missing.problems if "on-call group guardia" in p.what)
    assert warned.severity == "warning" and "does not exist" in warned.what
    assert "sirena groups create guardia" in warned.do
    factories.GroupFactory(name="guardia")
    empty = system_status(replace(settings, oncall_group="guardia"), {})
    assert "has nobody in it" in next(p.what for p in empty.problems if "on-call group guardia" in p.what)
    assert empty.oncall == {"group": "guardia", "exists": True, "members": 0}
