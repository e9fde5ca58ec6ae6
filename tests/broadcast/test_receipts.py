"""Delivery receipts over real SMPP: both forms, every id spelling, early, duplicated, multipart."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.base.db import transaction
from broadcast import local_gateway, receipts
from tests.broadcast.inbound_rig import deliveries, inbound_rig, process_all, seed_alert, send, wait_inbound


def test_receipt_text_and_tlvs_parse_to_the_same_facts():
    body = "id:0A1B2C sub:001 dlvrd:000 submit date:2611271500 done date:2611271502 stat:UNDELIV err:034 text:Hola"
    from_text = receipts.parse_receipt({}, body)
    from_tlvs = receipts.parse_receipt({"receipted_message_id": "0A1B2C", "message_state": 5,
                                        "network_error_code": "030022"}, "")
    assert (from_text.raw_id, from_text.stat, from_text.error_code) == ("0A1B2C", "UNDELIV", "034")
    assert (from_tlvs.raw_id, from_tlvs.stat, from_tlvs.error_code) == ("0A1B2C", "UNDELIV", "034")
    assert from_text.done_at.isoformat() == "2026-11-27T15:02:00+00:00"
    assert receipts.parse_receipt({}, "no id here stat:DELIVRD") is None


@pytest.mark.parametrize(("style", "submit_id", "receipt_id"), [
    ("hex", "0a1b2c3d4e", "0A1B2C3D4E"), ("hex", "a1b2c3d4e", "00000000000a1b2c3d4e"),
    ("decimal", "1234567890", "00001234567890"), ("hex:decimal", "1f", "31"), ("decimal:hex", "31", "1F"),
    ("string", "AbC-42", "abc-42"),
])
def test_every_id_style_gives_submit_and_receipt_the_same_key(style, submit_id, receipt_id):
    assert receipts.receipt_key(style, receipt_id) == receipts.submit_key(submit_id)


def test_an_unknown_style_is_refused_naming_the_key():
    from alerting.base.errors import ConfigError

    with pytest.raises(ConfigError, match="receipt_id_style"):
        receipts.check_style("octal", "alpha")


@pytest.mark.parametrize("sender", ["ALPHA-SC", "BETA-SC", "GAMMA-SC"])
def test_receipts_in_every_form_and_spelling_mark_deliveries_delivered(committed_db, redis_db, sender):
    numbers = [f"+56970{'ABG'.index(sender[0])}{i:05d}" for i in range(30)]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers, sender=sender)
        assert send(gateway, alert_id)["submitted"] == 30
        wait_inbound(sim, 30)
        process_all()
    got = deliveries(alert_id)
    assert {d["state"] for d in got.values()} == {"delivered"}
    assert all(d["parts_delivered"] == 1 and d["delivered_at"] is not None for d in got.values())
    with transaction() as s:
        assert receipts.pending_count(s) == 0
        counts = dict(s.execute(text("SELECT state, n FROM alert_counters WHERE alert_id = :a AND n <> 0"),
                                {"a": alert_id}).all())
    assert counts == {"delivered": 30}


def test_a_receipt_before_its_id_waits_and_matches_when_the_id_lands(committed_db, redis_db):
    numbers = ["+56971000001", "+56971000002"]
    with inbound_rig(receipts=False) as (sim, gateway):
        alert_id = seed_alert(numbers, sender="GAMMA-SC")
        send(gateway, alert_id)
        ids = {n: d["message_ids"] for n, d in deliveries(alert_id).items()}
        with transaction() as s:  # as it is between submit_sm_resp and the gateway's record statement
            s.execute(text("UPDATE deliveries SET message_ids = NULL, state = 'submitting' WHERE alert_id = :a"),
                      {"a": alert_id})
            s.execute(text("DELETE FROM message_parts"))
        for message_ids in ids.values():
            sim.send_receipt("gamma", message_ids[0], "DELIVRD")
        wait_inbound(sim, 2)
        process_all()
        with transaction() as s:
            assert receipts.pending_count(s) == 2
        assert {d["state"] for d in deliveries(alert_id).values()} == {"submitting"}
        with transaction() as s:  # the ids land, recorded as the gateway does
            for number, message_ids in ids.items():
                s.execute(text("UPDATE deliveries SET message_ids = :m, state = 'submitted', submitted_at = now() "
                               "WHERE msisdn = :n"), {"m": message_ids, "n": number})
        assert process_all()["receipts_matched"] == 2
    with transaction() as s:
        assert receipts.pending_count(s) == 0
    assert {d["state"] for d in deliveries(alert_id).values()} == {"delivered"}


def test_receipts_sent_before_submit_sm_resp_end_up_matched(committed_db, redis_db):
    with inbound_rig() as (sim, gateway):
        sim.set_fault("alpha", "dlr_before_resp")
        alert_id = seed_alert([f"+5697100{i:04d}" for i in range(20)])
        send(gateway, alert_id)
        wait_inbound(sim, 20)
        process_all()
    assert {d["state"] for d in deliveries(alert_id).values()} == {"delivered"}


def test_duplicate_and_late_receipts_change_nothing(committed_db, redis_db):
    with inbound_rig() as (sim, gateway):
        sim.set_fault("alpha", "duplicate_receipts", share=1.0)
        alert_id = seed_alert([f"+5697200{i:04d}" for i in range(10)])
        send(gateway, alert_id)
        wait_inbound(sim, 20)
        process_all()
        first = deliveries(alert_id)
        ids = [d["message_ids"][0] for d in first.values()]
        sim.clear_faults("alpha")
        for message_id in ids[:5]:  # a final failure after the final success: kept, but never wins
            sim.send_receipt("alpha", message_id, "UNDELIV", 1)
        for message_id in ids[5:]:  # an intermediate state after the final one
            sim.send_receipt("alpha", message_id, "ENROUTE")
        wait_inbound(sim, 30)
        process_all()
    after = deliveries(alert_id)
    assert {d["state"] for d in after.values()} == {"delivered"}
    assert [d["delivered_at"] for d in after.values()] == [d["delivered_at"] for d in first.values()]
    with transaction() as s:
        stored = s.execute(text("SELECT count(*), count(DISTINCT delivery_id) FROM receipts")).one()
    assert tuple(stored) == (30, 10)  # every receipt kept as evidence


def test_final_failures_record_state_and_the_carriers_error_code(committed_db, redis_db):
    with inbound_rig(receipts=False) as (sim, gateway):
        alert_id = seed_alert(["+56973000001", "+56973000002", "+56973000003"], sender="BETA-SC")
        send(gateway, alert_id)
        sent = deliveries(alert_id)
        fates = {"+56973000001": ("UNDELIV", 13), "+56973000002": ("EXPIRED", 0), "+56973000003": ("REJECTD", 2)}
        for number, (stat, err) in fates.items():
            sim.send_receipt("beta", sent[number]["message_ids"][0], "ACCEPTD")
            sim.send_receipt("beta", sent[number]["message_ids"][0], stat, err)
        wait_inbound(sim, 6)
        process_all()
    got = deliveries(alert_id)
    assert got["+56973000001"]["state"] == "failed" and got["+56973000001"]["error_code"] == "013"
    assert got["+56973000002"]["state"] == "expired"
    assert got["+56973000003"]["state"] == "failed" and "REJECTD" in got["+56973000003"]["error_reason"]


def test_the_first_final_receipt_decides_a_message_even_within_one_batch(committed_db, redis_db):
    """Two final receipts for one message in the same pass: the first to arrive decides, the other
    is kept as evidence and changes nothing (the one-part fast path and the full recompute agree)."""
    numbers = ["+56973000011", "+56973000012"]
    with inbound_rig(receipts=False) as (sim, gateway):
        alert_id = seed_alert(numbers, sender="BETA-SC")
        send(gateway, alert_id)
        sent = deliveries(alert_id)
        failed_first, delivered_first = (sent[n]["message_ids"][0] for n in numbers)
        sim.send_receipt("beta", failed_first, "UNDELIV", 13)
        sim.send_receipt("beta", failed_first, "DELIVRD")
        sim.send_receipt("beta", delivered_first, "DELIVRD")
        sim.send_receipt("beta", delivered_first, "EXPIRED")
        wait_inbound(sim, 4)
        assert process_all()["receipts"] == 4  # one pass
    got = deliveries(alert_id)
    failed, delivered = got[numbers[0]], got[numbers[1]]
    assert (failed["state"], failed["error_code"], failed["parts_delivered"]) == ("failed", "013", 0)
    assert failed["failed_at"] is not None and failed["delivered_at"] is None
    assert (delivered["state"], delivered["parts_delivered"], delivered["error_code"]) == ("delivered", 1, None)
    assert delivered["delivered_at"] is not None and delivered["failed_at"] is None
    with transaction() as s:
        counts = dict(s.execute(text("SELECT state, n FROM alert_counters WHERE alert_id = :a AND n <> 0"),
                                {"a": alert_id}).all())
        kept = s.execute(text("SELECT count(*) FROM receipts WHERE delivery_id IS NOT NULL")).scalar_one()
    assert counts == {"failed": 1, "delivered": 1} and kept == 4


def test_multipart_is_delivered_only_when_every_part_is(committed_db, redis_db):
    long_text = "Evacuación inmediata del sector ribereño por crecida del río. " * 3  # UCS-2: 3+ parts
    with inbound_rig(receipts=False) as (sim, gateway):
        alert_id = seed_alert(["+56974000001"], texts={"es": long_text})
        send(gateway, alert_id)
        ids = deliveries(alert_id)["+56974000001"]["message_ids"]
        assert len(ids) >= 3
        for message_id in ids[:-1]:
            sim.send_receipt("alpha", message_id, "DELIVRD")
        wait_inbound(sim, len(ids) - 1)
        process_all()
        partial = deliveries(alert_id)["+56974000001"]
        sim.send_receipt("alpha", ids[-1], "DELIVRD")
        wait_inbound(sim, len(ids))
        process_all()
    assert (partial["state"], partial["parts_delivered"]) == ("submitted", len(ids) - 1)
    done = deliveries(alert_id)["+56974000001"]
    assert (done["state"], done["parts_delivered"]) == ("delivered", len(ids))


def test_a_receipt_for_an_unknown_id_is_kept_and_counted(committed_db, redis_db):
    import json

    from click.testing import CliRunner
    from prometheus_client import CollectorRegistry, generate_latest

    from alerting.interfaces.cli import _load
    from broadcast import metrics

    with inbound_rig() as (sim, _gateway):
        sim.send_receipt("alpha", "deadbeef99", "DELIVRD")
        wait_inbound(sim, 1)
        process_all()
    with transaction() as s:
        assert receipts.pending_count(s) == 1
        assert s.execute(text("SELECT outcome FROM inbound_messages")).scalar_one() == "receipt"
    # Counted where an operator looks: `sirena status` (text and --json) and the workers' metrics.
    env = {"SIRENA_DATABASE_URL": committed_db.database_url, "SIRENA_REDIS_URL": committed_db.redis_url,
           "SIRENA_SECRET_KEY_FILE": str(committed_db.secret_key_file)}
    shown = CliRunner().invoke(_load(), ["status"], env=env)
    assert "Receipts kept unmatched (no message of ours has their id): 1" in shown.output, shown.output
    as_json = CliRunner().invoke(_load(), ["status", "--json"], env=env)
    assert json.loads(as_json.output.strip().splitlines()[-1])["inbound"] == {
        "unmatched_receipts": 1, "replies_unread": 0, "oldest_unread_reply_s": None, "receipts_unread": 0,
        "oldest_unread_receipt_s": None}
    registry = CollectorRegistry()
    registry.register(metrics.SystemCollector(redis_db))
    assert "sirena_receipts_unmatched 1.0" in generate_latest(registry).decode()


def test_carrier_health_flags_the_carrier_whose_receipts_fail(committed_db, redis_db):
    from datetime import timedelta

    with inbound_rig(receipts=False) as (sim, gateway):
        alpha = seed_alert([f"+5697500{i:04d}" for i in range(40)], sender="ALPHA-SC")
        beta = seed_alert([f"+5697600{i:04d}" for i in range(40)], sender="BETA-SC")
        send(gateway, alpha), send(gateway, beta)
        for i, d in enumerate(deliveries(alpha).values()):
            sim.send_receipt("alpha", d["message_ids"][0], "UNDELIV" if i % 2 else "DELIVRD", 1)
        for d in deliveries(beta).values():
            sim.send_receipt("beta", d["message_ids"][0], "DELIVRD")
        wait_inbound(sim, 80)
        process_all()
    with transaction() as s:
        health = receipts.carrier_health_from_receipts(s, timedelta(minutes=15))
    assert health["alpha"].degraded and "50%" in health["alpha"].reason
    assert not health["beta"].degraded and health["beta"].failure_rate == 0
    # The scheduler's verdict: stored for the gateways, audited when it changes, and it wears off
    # once the window holds no more evidence against the carrier.
    from datetime import UTC, datetime

    from broadcast.carrier_health import assess, degraded_carriers

    with transaction() as s:
        assert assess(s).changed == ["alpha degraded"]
        assert assess(s).changed == []  # same verdict: no new event
        assert set(degraded_carriers(s)) == {"alpha"}
    with transaction() as s:
        later = datetime.now(UTC) + timedelta(minutes=20)
        assert assess(s, later).changed == ["alpha recovered"] and degraded_carriers(s) == {}
        events = s.execute(text("SELECT action, subject_id, reason FROM audit.events "
                                "WHERE action LIKE 'carrier.%' ORDER BY id")).all()
    assert [(e[0], e[1]) for e in events] == [("carrier.degraded", "alpha"), ("carrier.recovered", "alpha")]
    assert "50%" in events[0][2]


def test_one_id_for_every_part_stands_for_the_whole_message(committed_db, redis_db):
    long_text = "Corte de agua programado en todo el sector oriente desde las 22:00 hasta las 06:00. " * 3
    with inbound_rig(receipts=False) as (sim, gateway):
        alert_id = seed_alert(["+56974100001"], texts={"es": long_text})
        send(gateway, alert_id)
        ids = deliveries(alert_id)["+56974100001"]["message_ids"]
        with transaction() as s:  # as a carrier that answers every part with the message's one id
            s.execute(text("DELETE FROM message_parts"))
            s.execute(text("UPDATE deliveries SET message_ids = :m, submitted_at = now() WHERE alert_id = :a"),
                      {"m": [ids[0]] * len(ids), "a": alert_id})
        sim.send_receipt("alpha", ids[0], "DELIVRD")
        wait_inbound(sim, 1)
        process_all()
    done = deliveries(alert_id)["+56974100001"]
    assert (done["state"], done["parts_delivered"]) == ("delivered", len(ids))


def test_recording_the_same_id_twice_in_one_statement_never_fails_the_gateway(committed_db, redis_db):
    with inbound_rig(receipts=False) as (_sim, gateway):
        alert_id = seed_alert(["+56974200001", "+56974200002"])
        send(gateway, alert_id)
        with transaction() as s:
            changed = s.execute(text("UPDATE deliveries SET message_ids = ARRAY['abc'], submitted_at = now() "
                                     "WHERE alert_id = :a"), {"a": alert_id}).rowcount
            parts = s.execute(text("SELECT count(*) FROM message_parts WHERE msg_key = 'abc'")).scalar_one()
    assert (changed, parts) == (2, 1)


def test_undelivered_is_retried_once_through_another_carrier_and_counts_when_it_arrives(committed_db, redis_db,
                                                                                       run_jobs):
    with inbound_rig(receipts=False) as (sim, gateway):
        alert_id = seed_alert(["+56974300001", "+56974300002"], sender="MULTI-SC")
        send(gateway, alert_id)
        first = deliveries(alert_id)
        for d in first.values():
            sim.send_receipt(d["carrier"], d["message_ids"][0], "UNDELIV", 1)
        wait_inbound(sim, 2)
        process_all()
        assert {d["state"] for d in deliveries(alert_id).values()} == {"failed"}
        run_jobs()
        with transaction() as s:
            retries = s.execute(text("SELECT delivery_id, carrier, message_ids[1] FROM followups "
                                     "WHERE kind = 'carrier_retry'")).all()
        for _, carrier, message_id in retries:
            sim.send_receipt(carrier, message_id, "DELIVRD")
        wait_inbound(sim, 4)
        process_all()
        process_all()  # a second pass retries nothing again
    assert len(retries) == 2
    assert all(carrier != first_by_id["carrier"] for (delivery_id, carrier, _), first_by_id in
               zip(sorted(retries), sorted(first.values(), key=lambda d: d["id"]), strict=True))
    after = deliveries(alert_id)
    assert {d["state"] for d in after.values()} == {"delivered"}
    assert all("delivered on retry through" in d["error_reason"] for d in after.values())


def test_failed_counts_only_what_is_final_and_never_goes_down_while_retries_run(committed_db, redis_db, run_jobs):
    from broadcast.jobs import counts_by_state

    def counts(alert_id: int) -> dict[str, int]:
        with transaction() as s:
            return counts_by_state(s, alert_id)

    numbers = ["+56974400001", "+56974400002", "+56974400003"]
    with inbound_rig(receipts=False) as (sim, gateway):
        alert_id = seed_alert(numbers, sender="MULTI-SC")
        single = seed_alert(["+56974400009"], sender="ALPHA-SC")  # one carrier only: nothing to retry through
        send(gateway, alert_id), send(gateway, single)
        for d in [*deliveries(alert_id).values(), *deliveries(single).values()]:
            sim.send_receipt(d["carrier"], d["message_ids"][0], "UNDELIV", 1)
        wait_inbound(sim, 4)
        process_all()
        seen = [counts(alert_id)]
        assert seen[0] == {"retrying": 3}  # undelivered once, each re-sent through the other carrier
        assert counts(single) == {"failed": 1}  # final at once
        run_jobs()
        seen.append(counts(alert_id))
        with transaction() as s:
            retries = dict(s.execute(text("SELECT d.msisdn, f.carrier || '|' || f.message_ids[1] FROM followups f "
                                          "JOIN deliveries d ON d.id = f.delivery_id WHERE f.alert_id = :a"),
                                     {"a": alert_id}).all())
        for number, stat in ((numbers[0], "DELIVRD"), (numbers[1], "UNDELIV")):  # the third: no receipt yet
            carrier, message_id = retries[number].split("|")
            sim.send_receipt(carrier, message_id, stat, 0 if stat == "DELIVRD" else 1)
        wait_inbound(sim, 6)
        process_all()
        seen.append(counts(alert_id))
    assert seen[-1] == {"delivered": 1, "failed": 1, "retrying": 1}
    failed = [c.get("failed", 0) for c in seen]
    assert failed == sorted(failed)  # a count shown as final never goes down
    assert all(sum(c.values()) == 3 for c in seen)


def test_receipts_are_read_in_a_process_that_holds_no_gateway(committed_db, redis_db):
    """Each carrier's receipt id style comes from PostgreSQL (broadcast/carrier_facts.py), so the job
    may run in any worker: here the gateway has stopped before the receipts are interpreted, and
    GAMMA's hex ids spelled in decimal still find their deliveries."""
    numbers = [f"+569703{i:05d}" for i in range(10)]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers, sender="GAMMA-SC")
        assert send(gateway, alert_id)["submitted"] == 10
        wait_inbound(sim, 10)
    with pytest.raises(RuntimeError):
        local_gateway.current()  # no gateway in this process any more
    process_all()
    assert {d["state"] for d in deliveries(alert_id).values()} == {"delivered"}
