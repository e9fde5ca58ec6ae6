"""Escalation at the ACK deadline with the clock in the test's hands (never slept)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.base.db import transaction
from broadcast import escalation
from tests.broadcast.inbound_rig import add_group, inbound_rig, process_all, seed_alert, send, wait_inbound


def sending_at(alert_id: int):  # type: ignore[no-untyped-def]
    with transaction() as s:
        return s.execute(text("SELECT sending_at FROM alerts WHERE id = :a"), {"a": alert_id}).scalar_one()


def escalate(now) -> list[dict]:  # type: ignore[no-untyped-def]
    with transaction() as s:
        return escalation.escalate_due(s, now)


def test_resend_to_non_responders_at_the_deadline_then_supervisors_get_the_list(committed_db, redis_db, run_jobs):
    numbers = [f"+56980000{i:03d}" for i in range(4)]
    add_group("jefes", ["+56980000900"])
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers, ack_deadline_s=600, texts={"es": "Incendio: responda ACK {codigo}"},
                              escalation={"supervisors": "jefes", "supervisors_after_s": 300})
        send(gateway, alert_id)
        sim.send_mo("alpha", numbers[0].lstrip("+"), "4242", "ACK 4821")
        sim.send_mo("alpha", numbers[1].lstrip("+"), "4242", "no")
        wait_inbound(sim, 6)
        process_all()
        t0 = sending_at(alert_id)
        assert escalate(t0 + timedelta(seconds=599)) == []
        resend = escalate(t0 + timedelta(seconds=600))
        assert escalate(t0 + timedelta(seconds=601)) == []  # a stage runs once
        run_jobs()
        got = sim.messages_by_recipient()
        notice_early = escalate(t0 + timedelta(seconds=899))
        notice = escalate(t0 + timedelta(seconds=900))
        run_jobs()
        supervisor = sim.messages(dest="56980000900")
    assert [(r["stage"], r["non_responders"], r["messages"]) for r in resend] == [("resend", 2, 2)]
    assert [len(got[n.lstrip("+")]) for n in numbers] == [1, 1, 2, 2]
    assert got[numbers[3].lstrip("+")][1] == "Incendio: responda ACK 4821"
    assert notice_early == [] and [r["stage"] for r in notice] == ["supervisors"]
    assert len(supervisor) == 1 and "2 sin responder" in supervisor[0]["text"]
    with transaction() as s:
        actions = s.execute(text("SELECT action FROM audit.events WHERE action LIKE 'alert.escalated%' ORDER BY seq"))
        assert actions.scalars().all() == ["alert.escalated.resend", "alert.escalated.supervisors"]


def test_resend_goes_through_another_carrier_when_the_policy_says_so(committed_db, redis_db, run_jobs):
    numbers = [f"+56980100{i:03d}" for i in range(6)]
    with inbound_rig() as (_sim, gateway):
        alert_id = seed_alert(numbers, sender="MULTI-SC", ack_deadline_s=60,
                              escalation={"resend_other_carrier": True})
        send(gateway, alert_id)
        escalate(sending_at(alert_id) + timedelta(seconds=60))
        run_jobs()
    with transaction() as s:
        pairs = s.execute(text("""SELECT d.carrier, f.carrier, f.state FROM followups f
                                  JOIN deliveries d ON d.id = f.delivery_id WHERE f.alert_id = :a"""),
                          {"a": alert_id}).all()
    assert len(pairs) == 6
    assert all(first != second and state == "submitted" for first, second, state in pairs)


def test_receipts_of_follow_ups_are_matched_too(committed_db, redis_db, run_jobs):
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56980200001"], sender="BETA-SC", ack_deadline_s=60)
        send(gateway, alert_id)
        escalate(sending_at(alert_id) + timedelta(seconds=60))
        run_jobs()
        wait_inbound(sim, 2)  # the alert's receipt and the re-send's
        process_all()
    with transaction() as s:
        assert s.execute(text("SELECT state FROM followups")).scalar_one() == "delivered"


def test_verification_campaign_marks_the_silent_unverified_at_the_deadline(committed_db, redis_db):
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56980300001", "+56980300002"], ack_deadline_s=3600,
                              escalation={"verification": True})
        send(gateway, alert_id)
        sim.send_mo("alpha", "56980300001", "4242", "si")
        wait_inbound(sim, 3)
        process_all()
        done = escalate(sending_at(alert_id) + timedelta(hours=1))
    assert [r["stage"] for r in done] == ["verify_close"]
    with transaction() as s:
        states = dict(s.execute(text("SELECT msisdn, verification_state FROM contacts")).all())
    assert states == {"+56980300001": "verified", "+56980300002": "unverified"}


def test_escalate_now_runs_the_stages_before_the_deadline_and_only_once(committed_db, redis_db):
    from tests.factories import actor_for

    with inbound_rig() as (_sim, gateway):
        alert_id = seed_alert(["+56980400001"], ack_deadline_s=3600)
        send(gateway, alert_id)
        with transaction() as s:
            from alerting.base.models import Operator

            operator = s.query(Operator).first()
            first = escalation.escalate_now(s, alert_id, actor_for(operator))
        with transaction() as s:
            again = escalation.escalate_now(s, alert_id, actor_for(operator))
        later = escalate(sending_at(alert_id) + timedelta(hours=2))
    assert [r["stage"] for r in first] == ["resend"] and again == [] and later == []


def test_the_periodic_pass_sweeps_inbound_rows_whose_job_was_lost(committed_db, redis_db, run_jobs):
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56980500001"], ack_deadline_s=60)
        send(gateway, alert_id)
        sim.send_mo("alpha", "56980500001", "4242", "ok")
        wait_inbound(sim, 2)  # stored raw; no hook queued its interpretation (as if Redis lost it)
        with transaction() as s:
            s.execute(text("UPDATE inbound_messages SET received_at = received_at - interval '5 seconds'"))
        result = escalation.periodic_pass(sending_at(alert_id) + timedelta(seconds=30))
        run_jobs()
        assert result["sweep_queued"] and result["escalations"] == []
        with transaction() as s:
            assert s.execute(text("SELECT meaning FROM replies")).scalar_one() == "ack"  # a reply: at once
            # A receipt's own job may be held up to SIRENA_RECEIPTS_MAX_HOLD_S: the sweep waits 5 s more.
            assert s.execute(text("SELECT kind FROM inbound_messages WHERE processed_at IS NULL")).scalars().all() \
                == ["receipt"]
            s.execute(text("UPDATE inbound_messages SET received_at = received_at - interval '31 seconds'"))
        assert escalation.periodic_pass(sending_at(alert_id) + timedelta(seconds=40))["sweep_queued"]
        run_jobs()
    with transaction() as s:
        assert s.execute(text("SELECT count(*) FROM inbound_messages WHERE processed_at IS NULL")).scalar() == 0


def test_follow_ups_of_an_exercise_use_test_carriers_only(committed_db, redis_db, run_jobs):
    with inbound_rig(live=("beta",)) as (sim, gateway):
        drill = seed_alert([f"+56980600{i:03d}" for i in range(4)], sender="MULTI-SC", ack_deadline_s=60,
                           mode="exercise", texts={"es": "Simulacro de evacuacion"})
        send(gateway, drill)
        escalate(sending_at(drill) + timedelta(seconds=60))
        run_jobs()
        beta_texts = [m["text"] for m in sim.messages("beta")]
        got = sim.messages_by_recipient("alpha")["56980600000"]
    assert got == ["SIMULACRO: Simulacro de evacuacion"] * 2  # the re-send keeps the drill's prefix
    with transaction() as s:
        carriers = s.execute(text("SELECT DISTINCT carrier FROM followups WHERE alert_id = :a"),
                             {"a": drill}).scalars().all()
    assert carriers == ["alpha"] and beta_texts == []


def test_a_follow_up_re_sent_after_no_answer_is_counted_as_a_possible_duplicate(committed_db, redis_db, run_jobs):
    import time

    from broadcast import followups

    number = "+56980400001"
    with inbound_rig(receipts=False) as (sim, gateway):
        alert_id = seed_alert([number], sender="ALPHA-SC", ack_deadline_s=60)  # alpha is its only carrier
        send(gateway, alert_id)
        sim.set_fault("alpha", "black_hole", deliver=True, for_s=4)  # takes it onto the air, never answers
        escalate(sending_at(alert_id) + timedelta(seconds=60))
        run_jobs()  # the re-send times out: it may have gone out
        with transaction() as s:
            first = s.execute(text("SELECT state, possible_duplicates FROM followups")).one()
        time.sleep(4.5)
        followups.send_followups()  # the next pass, once alpha answers again
        on_air = len(sim.messages_by_recipient()[number.lstrip("+")])
    with transaction() as s:
        state, counted = s.execute(text("SELECT state, possible_duplicates FROM followups")).one()
    assert tuple(first) == ("queued", 1)
    assert state == "submitted" and on_air == 3  # the alert, then the re-send twice
    assert counted == on_air - 2  # every copy beyond the one meant is counted


def test_a_follow_up_never_accepted_is_given_up_and_its_batch_still_recorded(committed_db, redis_db, monkeypatch):
    from broadcast import followups
    from broadcast.followups import FollowupDraft, create_followups

    monkeypatch.setattr(followups, "MAX_ATTEMPTS", 3)  # the limit (30 deployed), not the path, is shortened
    with inbound_rig() as (sim, gateway):
        sim.set_fault("alpha", "refuse_bind", mode="nack")  # ALPHA-SC's only carrier: down, and stays down
        sim.set_fault("alpha", "drop_at", in_s=0)
        assert sim.wait_for(lambda: not gateway.pool.health()["carriers"]["alpha"]["up"], 10)
        with transaction() as s:
            [old] = create_followups(s, [FollowupDraft("+56980800001", "help_notice", "ALPHA-SC", "AYUDA de …0001")],
                                     created_by="test")
        for _ in range(3):  # each pass: no route, so back to queued for the next one
            followups.send_followups()
        with transaction() as s:
            [new] = create_followups(s, [FollowupDraft("+56980800002", "help_notice", "ALPHA-SC", "AYUDA de …0002")],
                                     created_by="test")
        followups.send_followups()  # one batch: the old one past its limit, the new one on its first try
    with transaction() as s:
        rows = {r.id: r for r in s.execute(text(
            "SELECT id, state, attempts, error_code, error_reason, lease_until FROM followups"))}
    assert (rows[old].state, rows[old].attempts, rows[old].error_code) == ("failed", 4, "gave_up")
    assert rows[old].error_reason == "not accepted after 3 attempts"
    assert (rows[new].state, rows[new].attempts, rows[new].lease_until) == ("queued", 1, None)  # recorded too


def test_an_alert_composed_without_a_deadline_is_chased_at_the_default_one(committed_db, redis_db, run_jobs):
    from alerting.alerts.drafts import AlertDraft
    from alerting.base.models import AlertMode, Priority
    from tests.cluster import operators

    numbers = [f"+56980900{i:03d}" for i in range(3)]
    add_group("vecinos", numbers)
    default_s = int(committed_db.ack_deadline.total_seconds())  # SIRENA_ACK_DEADLINE, 900 unless set
    composer, approver = operators("-ack")
    with inbound_rig() as (sim, _gateway):
        with transaction() as s:
            alert = lifecycle.compose(s, AlertDraft(texts={"es": "Corte de agua: responda ACK {codigo}"},
                                                mode=AlertMode.LIVE, sender_name="ALPHA-SC", priority=Priority.HIGH,
                                                target={"groups": ["vecinos"]}), composer)
            lifecycle.submit(s, alert.id, composer)
        with transaction() as s:
            lifecycle.approve(s, alert.id, approver, seen_hash=alert.approval_hash)
        run_jobs()
        t0 = sending_at(alert.id)
        early = escalate(t0 + timedelta(seconds=default_s - 1))
        resend = escalate(t0 + timedelta(seconds=default_s))
        run_jobs()
        got = sim.messages_by_recipient()
    assert alert.ack_deadline_s == default_s
    assert early == [] and [(r["stage"], r["non_responders"]) for r in resend] == [("resend", 3)]
    assert [len(got[n.lstrip("+")]) for n in numbers] == [2, 2, 2]
