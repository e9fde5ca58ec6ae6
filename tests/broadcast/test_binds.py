"""One SMPP bind over real TCP against the simulator: encoding, windows, inbound, link failures.

The listener here is a recorder of what the bind reports: it stands where the carrier pool sits
(the pool's own behaviour is tested in test_pool.py).
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import smpplib.client
import smpplib.smpp

from broadcast.binds import Bind, BindState, Part, parse_deliver_sm
from broadcast.carriers import CarrierConfig, parse_carriers
from smsc_sim import CarrierConfig as SimCarrier
from smsc_sim import ReceiptConfig, SimConfig, Simulator


class Recorder:
    """Everything a bind reports, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.changed = threading.Event()

    def _add(self, kind: str, value: Any) -> None:
        self.events.append((kind, value))
        self.changed.set()

    def of(self, kind: str) -> list[Any]:
        return [v for k, v in self.events if k == kind]

    def on_bind_up(self, bind: Bind) -> None:
        self._add("up", bind.name)

    def on_bind_down(self, bind: Bind, reason: str, unanswered: list[Part]) -> None:
        self._add("down", (reason, unanswered))

    def on_submit_resp(self, bind: Bind, part: Part, status: int, message_id: str | None) -> None:
        self._add("resp", (part.job, status, message_id))

    def on_submit_timeout(self, bind: Bind, parts: list[Part]) -> None:
        self._add("timeout", parts)

    def on_window_free(self, bind: Bind) -> None:
        pass


def wait(predicate, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(SimConfig(carriers=[SimCarrier(name="alpha", password="pw",
                                                         receipts=ReceiptConfig(style="both"))]))
    simulator.start_in_thread()
    try:
        yield simulator
    finally:
        simulator.stop()


def carrier(sim: Simulator, password: str = "pw", extra: str = "") -> CarrierConfig:  # noqa: S107
    text = f"""
[senders.SC]
kind = "short"
address = "4242"
[carriers.alpha]
host = "127.0.0.1"
port = {sim.port("alpha")}
system_id = "alpha"
password_env = "PW"
window = 20
response_timeout_s = 0.5
reconnect_max_s = 0.3
validity_period_s = 3600
senders = ["SC"]
{extra}
"""
    return parse_carriers(text, {"PW": password}).carrier("alpha")


@pytest.fixture
def bound(sim: Simulator) -> Iterator[tuple[Bind, Recorder, list]]:
    recorder, delivered = Recorder(), []
    bind = Bind(carrier(sim), 1, recorder, lambda c, b, fields: delivered.append((c, b, fields)))
    bind.start()
    assert wait(lambda: bind.state is BindState.UP)
    try:
        yield bind, recorder, delivered
    finally:
        bind.stop(drain_s=0.5)


def part(job: object, text: bytes = b"hola", dest: str = "56911112222") -> Part:
    return Part(job, 0, ("4242", 3, 0), dest, text, 0, 0)


def test_submit_sm_bytes_are_what_smpplib_would_write(sim):
    config = carrier(sim)
    bind = Bind(config, 1, Recorder(), lambda *a: None)
    ours = bind._encode_submit(77, Part(None, 0, ("4242", 3, 0), "56911112222", b"\x05\x00\x03\x01\x02\x01ab",
                                        0, 0x40))
    client = smpplib.client.Client("127.0.0.1", 1, allow_unknown_opt_params=True)
    theirs = smpplib.smpp.make_pdu(
        "submit_sm", client=client, sequence=77, service_type="", source_addr_ton=3, source_addr_npi=0,
        source_addr="4242", dest_addr_ton=1, dest_addr_npi=1, destination_addr="56911112222", esm_class=0x40,
        validity_period="000000010000000R", registered_delivery=1, data_coding=0,
        short_message=b"\x05\x00\x03\x01\x02\x01ab",
    )
    theirs.sequence = 77
    assert ours == theirs.generate()


def test_window_of_submits_gets_message_ids_and_frees_every_slot(bound, sim):
    bind, recorder, _ = bound
    assert bind.submit([part(i, dest=f"5691111{i:04d}") for i in range(20)]) == 20
    assert wait(lambda: len(recorder.of("resp")) == 20)
    assert {status for _job, status, _id in recorder.of("resp")} == {0}
    assert len({message_id for *_x, message_id in recorder.of("resp")}) == 20
    assert bind.free_slots() == 20 and bind.stats.submitted == 20


def test_deliver_sm_is_answered_and_handed_over_with_its_tlvs(bound, sim):
    bind, recorder, delivered = bound
    bind.submit([part("job")])
    assert wait(lambda: recorder.of("resp"))
    message_id = recorder.of("resp")[0][2]
    assert wait(lambda: delivered)
    carrier_name, bind_name, fields = delivered[0]
    assert (carrier_name, bind_name) == ("alpha", "alpha-1")
    assert fields["tlvs"]["receipted_message_id"] == message_id
    assert fields["tlvs"]["message_state"] == 2  # DELIVERED
    assert b"stat:DELIVRD" in fields["short_message"] and fields["esm_class"] & 0x04
    assert wait(lambda: any(p["status"] == 0 for p in sim.pdus("alpha", "deliver_sm_resp")))


def test_mobile_originated_reply_reaches_on_deliver(bound, sim):
    _bind, _recorder, delivered = bound
    sim.send_mo("alpha", "56911112222", "4242", "ACK 4821")
    assert wait(lambda: delivered)
    fields = delivered[0][2]
    assert (fields["source_addr"], fields["destination_addr"]) == ("56911112222", "4242")
    assert fields["short_message"] == b"ACK 4821"


def test_a_failed_hand_over_is_answered_with_system_error_so_the_smsc_retries(sim):
    def refuse(carrier: str, bind: str, fields: dict) -> None:
        raise RuntimeError("database down")

    bind = Bind(carrier(sim), 1, Recorder(), refuse)
    bind.start()
    try:
        assert wait(lambda: bind.state is BindState.UP)
        sim.send_mo("alpha", "56911112222", "4242", "SI")
        assert wait(lambda: any(p["status"] == 0x08 for p in sim.pdus("alpha", "deliver_sm_resp")))
        assert bind.state is BindState.UP  # the reader survived
    finally:
        bind.stop(drain_s=0)


def test_malformed_pdus_from_the_carrier_get_generic_nack_and_the_bind_keeps_working(bound, sim):
    bind, recorder, delivered = bound
    truncated = sim.send_pdu("alpha", 0x05, b"\0\x01\x01569")  # a deliver_sm cut short in its source_addr
    unknown = sim.send_pdu("alpha", 0x00000999, b"junk")  # a command SMPP 3.4 does not have

    def nacks() -> dict[int, int]:
        return {p["sequence"]: p["status"] for p in sim.pdus("alpha", "generic_nack") if p["dir"] == "in"}

    assert wait(lambda: {truncated, unknown} <= nacks().keys())
    assert (nacks()[truncated], nacks()[unknown]) == (0x02, 0x03)  # ESME_RINVCMDLEN, ESME_RINVCMDID
    assert [f["malformed"] for _c, _b, f in delivered] == ["source_addr is not NUL-terminated"]  # kept raw
    assert bind.state is BindState.UP and bind.stats.malformed == 2 and not recorder.of("down")
    bind.submit([part("after the junk")])  # the reader survived: submits still get their answers
    assert wait(lambda: recorder.of("resp"))
    assert recorder.of("resp")[0][:2] == ("after the junk", 0)
    sim.send_mo("alpha", "56911113333", "4242", "ACK")  # and replies still arrive
    assert wait(lambda: any(f.get("short_message") == b"ACK" for _c, _b, f in delivered))


def test_parse_deliver_sm_tolerates_unknown_tlvs_and_refuses_truncation():
    body = (b"\0" + bytes((1, 1)) + b"569\0" + bytes((3, 0)) + b"4242\0" + bytes((0, 0, 0)) + b"\0\0"
            + bytes((0, 0, 0, 0, 2)) + b"SI")
    tlvs = struct.pack(">HH", 0x1400, 3) + b"xyz" + struct.pack(">HHB", 0x0427, 1, 5)
    raw = struct.pack(">LLLL", 16 + len(body) + len(tlvs), 5, 0, 9) + body + tlvs
    fields = parse_deliver_sm(raw)
    assert fields["short_message"] == b"SI" and fields["tlvs"] == {"tlv_0x1400": b"xyz", "message_state": 5}
    with pytest.raises(ValueError):
        parse_deliver_sm(raw[:-3])
    with pytest.raises(ValueError):
        parse_deliver_sm(raw[:30])


def test_bad_credentials_leave_the_bind_down_with_an_error_naming_the_carrier(sim):
    bind = Bind(carrier(sim, password="nope"), 1, Recorder(), lambda *a: None)
    bind.start()
    try:
        assert wait(lambda: bind.stats.connect_failures >= 2)
        assert bind.state is not BindState.UP
        assert bind.stats.last_error.startswith("carrier alpha refused the bind")
        assert "nope" not in bind.stats.last_error
    finally:
        bind.stop(drain_s=0)


def test_dropped_link_reports_unanswered_parts_and_reconnects(bound, sim):
    bind, recorder, _ = bound
    sim.set_fault("alpha", "slow", delay_s=0.3)
    bind.submit([part(i) for i in range(10)])
    time.sleep(0.05)
    sim.set_fault("alpha", "drop_at", in_s=0)
    assert wait(lambda: recorder.of("down"))
    _reason, unanswered = recorder.of("down")[0]
    assert {p.job for p in unanswered} == set(range(10))
    assert bind.pending == {}
    sim.clear_faults("alpha")
    assert wait(lambda: len(recorder.of("up")) >= 1 and bind.state is BindState.UP)
    assert bind.stats.connects >= 2


def test_a_carrier_that_drops_every_link_at_once_is_not_hammered(sim):
    sim.set_fault("alpha", "drop_after", n=1, times=0)
    recorder = Recorder()
    bind = Bind(carrier(sim), 1, recorder, lambda *a: None)
    bind.start()
    try:
        time.sleep(3.0)
    finally:
        bind.stop(drain_s=0)
    # Backoff 0.5 s doubling to reconnect_max_s 0.3, with full jitter: at most ~20 in 3 s.
    assert 2 <= bind.stats.connects <= 20


def test_a_response_that_never_comes_frees_its_slot_after_the_timeout(bound, sim):
    bind, recorder, _ = bound
    sim.set_fault("alpha", "black_hole", enquire_link=True)
    bind.submit([part("lost")])
    assert bind.free_slots() == 19
    assert wait(lambda: recorder.of("timeout"), timeout_s=3)
    assert [p.job for p in recorder.of("timeout")[0]] == ["lost"]
    assert bind.free_slots() == 20 and bind.stats.timeouts == 1


def test_dead_link_is_found_by_enquire_link_and_rebound(sim):
    recorder = Recorder()
    bind = Bind(carrier(sim, extra="enquire_link_s = 1"), 1, recorder, lambda *a: None)
    bind.start()
    try:
        assert wait(lambda: bind.state is BindState.UP)
        sim.set_fault("alpha", "black_hole", enquire_link=False, for_s=2)
        assert wait(lambda: recorder.of("down"), timeout_s=5)
        assert "enquire_link" in recorder.of("down")[0][0]
        assert wait(lambda: bind.state is BindState.UP, timeout_s=5)
    finally:
        bind.stop(drain_s=0)


def test_stop_waits_for_answers_then_unbinds_cleanly(bound, sim):
    bind, recorder, _ = bound
    sim.set_fault("alpha", "slow", delay_s=0.2)
    bind.submit([part(i) for i in range(5)])
    bind.stop(drain_s=2)
    assert len(recorder.of("resp")) == 5 and not recorder.of("down")
    assert bind.state is BindState.STOPPED
    assert wait(lambda: any(p["command"] == "unbind" for p in sim.pdus("alpha")))


def test_transmitter_receiver_mode_opens_two_connections(sim):
    recorder, delivered = Recorder(), []
    bind = Bind(carrier(sim, extra='bind_mode = "transmitter_receiver"'), 1, recorder,
                lambda c, b, f: delivered.append(f))
    bind.start()
    try:
        assert wait(lambda: bind.state is BindState.UP)
        bind.submit([part("tx")])
        assert wait(lambda: recorder.of("resp") and delivered)
        commands = {p["command"] for p in sim.pdus("alpha")}
        assert {"bind_transmitter", "bind_receiver"} <= commands
    finally:
        bind.stop(drain_s=0.5)
