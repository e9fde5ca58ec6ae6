"""Every HELP reaches a person: told at once to the supervisors or the on-call group, pinned until
an operator marks it handled (audited), and one timeline line per minute however many arrive."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

import pytest
from sqlalchemy import text

from alerting.alerts import help_desk
from alerting.base import runtime
from alerting.base.db import transaction
from alerting.base.errors import InvalidTransition, Refused
from alerting.base.models import Operator
from audit.timeline import alert_timeline
from tests.broadcast.inbound_rig import add_group, inbound_rig, process_all, seed_alert, send, wait_inbound
from tests.factories import actor_for


def _operator(*roles: str) -> Operator:
    with transaction() as s:
        op = Operator(username=f"op-{uuid4().hex[:8]}", password_hash="x", roles=list(roles))
        s.add(op)
        s.flush()
        s.expunge(op)
    return op


@pytest.fixture
def oncall(committed_db):  # type: ignore[no-untyped-def]
    """This process configured as `sirena worker` is with SIRENA_ONCALL_GROUP=guardia."""
    runtime.use_database(replace(committed_db, oncall_group="guardia"), name="sirena-test-oncall")
    try:
        yield "guardia"
    finally:
        runtime.use_database(committed_db, name="sirena-test-committed")


def test_a_help_on_an_alert_without_supervisors_and_one_that_matched_nothing_reach_the_oncall_group(
        oncall, redis_db, run_jobs):
    add_group("guardia", ["+56979600100", "+56979600101"])
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56979600001"], escalation={"resend": True})  # names no supervisors
        send(gateway, alert_id)
        sim.send_mo("alpha", "56979600001", "4242", "AYUDA estoy atrapado en el techo")
        sim.send_mo("alpha", "56979600999", "4242", "socorro, no estoy en su lista")  # a stranger
        wait_inbound(sim, 3)
        process_all()
        run_jobs(("flash",))
        told = {n: [m["text"] for m in sim.messages(dest=n)] for n in ("56979600100", "56979600101")}
    for texts in told.values():
        assert len(texts) == 2, told
        assert any(t.startswith("SIRENA A-T-") and "AYUDA de Persona 0001 …0001: AYUDA estoy atrapado" in t
                   for t in texts)
        assert any(t.startswith("SIRENA: AYUDA sin alerta de …0999: socorro") for t in texts)


def test_supervisors_named_by_the_alert_are_told_instead_of_the_oncall_group(oncall, redis_db, run_jobs):
    add_group("guardia", ["+56979610100"])
    add_group("jefes", ["+56979610200"])
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56979610001"], escalation={"supervisors": "jefes"})
        send(gateway, alert_id)
        sim.send_mo("alpha", "56979610001", "4242", "ayuda")
        wait_inbound(sim, 2)
        process_all()
        run_jobs(("flash",))
        assert len(sim.messages(dest="56979610200")) == 1
        assert sim.messages(dest="56979610100") == []


def test_a_help_is_pinned_until_marked_handled_audited_and_refused_to_an_auditor(committed_db, redis_db):
    composer, other, auditor = _operator("composer"), _operator("approver"), _operator("auditor")
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56979620001", "+56979620002"])
        send(gateway, alert_id)
        sim.send_mo("alpha", "56979620001", "4242", "AYUDA hay heridos")
        sim.send_mo("alpha", "56979620002", "4242", "ACK")
        wait_inbound(sim, 4)
        process_all()
    with transaction() as s:
        desk = help_desk.open_helps(s, alert_id=alert_id)
        assert desk.total == 1 and help_desk.open_helps(s).total == 1
        [pinned] = desk.helps
        assert (pinned["msisdn"], pinned["text"], pinned["name"]) == ("+56979620001", "AYUDA hay heridos",
                                                                      "Persona 0001")
    with pytest.raises(Refused), transaction() as s:
        help_desk.mark_help_handled(s, pinned["id"], actor_for(auditor))
    with transaction() as s:
        help_desk.mark_help_handled(s, pinned["id"], actor_for(composer), note="llamé, va la brigada 3")
    with pytest.raises(InvalidTransition, match=f"marked handled by {composer.username} at"), transaction() as s:
        help_desk.mark_help_handled(s, pinned["id"], actor_for(other))
    with transaction() as s:
        assert help_desk.open_helps(s).total == 0
        handled = s.execute(text("SELECT handled_at, handled_by_id FROM replies WHERE id = :r"),
                            {"r": pinned["id"]}).one()
        event = s.execute(text("SELECT actor_name, reason, payload FROM audit.events "
                               "WHERE action = 'reply.help_handled'")).one()
    assert handled.handled_at is not None and handled.handled_by_id == composer.id
    assert (event.actor_name, event.reason) == (composer.username, "llamé, va la brigada 3")
    assert event.payload["reply_id"] == pinned["id"] and event.payload["from"] == "…0001"


def test_a_flood_of_helps_is_one_timeline_line_per_minute(committed_db, redis_db):
    numbers = [f"+569796300{i:02d}" for i in range(30)]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers)
        send(gateway, alert_id)
        for number in numbers:
            sim.send_mo("alpha", number.lstrip("+"), "4242", "AYUDA")
        wait_inbound(sim, 2 * len(numbers))
        process_all()
    with transaction() as s:
        timeline = alert_timeline(s, alert_id)
        in_trail = s.execute(text("SELECT count(*) FROM audit.events WHERE action = 'reply.help' "
                                  "AND subject_id = :a"), {"a": str(alert_id)}).scalar_one()
    helps = [line for line in timeline if line.action == "reply.help"]
    assert in_trail == 30  # the trail keeps every one
    assert 1 <= len(helps) <= 2 and sum(line.count for line in helps) == 30  # a minute may turn mid-flood
