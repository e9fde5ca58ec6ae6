"""`sirena schedules create|list|approve|pause|resume|delete`, as the monthly-drill runbook runs them."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.base.db import transaction
from alerting.base.models import Group, GroupKind, Operator, Sender, SenderKind
from tests.conftest import cli_env
from tests.conftest import last_json_line as _json
from tests.conftest import run_sirena as _sirena

DRILL = ["--rule", "0 10 1-7 * mon", "--timezone", "America/Santiago", "--mode", "exercise", "--sender", "SIRENA-SC",
         "--group", "brigadas", "--text-es", "Simulacro mensual: responda ACK {codigo}"]


@pytest.fixture
def env(committed_db, tmp_path):  # type: ignore[no-untyped-def]
    with transaction() as session:
        session.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True))
        session.add(Group(name="brigadas", kind=GroupKind.STATIC, drill_allowed=True, description=""))
        session.add(Group(name="vecinos", kind=GroupKind.STATIC, drill_allowed=False, description=""))
        session.add(Operator(username="compositora", password_hash="x", roles=["composer"]))
        session.add(Operator(username="aprobador", password_hash="x", roles=["approver"]))
    return cli_env(committed_db, tmp_path)




def test_a_monthly_drill_is_created_approved_by_another_operator_paused_resumed_and_deleted(env):
    created = _json(_sirena(env, "schedules", "create", "simulacro mensual", *DRILL, "--policy",
                            "preapproved_exercise", "--as", "compositora", "--json"))
    assert created["template"]["target"] == {"groups": ["brigadas"]} and created["template"]["mode"] == "exercise"
    assert created["next_run_at"].endswith("10:00:00-03:00") or created["next_run_at"].endswith("10:00:00-04:00")
    assert created["approved"] is False and created["active"] is True
    sid = str(created["id"])
    own = _sirena(env, "schedules", "approve", sid, "--as", "compositora")
    assert own.returncode == 5 and "cannot pre-approve" in own.stderr
    assert _json(_sirena(env, "schedules", "approve", sid, "--as", "aprobador", "--json"))["approved"] is True
    assert _json(_sirena(env, "schedules", "pause", sid, "--as", "compositora", "--json"))["active"] is False
    listed = _sirena(env, "schedules", "list")
    assert listed.returncode == 0 and "simulacro mensual" in listed.stdout and "paused" in listed.stdout
    assert _json(_sirena(env, "schedules", "resume", sid, "--as", "compositora", "--json"))["active"] is True
    assert _json(_sirena(env, "schedules", "delete", sid, "--as", "compositora", "--json")) == {
        "id": created["id"], "name": "simulacro mensual", "deleted": True}
    assert _json(_sirena(env, "schedules", "list", "--json")) == {"schedules": []}
    with transaction() as s:
        actions = s.execute(text("SELECT action, outcome FROM audit.events WHERE subject_type = 'schedule' "
                                 "OR action LIKE 'cli.%' ORDER BY id")).all()
    assert [tuple(a) for a in actions] == [
        ("schedule.created", "done"), ("cli.schedules.approve", "refused"), ("schedule.approved", "done"),
        ("schedule.stopped", "done"), ("schedule.resumed", "done"), ("schedule.deleted", "done")]


def test_bad_schedules_are_refused_naming_the_field(env):
    bad_rule = _sirena(env, "schedules", "create", "x", *DRILL, "--rule", "every monday", "--as", "compositora")
    assert bad_rule.returncode == 2 and "rule" in bad_rule.stderr
    public = _sirena(env, "schedules", "create", "x", *[a if a != "brigadas" else "vecinos" for a in DRILL],
                     "--as", "compositora")
    assert public.returncode == 2 and "not marked for drills: vecinos" in public.stderr
    night = [a if a != "0 10 1-7 * mon" else "0 3 1-7 * mon" for a in DRILL]
    refused = _sirena(env, "schedules", "create", "nocturno", *night, "--as", "compositora")
    assert refused.returncode == 2 and "quiet hours" in refused.stderr
    allowed = _json(_sirena(env, "schedules", "create", "nocturno", *night, "--quiet-override",
                            "simulacro nocturno pedido por bomberos", "--as", "compositora", "--json"))
    assert allowed["quiet_override_reason"] == "simulacro nocturno pedido por bomberos"
    nobody = _sirena(env, "schedules", "pause", "999", "--as", "compositora")
    assert nobody.returncode == 3 and "schedule 999" in nobody.stderr
