"""Several numbers per contact, end to end: an alert approved by two operators, fanned out, sent
through the in-process gateway to the simulator, receipts and replies back over SMPP. A handset
the simulator cannot reach fails for good (a final receipt, or a refused submit_sm); the contact
then gets the alert on its next number, and is counted once."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from alerting.alerts import lifecycle, prearmed
from alerting.alerts.drafts import AlertDraft
from alerting.base.db import transaction
from alerting.base.models import Alert, AlertMode, AlertState, Operator, Priority
from alerting.directory import contact_records
from broadcast import jobs, live, replies
from tests.cluster import approved_alert, operators, seed_group, state_of
from tests.factories import actor_for

FIRST, SECOND, THIRD = "+56976100001", "+56976100002", "+56976100003"
OTHER = "+56976100009"


def add_numbers(numbers: dict[str, list[str]], *, group: str = "brigadas") -> None:
    """Contacts (first number → more numbers) added through the directory service, in `group`."""
    with transaction() as s:
        admin = Operator(username=f"admin-{time.monotonic_ns()}", password_hash="x", roles=["admin"])
        s.add(admin)
        s.flush()
        actor = actor_for(admin)
        s.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) VALUES (:g, 'static', '', false) "
                       "ON CONFLICT (name) DO NOTHING"), {"g": group})
        for first, more in numbers.items():
            contact_records.create_contact(s, first, name=f"Persona {first[-4:]}", more_numbers=more,
                                           groups=[group], region="CL", actor=actor)


def unreachable(simulator: Any, numbers: list[str], **params: Any) -> None:
    for carrier in ("alpha", "beta"):
        simulator.set_fault(carrier, "unreachable", numbers=numbers, **params)


def receipts_in(simulator: Any, n: int) -> None:
    """Wait for `n` receipts stored, then interpret them (the sweep the scheduler runs)."""
    def stored() -> int:
        with transaction() as s:
            return int(s.execute(text("SELECT count(*) FROM inbound_messages WHERE kind = 'receipt'")).scalar_one())

    assert simulator.wait_for(lambda: stored() >= n, 10), f"{stored()} receipts, expected {n}"
    replies.sweep(min_age_s=0)


def rows(alert_id: int) -> list[dict[str, Any]]:
    with transaction() as s:
        return [dict(r) for r in s.execute(text(
            "SELECT id, msisdn, state, number_position, previous_delivery_id, error_code, error_reason, contact_id "
            "FROM deliveries WHERE alert_id = :a ORDER BY id"), {"a": alert_id}).mappings()]


def people(alert_id: int) -> tuple[dict[str, int], dict[str, Any]]:
    with transaction() as s:
        counts = jobs.counts_by_state(s, alert_id)
        return counts, live.progress(counts, live.alert_reply_counts(s, alert_id))


def test_a_contact_whose_first_number_fails_for_good_gets_the_alert_on_the_second(gateway, simulator, run_jobs):
    add_numbers({FIRST: [SECOND], OTHER: ["+56976100019"]})
    unreachable(simulator, [FIRST])
    alert_id = approved_alert({"es": "Evacuar sector norte. Responda ACK {codigo}."})
    run_jobs()
    assert state_of(alert_id) is AlertState.COMPLETED  # everything handed over; the receipts come after
    receipts_in(simulator, 2)  # the first number's UNDELIV: the second is queued, and its batch
    assert people(alert_id)[0] == {"delivered": 1, "queued": 1}  # one person waiting again, none failed
    run_jobs()  # the completed alert's new delivery is sent all the same
    receipts_in(simulator, 3)
    got = simulator.messages_by_recipient()
    assert sorted(got) == sorted(n.lstrip("+") for n in (FIRST, SECOND, OTHER))  # never OTHER's second
    counts, progress = people(alert_id)
    assert counts == {"delivered": 2}
    assert (progress["recipients"], progress["delivered"], progress["failed"]) == (2, 2, 0)
    first, other, second = rows(alert_id)
    assert (first["msisdn"], first["state"], first["number_position"], first["error_code"]) == \
        (FIRST, "next_number", None, "001")
    assert "UNDELIV" in first["error_reason"]
    assert (second["msisdn"], second["state"], second["number_position"], second["previous_delivery_id"]) == \
        (SECOND, "delivered", 2, first["id"])
    assert second["contact_id"] == first["contact_id"] and other["state"] == "delivered"
    assert state_of(alert_id) is AlertState.COMPLETED
    with transaction() as s:  # the carrier's share still shows the failure on the first number
        by_carrier = jobs.counts_by_carrier(s, alert_id)
    assert sum(states.get("next_number", 0) for states in by_carrier.values()) == 1


def test_refused_submits_move_on_number_by_number_to_the_third(gateway, simulator, run_jobs):
    add_numbers({FIRST: [SECOND, THIRD]})
    unreachable(simulator, [FIRST, SECOND], refuse=True)  # submit_sm refused for good (0x0B)
    alert_id = approved_alert({"es": "Corte de ruta 5."})
    run_jobs()  # each refusal queues the next number in the same pass, and its batch
    receipts_in(simulator, 1)
    states = [(r["msisdn"], r["state"], r["number_position"], r["error_code"]) for r in rows(alert_id)]
    assert states == [(FIRST, "next_number", None, "0x0B"), (SECOND, "next_number", 2, "0x0B"),
                      (THIRD, "delivered", 3, None)]
    assert people(alert_id)[0] == {"delivered": 1}
    assert state_of(alert_id) is AlertState.COMPLETED


def test_the_last_number_failing_is_final_and_counts_as_one_failed_person(gateway, simulator, run_jobs):
    add_numbers({FIRST: [SECOND]})
    unreachable(simulator, [FIRST, SECOND])
    alert_id = approved_alert({"es": "Alerta de tsunami."})
    run_jobs()
    receipts_in(simulator, 1)
    run_jobs()
    receipts_in(simulator, 2)
    replies.sweep(min_age_s=0)  # a second pass moves nothing twice
    counts, progress = people(alert_id)
    assert counts.get("failed", 0) + counts.get("retrying", 0) == 1  # the carrier retry of the last number
    assert progress["recipients"] == 1
    assert [(r["msisdn"], r["state"]) for r in rows(alert_id)] == [(FIRST, "next_number"), (SECOND, "failed")]


def test_an_opted_out_contact_is_never_tried_on_another_number(gateway, simulator, run_jobs):
    add_numbers({FIRST: [SECOND]}, group="brigadas")
    with transaction() as s:
        s.execute(text("UPDATE contacts SET opted_out_at = now(), opted_out_reason = 'BAJA' WHERE msisdn = :m"),
                  {"m": FIRST})
    unreachable(simulator, [FIRST])
    composer, approver = operators("-optout")
    with transaction() as s:  # reaches the opted-out contact on purpose (include_opted_out)
        alert = lifecycle.compose(s, AlertDraft(texts={"es": "Aviso a todos"}, mode=AlertMode.LIVE,
                                                sender_name="SIRENA-SC", priority=Priority.HIGH,
                                                target={"groups": ["brigadas"], "include_opted_out": True}),
                                  composer)
        lifecycle.submit(s, alert.id, composer)
    with transaction() as s:
        lifecycle.approve(s, alert.id, approver, seen_hash=alert.approval_hash)
    run_jobs()
    receipts_in(simulator, 1)
    run_jobs()
    assert [(r["msisdn"], r["state"]) for r in rows(alert.id)] == [(FIRST, "failed")]
    assert SECOND.lstrip("+") not in simulator.messages_by_recipient()


def test_fan_out_still_writes_one_delivery_per_contact_to_its_first_number(gateway, simulator, run_jobs):
    seed_group(30)
    add_numbers({FIRST: [SECOND, THIRD]})
    alert_id = approved_alert({"es": "Simulacro de evacuación."})
    run_jobs()
    written = rows(alert_id)
    assert len(written) == 31 and all(r["number_position"] is None for r in written)
    assert SECOND.lstrip("+") not in simulator.messages_by_recipient()


def _more(first: str, more: list[str]) -> None:
    with transaction() as s:
        s.execute(text("INSERT INTO contact_numbers (contact_id, position, msisdn) SELECT c.id, 1 + o.i, o.n "
                       "FROM contacts c, unnest(CAST(:more AS varchar[])) WITH ORDINALITY o(n, i) "
                       "WHERE c.msisdn = :first"), {"first": first, "more": more})


def _reply(sender: str) -> dict[str, Any]:
    with transaction() as s:
        return dict(s.execute(text("SELECT r.*, c.msisdn AS contact_first FROM replies r "
                                   "LEFT JOIN contacts c ON c.id = r.contact_id WHERE r.msisdn = :m "
                                   "ORDER BY r.id DESC LIMIT 1"), {"m": sender}).mappings().one())


def test_a_reply_from_any_of_a_contacts_numbers_answers_its_delivery_and_stop_opts_it_out(committed_db, redis_db):
    from tests.broadcast.inbound_rig import inbound_rig, process_all, seed_alert, send, wait_inbound

    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert([FIRST, OTHER])
        _more(FIRST, [SECOND, THIRD])
        send(gateway, alert_id)
        wait_inbound(sim, 2)  # the receipts
        sim.send_mo("alpha", SECOND.lstrip("+"), "4242", "ACK 4821")  # from the phone the SMS did not go to
        wait_inbound(sim, 3)
        process_all()
        ack = _reply(SECOND)
        sim.send_mo("alpha", THIRD.lstrip("+"), "4242", "BAJA")
        wait_inbound(sim, 4)
        process_all()
        stop = _reply(THIRD)
        with transaction() as s:
            first_delivery = s.execute(text("SELECT id FROM deliveries WHERE alert_id = :a AND msisdn = :m"),
                                       {"a": alert_id, "m": FIRST}).scalar_one()
            opted_out = s.execute(text("SELECT opted_out_at IS NOT NULL FROM contacts WHERE msisdn = :m"),
                                  {"m": FIRST}).scalar_one()
            confirmed_to = s.execute(text("SELECT msisdn FROM followups WHERE kind = 'optout_confirm'")).scalars().all()
            counts = live.alert_reply_counts(s, alert_id)
    assert (ack["meaning"], ack["alert_id"], ack["delivery_id"], ack["contact_first"]) == \
        ("ack", alert_id, first_delivery, FIRST)
    assert counts["ack"] == 1 and counts["responders"] == 1
    assert (stop["meaning"], stop["contact_first"]) == ("stop", FIRST) and opted_out
    assert confirmed_to == [THIRD]  # the confirmation goes to the phone that wrote


def test_a_reply_from_the_first_number_answers_the_delivery_to_the_second(gateway, simulator, run_jobs):
    add_numbers({FIRST: [SECOND]})
    unreachable(simulator, [FIRST], refuse=True)
    alert_id = approved_alert({"es": "Incendio forestal. Responda ACK {codigo}."})
    run_jobs()
    simulator.send_mo("alpha", FIRST.lstrip("+"), "4242", "AYUDA")  # the first phone is back, its owner writes
    with transaction() as s:
        assert simulator.wait_for(lambda: s.execute(text("SELECT count(*) FROM inbound_messages WHERE kind = 'mo'"))
                                  .scalar_one() >= 1, 10)
    replies.sweep(min_age_s=0)
    _, second = rows(alert_id)
    help_ = _reply(FIRST)
    assert (help_["meaning"], help_["delivery_id"]) == ("help", second["id"])
    with transaction() as s:
        silent = live.non_responders(s, alert_id)
    assert silent == []  # the person answered: the delivery they are counted by has the answer


def test_a_next_number_whose_job_redis_lost_is_sent_after_the_reconciler_queues_it(gateway, simulator, run_jobs,
                                                                                 redis_db):
    from broadcast import reconciler

    add_numbers({FIRST: [SECOND]})
    unreachable(simulator, [FIRST])
    alert_id = approved_alert({"es": "Aviso de crecida."})
    run_jobs()
    receipts_in(simulator, 1)
    redis_db.flushdb()  # the second number's send batch is lost; the alert is completed
    with transaction() as s:  # past the reconciler's grace for rows on their way to Redis
        s.execute(text("UPDATE deliveries SET updated_at = now() - interval '1 minute' WHERE state = 'queued'"))
    report = reconciler.reconcile(redis_db)
    assert report.batches_queued == {alert_id: 1}
    run_jobs()
    receipts_in(simulator, 2)
    assert people(alert_id)[0] == {"delivered": 1} and state_of(alert_id) is AlertState.COMPLETED


def test_a_correction_goes_to_the_number_that_reached_the_contact(gateway, simulator, run_jobs):
    from alerting.alerts import corrections

    add_numbers({FIRST: [SECOND]})
    unreachable(simulator, [FIRST], refuse=True)
    alert_id = approved_alert({"es": "Evacuar sector norte."})
    run_jobs()
    _, approver = operators("-fix")
    with transaction() as s:  # the pre-approved correction, fired by one approver
        prearmed.arm_on_approval(s, s.get(Alert, alert_id), approver)
        correction = corrections.fire_correction(s, alert_id, approver)
    run_jobs()
    assert [(r["msisdn"], r["number_position"]) for r in rows(correction.id)] == [(SECOND, 2)]


def test_a_real_worker_takes_a_contact_to_its_second_number_on_its_own(worker_process, redis_db, simulator):
    """`sirena worker` as deployed, nothing run by hand: fan-out, submit, the receipt interpreted,
    the second number queued and sent, its receipt: one person delivered, both numbers shown."""
    from tests.cluster import wait_until

    cluster, _ = worker_process()
    seed_group(10)
    add_numbers({FIRST: [SECOND]})
    unreachable(simulator, [FIRST])
    alert_id = approved_alert({"es": "Prueba de sirena: responda ACK {codigo}"})

    def done() -> bool:
        return people(alert_id)[0] == {"delivered": 11}

    wait_until(done, 30, "the second number to be delivered", cluster.log_text)
    first, second = (r for r in rows(alert_id) if r["msisdn"] in (FIRST, SECOND))
    assert (first["state"], second["state"], second["previous_delivery_id"]) == ("next_number", "delivered",
                                                                                  first["id"])
    assert people(alert_id)[1]["recipients"] == 11
