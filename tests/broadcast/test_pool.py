"""The carrier pool over real TCP against the project's SMSC simulator, and its flow-control rules."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from alerting.base.sms_text import encoding
from broadcast.binds import CarrierUnavailable
from broadcast.carriers import CarriersConfig, parse_carriers
from broadcast.pool import CarrierPool, OutboundMessage, Outcome, plan_capacity
from smsc_sim import CarrierConfig, ReceiptConfig, SimConfig, Simulator

SENDERS = """
[senders.SC]
kind = "short"
address = "4242"
[senders.BOMBEROS]
kind = "shared"
address = "5555"
keyword = "BOMBEROS"
[senders.LN]
kind = "long"
address = "+56900000001"
daily_cap = 3
tps = 5
[senders.NAME]
kind = "alphanumeric"
address = "SIRENA"
"""


def carriers_toml(sim: Simulator, **per_carrier: str) -> str:
    """A carriers file pointing at `sim`; extra TOML lines per carrier name."""
    text = SENDERS
    senders = {"alpha": '["SC", "BOMBEROS", "NAME"]', "beta": '["SC", "LN", "NAME"]'}
    for name in ("alpha", "beta"):
        text += f"""
[carriers.{name}]
host = "127.0.0.1"
port = {sim.port(name)}
system_id = "{name}"
password_env = "PW"
binds = 2
tps = 20000
window = 50
response_timeout_s = 1.0
breaker_cooldown_s = 0.5
reconnect_max_s = 0.5
test = {str(name == "alpha").lower()}
senders = {senders[name]}
{per_carrier.get(name, "")}
"""
    return text


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(
        SimConfig(carriers=[CarrierConfig(name="alpha", port=0, password="pw"),
                            CarrierConfig(name="beta", port=0, password="pw")])
    ).start_in_thread()
    try:
        yield simulator
    finally:
        simulator.stop()


def make_pool(config: CarriersConfig, delivered: list | None = None) -> CarrierPool:
    sink = delivered if delivered is not None else []
    return CarrierPool(config, on_deliver=lambda carrier, bind, fields: sink.append((carrier, fields)))


@pytest.fixture
def pool(sim: Simulator) -> Iterator[CarrierPool]:
    carrier_pool = make_pool(parse_carriers(carriers_toml(sim), {"PW": "pw"}))
    carrier_pool.start()
    try:
        yield carrier_pool
    finally:
        carrier_pool.stop(drain_s=1.0)


def sms(n: int, sender: str = "SC", text: str = "Alerta {i}", **kw: object) -> list[OutboundMessage]:
    out = []
    for i in range(n):
        encoded = encoding.encode_parts(text.format(i=i), ref=i % 256)
        esm = encoding.ESM_CLASS_UDHI if encoded.esm_class_udhi else 0
        out.append(OutboundMessage(i, sender, f"+5699{i:07d}", encoded.parts, encoded.data_coding, esm, **kw))
    return out


def per_recipient(sim: Simulator) -> Counter[str]:
    return Counter(m["dest"] for m in sim.messages())


# -- over TCP ---------------------------------------------------------------------------------


def test_a_batch_is_spread_over_every_bind_and_each_arrives_once(pool, sim):
    results = pool.submit_many(sms(400))
    assert {r.outcome for r in results} == {Outcome.SUBMITTED}
    assert all(len(r.message_ids) == 1 and r.message_ids[0] for r in results)
    assert {r.bind for r in results} == {"alpha-1", "alpha-2", "beta-1", "beta-2"}
    assert sim.wait_for(lambda: sim.submit_count() == 400)
    counts = per_recipient(sim)
    assert len(counts) == 400 and set(counts.values()) == {1}


def test_long_gsm7_with_extensions_and_ucs2_emoji_arrive_reassembled_exactly(pool, sim):
    gsm = "Evacuar sector {i} [norte] ~ ruta 5 | 100€ {{llaves}} \\ ^ " * 6
    ucs = "Incendio en el cerro 🔥 evacúe ya, sí: ruta 68 🚒 " * 4
    gsm_messages = sms(3, text=gsm)
    ucs_messages = [OutboundMessage(m.delivery_id + 10, m.sender, m.destination.replace("+5699", "+5698"),
                                    m.parts, m.data_coding, m.esm_class) for m in sms(3, text=ucs)]
    messages = gsm_messages + ucs_messages
    results = pool.submit_many(messages)
    assert {r.outcome for r in results} == {Outcome.SUBMITTED}
    assert all(len(r.message_ids) == len(m.parts) > 1 for r, m in zip(results, messages, strict=True))
    assert sim.wait_for(lambda: len(sim.messages()) == 6)
    got = {(m["dest"], m["text"]) for m in sim.messages()}
    assert got == {(f"5699{i:07d}", gsm.format(i=i)) for i in range(3)} | {
        (f"5698{i:07d}", ucs.format(i=i)) for i in range(3)
    }


def test_all_parts_of_a_long_message_go_through_one_bind(pool, sim):
    pool.submit_many(sms(40, text="x" * 400 + "{i}"))
    assert sim.wait_for(lambda: len(sim.messages()) == 40)
    by_message: dict[tuple[str, int], set[str]] = {}
    for record in sim.submits():
        by_message.setdefault((record["dest"], record["part"]["ref"]), set()).add(record["bind"])
    assert all(len(binds) == 1 for binds in by_message.values())


def test_throttling_slows_but_loses_nothing(pool, sim):
    sim.set_fault("alpha", "throttle", every_nth=3)
    sim.set_fault("beta", "throttle", every_nth=4)
    results = pool.submit_many(sms(300))
    assert Counter(r.outcome for r in results) == {Outcome.SUBMITTED: 300}
    assert not any(r.possible_duplicates for r in results)
    assert sim.wait_for(lambda: sim.submit_count() == 300)
    assert set(per_recipient(sim).values()) == {1}  # a 0x58 is a definite "not taken": no duplicate
    health = pool.health()["carriers"]
    assert sum(b["throttled"] for c in health.values() for b in c["binds"].values()) > 0


def test_dropped_bind_reconnects_and_unanswered_messages_are_retried(pool, sim):
    sim.set_fault("alpha", "drop_after", n=60, times=2)
    results = pool.submit_many(sms(1000))
    assert Counter(r.outcome for r in results) == {Outcome.SUBMITTED: 1000}
    assert sim.wait_for(lambda: len(per_recipient(sim)) == 1000)
    counts = per_recipient(sim)
    duplicates = sum(n - 1 for n in counts.values())
    flagged = sum(r.possible_duplicates for r in results)
    assert duplicates <= flagged == pool.possible_duplicates
    assert sim.wait_for(lambda: all(b["state"] == "up" for b in pool.health()["carriers"]["alpha"]["binds"].values()))
    assert sum(b["connects"] for b in pool.health()["carriers"]["alpha"]["binds"].values()) >= 3


def test_dead_carrier_trips_its_breaker_and_traffic_moves_to_the_other(pool, sim):
    sim.set_fault("beta", "black_hole")
    results = pool.submit_many(sms(300), timeout_s=10)
    assert Counter(r.outcome for r in results) == {Outcome.SUBMITTED: 300}
    assert {r.carrier for r in results} == {"alpha"}
    beta = pool.health()["carriers"]["beta"]["binds"]
    assert all(b["breaker"] != "closed" or b["state"] != "up" for b in beta.values())
    # What beta swallowed was re-sent elsewhere and flagged: a duplicate is possible, never a loss.
    flagged = sum(r.possible_duplicates for r in results)
    assert 0 < flagged == pool.possible_duplicates <= sum(b["ambiguous"] for b in beta.values())


def test_a_recovered_carrier_gets_traffic_again_after_its_probe(pool, sim):
    sim.set_fault("beta", "black_hole", for_s=1.5)
    first = pool.submit_many(sms(200), timeout_s=10)
    assert {r.outcome for r in first} == {Outcome.SUBMITTED}
    time.sleep(1.0)
    later = pool.submit_many(sms(400))
    assert {r.outcome for r in later} == {Outcome.SUBMITTED}
    assert "beta" in {r.carrier for r in later}
    assert {b["breaker"] for b in pool.health()["carriers"]["beta"]["binds"].values()} == {"closed"}


def test_unanswered_message_with_no_other_bind_left_is_ambiguous(pool, sim):
    sim.set_fault("alpha", "black_hole", deliver=True)  # swallowed submits still reach the air
    results = pool.submit_many(sms(3, sender="BOMBEROS"), timeout_s=10)
    assert {r.outcome for r in results} == {Outcome.AMBIGUOUS}
    assert all(r.possible_duplicates and r.carriers_tried == ["alpha"] for r in results)
    # Each copy already on the air is counted: the re-send that `ambiguous` leads to duplicates them all.
    on_air = per_recipient(sim)
    by_destination = {m.destination.lstrip("+"): r for m, r in zip(sms(3, sender="BOMBEROS"), results, strict=True)}
    assert on_air and all(n <= by_destination[dest].possible_duplicates for dest, n in on_air.items())
    assert pool.possible_duplicates == sum(r.possible_duplicates for r in results)


def test_throttled_until_the_call_ends_is_returned_for_retry_not_dropped(pool, sim):
    sim.set_fault("alpha", "throttle", every_nth=1)
    results = pool.submit_many(sms(30, sender="BOMBEROS"), timeout_s=1.0)
    assert {r.outcome for r in results} == {Outcome.RETRY}
    assert not any(r.possible_duplicates for r in results)
    assert "throttled" in results[0].reason or "within the call's time" in results[0].reason


def test_bad_credentials_give_a_clear_error_naming_the_carrier(sim):
    config = parse_carriers(carriers_toml(sim), {"PW": "wrong"})
    carrier_pool = make_pool(config)
    with pytest.raises(CarrierUnavailable) as info:
        carrier_pool.start(wait_s=1.0)
    carrier_pool.stop(drain_s=0)
    assert "carrier alpha refused the bind" in info.value.message
    assert "carrier beta refused the bind" in info.value.message
    assert "wrong" not in info.value.message


def test_every_route_down_means_waiting_route_and_nothing_sent(sim):
    sim.set_fault("alpha", "refuse_bind")
    config = parse_carriers(carriers_toml(sim), {"PW": "pw"})
    carrier_pool = make_pool(config)
    with pytest.raises(CarrierUnavailable, match="alpha"):
        carrier_pool.start(wait_s=0.5)
    try:
        results = carrier_pool.submit_many(sms(5, sender="BOMBEROS"))
        assert {r.outcome for r in results} == {Outcome.WAITING_ROUTE}
        assert 'every route for "BOMBEROS" is down' in results[0].reason
        assert sim.submit_count() == 0
    finally:
        carrier_pool.stop(drain_s=0)


def test_shared_code_goes_only_where_its_keyword_is_registered(pool, sim):
    results = pool.submit_many(sms(50, sender="BOMBEROS"))
    assert {(r.outcome, r.carrier) for r in results} == {(Outcome.SUBMITTED, "alpha")}
    assert {r.carrier for r in pool.submit_many(sms(20, sender="LN"))[:3]} == {"beta"}


def test_allowed_carriers_keep_an_exercise_on_test_carriers(pool, sim):
    results = pool.submit_many(sms(100, allowed_carriers=frozenset({"alpha"})))
    assert {r.carrier for r in results} == {"alpha"}
    refused = pool.submit_many(sms(2, sender="LN", allowed_carriers=frozenset({"alpha"})))
    assert {r.outcome for r in refused} == {Outcome.FAILED}
    assert "no carrier allowed" in refused[0].reason


def test_avoid_carriers_sends_a_retry_elsewhere(pool, sim):
    results = pool.submit_many(sms(50, avoid_carriers=frozenset({"alpha"})))
    assert {r.carrier for r in results} == {"beta"}


def test_permanent_error_fails_with_its_code_and_is_never_retried(pool, sim):
    sim.set_fault("alpha", "reject", share=1.0, status=0x0B)
    results = pool.submit_many(sms(20, sender="BOMBEROS"))
    assert {(r.outcome, r.error_code) for r in results} == {(Outcome.FAILED, 0x0B)}
    assert "Invalid Destination Address" in results[0].reason
    submits = [p for p in sim.pdus("alpha", "submit_sm") if p["dir"] == "in"]
    assert len(submits) == 20


def test_messages_that_cannot_be_sent_fail_with_a_reason_and_the_rest_go(pool, sim):
    good = sms(2)
    bad = [OutboundMessage(10, "SC", "56911112222", [b"x"]), OutboundMessage(11, "NOPE", "+56911112222", [b"x"]),
           OutboundMessage(12, "SC", "+56911112222", [b"x" * 255]), OutboundMessage(13, "SC", "+56911112222", [])]
    results = pool.submit_many(good + bad)
    assert [r.outcome for r in results] == [Outcome.SUBMITTED] * 2 + [Outcome.FAILED] * 4
    assert ["E.164" in results[2].reason, "unknown sender" in results[3].reason,
            "254 octets" in results[4].reason, "1-255 parts" in results[5].reason] == [True] * 4


def test_queue_full_is_retried_on_another_bind(pool, sim):
    sim.set_fault("beta", "reject", share=1.0, status=0x14)
    results = pool.submit_many(sms(200))
    assert Counter(r.outcome for r in results) == {Outcome.SUBMITTED: 200}
    assert {r.carrier for r in results} == {"alpha"}
    assert not any(r.possible_duplicates for r in results)


def test_long_number_daily_cap_holds_and_says_why(pool, sim):
    results = pool.submit_many(sms(5, sender="LN"))
    assert Counter(r.outcome for r in results) == {Outcome.SUBMITTED: 3, Outcome.WAITING_ROUTE: 2}
    waiting = next(r for r in results if r.outcome is Outcome.WAITING_ROUTE)
    assert 'daily cap of 3 parts reached for "LN"' in waiting.reason
    assert pool.sender_usage("LN")["left_today"] == 0


def test_long_number_tps_is_respected(sim):
    config = parse_carriers(carriers_toml(sim).replace("daily_cap = 3", "daily_cap = 100"), {"PW": "pw"})
    carrier_pool = make_pool(config)
    carrier_pool.start()
    try:
        started = time.monotonic()
        results = carrier_pool.submit_many(sms(11, sender="LN"))
        elapsed = time.monotonic() - started
    finally:
        carrier_pool.stop(drain_s=1)
    assert {r.outcome for r in results} == {Outcome.SUBMITTED}
    assert elapsed >= 1.5  # 11 parts at 5 per second, one of burst


def test_alphanumeric_sender_goes_out_with_ton_5(pool, sim):
    pool.submit_many(sms(4, sender="NAME"))
    assert sim.wait_for(lambda: sim.submit_count() == 4)
    records = [r for c in sim.carriers.values() for r in c.submits]
    assert {(r.sm.source_addr, r.sm.source_addr_ton, r.sm.source_addr_npi) for r in records} == {("SIRENA", 5, 0)}


def test_gsm7_data_coding_follows_the_carrier(sim):
    config = parse_carriers(carriers_toml(sim, beta="data_coding_gsm7 = 1"), {"PW": "pw"})
    carrier_pool = make_pool(config)
    carrier_pool.start()
    try:
        carrier_pool.submit_many(sms(20, avoid_carriers=frozenset({"alpha"})))
        carrier_pool.submit_many(sms(20, avoid_carriers=frozenset({"beta"})))
    finally:
        carrier_pool.stop(drain_s=1)
    assert sim.wait_for(lambda: sim.submit_count() == 40)
    codings = {(r["carrier"], r["data_coding"]) for r in sim.submits()}
    assert codings == {("alpha", 0), ("beta", 1)}


def test_receipts_reach_on_deliver_with_their_tlvs():
    receipts_config = ReceiptConfig(style="both")
    sim = Simulator(SimConfig(carriers=[CarrierConfig(name=n, password="pw", receipts=receipts_config)
                                        for n in ("alpha", "beta")])).start_in_thread()
    delivered: list = []
    carrier_pool = make_pool(parse_carriers(carriers_toml(sim), {"PW": "pw"}), delivered)
    carrier_pool.start()
    try:
        results = carrier_pool.submit_many(sms(10, sender="BOMBEROS"))
        ids = {r.message_ids[0] for r in results}
        assert sim.wait_for(lambda: len(delivered) >= 10)
    finally:
        carrier_pool.stop(drain_s=1)
        sim.stop()
    receipts = {f["tlvs"].get("receipted_message_id") for _c, f in delivered}
    assert ids <= receipts
    assert all(f["esm_class"] & 0x04 and isinstance(f["short_message"], bytes) for _c, f in delivered)


def test_priority_call_is_served_first_by_every_bind(pool, sim):
    import threading

    sim.set_fault("alpha", "slow", delay_s=0.05)
    sim.set_fault("beta", "slow", delay_s=0.05)
    routine: list = []
    thread = threading.Thread(target=lambda: routine.extend(pool.submit_many(sms(3000), priority=100)))
    thread.start()
    assert sim.wait_for(lambda: sim.submit_count() > 100)
    flash = pool.submit_many(sms(20, text="FLASH {i}"), priority=0)
    thread.join()
    assert {r.outcome for r in flash} == {Outcome.SUBMITTED}
    assert Counter(r.outcome for r in routine) == {Outcome.SUBMITTED: 3000}
    texts = [r["text"] for r in sim.submits()]
    flash_at = [i for i, t in enumerate(texts) if t.startswith("FLASH")]
    routine_between = flash_at[-1] - flash_at[0] + 1 - len(flash_at)
    # Only routine parts already in the 4 windows (4 x 50) may land among the flash ones.
    assert routine_between <= 200 and len(texts) - flash_at[-1] > 2000


def test_health_reports_every_bind(pool):
    health = pool.health()
    assert set(health["carriers"]) == {"alpha", "beta"}
    bind = health["carriers"]["alpha"]["binds"]["alpha-1"]
    assert bind["state"] == "up" and bind["breaker"] == "closed" and bind["window"] == 50
    assert health["carriers"]["alpha"]["test"] is True and health["carriers"]["beta"]["test"] is False


def test_plan_capacity_reports_a_long_number_over_its_cap(sim):
    config = parse_carriers(carriers_toml(sim), {"PW": "pw"})
    plan = plan_capacity(config, "LN", parts_total=10)
    assert plan["exceeds_daily_cap"] and plan["tps"] == 5 and plan["seconds"] == 2
    assert not plan_capacity(config, "SC", parts_total=10)["exceeds_daily_cap"]


def test_send_test_command_prints_the_message_id_and_the_receipt(sim, tmp_path, monkeypatch, capsys):
    import json

    from alerting.interfaces.cli import main

    carriers_file = tmp_path / "carriers.toml"
    carriers_file.write_text(carriers_toml(sim))
    monkeypatch.setenv("SIRENA_CARRIERS_FILE", str(carriers_file))
    monkeypatch.setenv("PW", "pw")
    main(["send-test", "--carrier", "beta", "--to", "+56991234567", "--wait-s", "5", "--json", "Prueba €"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["carrier"] == "beta" and out["encoding"] == "gsm7" and out["to"] == "+56991234567"
    assert out["receipts"][0]["message_id"] == out["message_ids"][0]
    assert out["receipts"][0]["stat"] == "DELIVRD"
    assert [m["text"] for m in sim.messages("beta")] == ["Prueba €"]


def test_send_test_with_a_wrong_password_names_the_carrier(sim, tmp_path, monkeypatch, capsys):
    from alerting.interfaces.cli import main

    carriers_file = tmp_path / "carriers.toml"
    carriers_file.write_text(carriers_toml(sim))
    monkeypatch.setenv("SIRENA_CARRIERS_FILE", str(carriers_file))
    monkeypatch.setenv("PW", "nope")
    with pytest.raises(SystemExit) as done:
        main(["send-test", "--carrier", "alpha", "--to", "+56991234567", "x"])
    assert done.value.code == 7
    assert "carrier alpha refused the bind: Invalid Password" in capsys.readouterr().err


def test_a_pool_says_when_the_carriers_tps_bounds_its_sending(sim):
    """What lets receipts be read at once while a throttled alert goes out (broadcast/inbound.py):
    a bind with work, window room and no tokens is TPS-bound; one that sends as fast as it is fed is not."""
    fast = make_pool(parse_carriers(carriers_toml(sim), {"PW": "pw"}))
    fast.start()
    try:
        assert {r.outcome for r in fast.submit_many(sms(200))} == {Outcome.SUBMITTED}
        assert not fast.tps_bound(within_s=60)
    finally:
        fast.stop(drain_s=1.0)
    slow = make_pool(parse_carriers(carriers_toml(sim).replace("tps = 20000", "tps = 40"), {"PW": "pw"}))
    slow.start()
    try:
        assert not slow.tps_bound(within_s=60)  # nothing sent yet
        assert {r.outcome for r in slow.submit_many(sms(30))} == {Outcome.SUBMITTED}
        assert slow.tps_bound(within_s=60)
    finally:
        slow.stop(drain_s=1.0)
