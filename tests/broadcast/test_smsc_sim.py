"""The SMSC simulator over real TCP, driven by smpplib (and by a raw socket for malformed PDUs)."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import smpplib.client
import smpplib.exceptions
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from alerting.base.sms_text.encoding import encode_parts
from smsc_sim import CarrierConfig, HandsetConfig, ReceiptConfig, SimConfig, Simulator, load_config, pdu
from smsc_sim.control import ControlClient
from smsc_sim.errors import ConfigError, InvalidInput
from smsc_sim.handsets import Handsets
from smsc_sim.text import GSM7_BASIC, GSM7_EXTENSION, decode_text

PASSWORD = "s3cret"
RECEIPT_RE = re.compile(
    r"^id:(?P<id>\S+) sub:001 dlvrd:(?P<dlvrd>\d{3}) submit date:\d{10} done date:\d{10} "
    r"stat:(?P<stat>[A-Z]+) err:(?P<err>\d{3}) text:(?P<text>.*)$"
)


def _carrier(name: str = "alpha", **kw: object) -> CarrierConfig:
    return CarrierConfig(name=name, port=0, system_id=name, password=PASSWORD, **kw)  # type: ignore[arg-type]


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    started: list[Simulator] = []

    def make(*carriers: CarrierConfig, **kw: object) -> Simulator:
        sim = Simulator(SimConfig(carriers=list(carriers) or [_carrier()], seed=1, **kw))  # type: ignore[arg-type]
        started.append(sim.start_in_thread())
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(sim_factory) -> Simulator:  # type: ignore[no-untyped-def]
    return sim_factory()


class Esme:
    """An smpplib client that remembers what it got."""

    def __init__(self, sim: Simulator, carrier: str = "alpha", kind: str = "transceiver",
                 password: str = PASSWORD, timeout_s: float = 2.0) -> None:
        self.client = smpplib.client.Client("127.0.0.1", sim.port(carrier), timeout=timeout_s,
                                            allow_unknown_opt_params=True)
        self.sent: list[smpplib.command.Command] = []
        self.received: list[smpplib.command.Command] = []
        self.client.set_message_sent_handler(lambda pdu: self.sent.append(pdu))
        self.client.set_message_received_handler(lambda pdu: self.received.append(pdu))
        # smpplib also passes an error submit_sm_resp to the sent handler: record it only there.
        self.client.set_error_pdu_handler(lambda pdu: None)
        self.client.connect()
        try:
            getattr(self.client, f"bind_{kind}")(system_id=carrier, password=password)
        except Exception:
            self.client.disconnect()
            raise

    def submit(self, text: str | bytes = "Alerta: responda ACK 4821", dest: str = "56911112222",
               **kw: object) -> None:
        body = text.encode() if isinstance(text, str) else text
        self.client.send_message(source_addr_ton=0, source_addr="2000", dest_addr_ton=1,
                                 destination_addr=dest, short_message=body, **kw)

    def read_until(self, done, timeout_s: float = 3.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, "timed out waiting for PDUs"
            self.client.read_once()

    def close(self) -> None:
        try:
            self.client.unbind()
        finally:
            self.client.disconnect()


def _raw_bind(port: int, system_id: str = "alpha", command_id: int = pdu.BIND_TRANSCEIVER) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    body = pdu.encode_fields(command_id, {"system_id": system_id, "password": PASSWORD, "interface_version": 0x34})
    sock.sendall(pdu.encode_pdu(command_id, 1, 0, body))
    assert _read_raw(sock)[1] == 0
    return sock


def _read_raw(sock: socket.socket) -> tuple[int, int, int, bytes]:
    header = b""
    while len(header) < 16:
        chunk = sock.recv(16 - len(header))
        if not chunk:
            raise ConnectionError("closed")
        header += chunk
    length, command_id, status, seq = struct.unpack(">IIII", header)
    body = b""
    while len(body) < length - 16:
        body += sock.recv(length - 16 - len(body))
    return command_id, status, seq, body


# ---- binds ------------------------------------------------------------------------------
def test_bind_with_the_right_password_succeeds_and_a_wrong_one_gets_rinvpaswd(sim: Simulator) -> None:
    esme = Esme(sim)
    esme.close()
    with pytest.raises(smpplib.exceptions.PDUError) as refused:
        Esme(sim, password="wrong")
    assert refused.value.args[1] == pdu.ESME_RINVPASWD
    assert sim.status()["carriers"]["alpha"]["binds"] == {}


def test_system_type_and_max_binds_are_enforced(sim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory(_carrier(system_type="VMA", max_binds=1))
    client = smpplib.client.Client("127.0.0.1", sim.port("alpha"), allow_unknown_opt_params=True)
    client.connect()
    with pytest.raises(smpplib.exceptions.PDUError) as wrong_type:
        client.bind_transmitter(system_id="alpha", password=PASSWORD, system_type="OTHER")
    assert wrong_type.value.args[1] == pdu.ESME_RINVSYSTYP
    client.bind_transmitter(system_id="alpha", password=PASSWORD, system_type="VMA")
    second = smpplib.client.Client("127.0.0.1", sim.port("alpha"), allow_unknown_opt_params=True)
    second.connect()
    with pytest.raises(smpplib.exceptions.PDUError) as too_many:
        second.bind_transmitter(system_id="alpha", password=PASSWORD, system_type="VMA")
    assert too_many.value.args[1] == pdu.ESME_RBINDFAIL
    second.disconnect()
    client.disconnect()


def test_refuse_bind_fault_answers_rbindfail_or_closes_the_connection(sim: Simulator) -> None:
    sim.set_fault("alpha", "refuse_bind")
    with pytest.raises(smpplib.exceptions.PDUError) as refused:
        Esme(sim)
    assert refused.value.args[1] == pdu.ESME_RBINDFAIL
    sim.set_fault("alpha", "refuse_bind", mode="close")
    with pytest.raises(smpplib.exceptions.ConnectionError):
        Esme(sim)
    sim.set_fault("alpha", "wrong_password", times=1)
    with pytest.raises(smpplib.exceptions.PDUError) as bad_password:
        Esme(sim)
    assert bad_password.value.args[1] == pdu.ESME_RINVPASWD
    sim.clear_faults("alpha")
    Esme(sim).close()


# ---- submit_sm --------------------------------------------------------------------------
def test_submits_get_unique_hex_ids_and_are_recorded_as_on_the_air(sim: Simulator) -> None:
    esme = Esme(sim)
    for i in range(50):
        esme.submit(f"mensaje {i}", dest=f"5691111{i:04d}")
    esme.read_until(lambda: len(esme.sent) == 50)
    ids = [p.message_id.decode() for p in esme.sent]
    assert len(set(ids)) == 50
    assert all(int(i, 16) for i in ids)
    submits = sim.submits("alpha")
    assert [s["message_id"] for s in submits] == ids
    assert submits[7]["text"] == "mensaje 7" and submits[7]["dest"] == "56911110007"
    esme.close()


def test_decimal_ids_and_appendix_b_text_receipts(sim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory(_carrier(message_id_style="decimal"))
    esme = Esme(sim)
    esme.submit("Simulacro: responda ACK 4821", registered_delivery=1)
    esme.read_until(lambda: esme.sent and esme.received)
    message_id = esme.sent[0].message_id.decode()
    assert message_id.isdigit()
    receipt = esme.received[0]
    assert receipt.esm_class == 0x04
    assert receipt.source_addr == b"56911112222" and receipt.destination_addr == b"2000"
    fields = RECEIPT_RE.match(receipt.short_message.decode())
    assert fields is not None, receipt.short_message
    assert fields["id"] == message_id and fields["stat"] == "DELIVRD" and fields["dlvrd"] == "001"
    assert fields["text"] == "Simulacro: responda "
    assert receipt.receipted_message_id is None  # text style: no TLVs
    esme.close()


def test_tlv_receipts_carry_receipted_message_id_state_and_error(sim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory(_carrier(receipts=ReceiptConfig(style="tlv", failures={"UNDELIV": 1.0})))
    esme = Esme(sim)
    esme.submit(registered_delivery=1)
    esme.read_until(lambda: esme.sent and esme.received)
    receipt = esme.received[0]
    assert receipt.receipted_message_id == esme.sent[0].message_id
    assert receipt.message_state == pdu.MESSAGE_STATES["UNDELIV"]
    assert receipt.network_error_code == b"\x03\x00\x01"
    assert receipt.short_message in (b"", None)
    esme.close()


def test_both_style_receipts_show_the_id_as_the_carrier_spells_it(sim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory(_carrier(receipts=ReceiptConfig(style="both", id_style="decimal")))
    esme = Esme(sim)
    esme.submit(registered_delivery=1)
    esme.read_until(lambda: esme.sent and esme.received)
    hex_id = esme.sent[0].message_id.decode()
    receipt = esme.received[0]
    assert receipt.receipted_message_id.decode() == str(int(hex_id, 16))
    assert RECEIPT_RE.match(receipt.short_message.decode())["id"] == str(int(hex_id, 16))
    esme.close()


def test_no_receipt_unless_registered_delivery_asks(sim: Simulator) -> None:
    esme = Esme(sim)
    esme.submit(registered_delivery=0)
    esme.submit(registered_delivery=2)  # failures only, and this one is delivered
    esme.submit(registered_delivery=1)
    esme.read_until(lambda: len(esme.sent) == 3 and esme.received)
    time.sleep(0.2)
    esme.client.poll()
    assert len(esme.received) == 1
    assert RECEIPT_RE.match(esme.received[0].short_message.decode())["id"] == esme.sent[2].message_id.decode()
    esme.close()


def test_receipts_wait_for_a_receiver_and_arrive_when_one_binds(sim: Simulator) -> None:
    tx = Esme(sim, kind="transmitter")
    tx.submit(registered_delivery=1)
    tx.read_until(lambda: tx.sent)
    assert sim.wait_for(lambda: sim.status()["carriers"]["alpha"]["pending_deliveries"] == 1)
    rx = Esme(sim, kind="receiver")
    rx.read_until(lambda: rx.received)
    assert rx.received[0].esm_class == 0x04
    tx.close()
    rx.close()


def test_unanswered_deliver_sm_is_sent_again_on_the_next_bind(sim: Simulator) -> None:
    sock = _raw_bind(sim.port("alpha"), command_id=pdu.BIND_RECEIVER)
    sim.send_mo("alpha", "56922223333", "2000", "AYUDA")
    command_id, _, _, _ = _read_raw(sock)
    assert command_id == pdu.DELIVER_SM
    sock.close()  # never answered: the simulator must keep it
    esme = Esme(sim, kind="receiver")
    esme.read_until(lambda: esme.received)
    assert esme.received[0].short_message == b"AYUDA"
    esme.close()


# ---- replies ----------------------------------------------------------------------------
def test_injected_mo_arrives_in_gsm7_or_ucs2(sim: Simulator) -> None:
    esme = Esme(sim)
    sim.send_mo("alpha", "56933334444", "2000", "recibido ok")
    sim.send_mo("alpha", "56933334444", "2000", "recibí ✅")
    esme.read_until(lambda: len(esme.received) == 2)
    gsm, ucs2 = esme.received
    assert (gsm.esm_class, gsm.data_coding, gsm.short_message) == (0, 0, b"recibido ok")
    assert gsm.source_addr == b"56933334444" and gsm.destination_addr == b"2000"
    assert ucs2.data_coding == 8 and ucs2.short_message.decode("utf-16-be") == "recibí ✅"
    esme.close()


def test_handsets_reply_with_the_code_found_in_the_alert(sim_factory) -> None:  # type: ignore[no-untyped-def]
    handsets = HandsetConfig(reply_share=1.0, delay_s=(0.0, 0.05), texts=[("ACK {code}", 1.0)])
    sim = sim_factory(_carrier(handsets=handsets))
    esme = Esme(sim)
    alert = "Incendio forestal. Evacúe. Responda con el código 4821"
    esme.submit(alert.encode("utf-16-be"), dest="56944445555", data_coding=8)
    esme.read_until(lambda: esme.received)
    reply = esme.received[0]
    assert reply.short_message == b"ACK 4821"
    assert reply.source_addr == b"56944445555" and reply.destination_addr == b"2000"
    esme.close()


# ---- faults -----------------------------------------------------------------------------
def test_throttle_answers_rthrottled_on_every_nth_submit(sim: Simulator) -> None:
    sim.set_fault("alpha", "throttle", every_nth=3)
    esme = Esme(sim)
    for i in range(9):
        esme.submit(f"m{i}")
    esme.read_until(lambda: len(esme.sent) == 9)
    statuses = [p.status for p in esme.sent]
    assert statuses.count(pdu.ESME_RTHROTTLED) == 3
    assert statuses[2] == statuses[5] == statuses[8] == pdu.ESME_RTHROTTLED
    assert len(sim.submits("alpha")) == 6  # a throttled submit never reaches the air
    esme.close()


def test_throttle_above_tps_lets_through_at_most_that_rate(sim: Simulator) -> None:
    sim.set_fault("alpha", "throttle", above_tps=5)
    esme = Esme(sim)
    for i in range(20):
        esme.submit(f"m{i}")
    esme.read_until(lambda: len(esme.sent) == 20)
    ok = sum(p.status == 0 for p in esme.sent)
    assert 5 <= ok <= 10  # the burst may straddle one second boundary
    esme.close()


def test_drop_after_n_pdus_closes_the_connection_once(sim: Simulator) -> None:
    sim.set_fault("alpha", "drop_after", n=4)  # the bind is PDU 1
    esme = Esme(sim)
    with pytest.raises(smpplib.exceptions.ConnectionError):  # on a later send, or on the read
        for i in range(6):
            esme.submit(f"m{i}")
        esme.read_until(lambda: len(esme.sent) == 6)
    assert len(esme.sent) <= 3
    assert sim.wait_for(lambda: len(sim.submits("alpha")) == 3)
    assert [p["status"] for p in sim.pdus("alpha", "submit_sm")] == [0, 0, 0]  # the rest never read
    esme.client.disconnect()
    again = Esme(sim)  # times=1: the next connection is left alone
    again.submit()
    again.read_until(lambda: again.sent)
    again.close()


def test_black_hole_accepts_submits_but_never_answers(sim: Simulator) -> None:
    sim.set_fault("alpha", "black_hole")
    esme = Esme(sim, timeout_s=0.5)
    esme.submit()
    with pytest.raises(socket.timeout):
        esme.client.read_pdu()
    assert sim.submits("alpha") == []
    [swallowed] = sim.pdus("alpha", "submit_sm")
    assert swallowed["status"] is None
    sim.clear_faults("alpha")
    esme.submit()
    esme.read_until(lambda: esme.sent)
    assert esme.sent[0].status == 0
    esme.close()


def test_reject_share_answers_a_permanent_error(sim: Simulator) -> None:
    sim.set_fault("alpha", "reject", share=1.0)
    esme = Esme(sim)
    esme.submit()
    esme.read_until(lambda: esme.sent)
    assert esme.sent[0].status == pdu.ESME_RINVDSTADR
    assert sim.submits() == []
    esme.close()


def test_slow_responses_are_delayed(sim: Simulator) -> None:
    sim.set_fault("alpha", "slow", delay_s=0.3)
    esme = Esme(sim)
    started = time.monotonic()
    esme.submit()
    esme.read_until(lambda: esme.sent)
    assert time.monotonic() - started >= 0.3
    esme.close()


def test_restart_drops_everyone_and_listens_again(sim: Simulator) -> None:
    esme = Esme(sim)
    sim.set_fault("alpha", "restart", after_s=0.3)
    with pytest.raises(smpplib.exceptions.ConnectionError):
        esme.client.read_pdu()
    esme.client.disconnect()
    assert sim.wait_for(lambda: _connects(sim.port("alpha")), timeout_s=3)
    Esme(sim).close()


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_receipt_before_resp_duplicates_and_unknown_ids(sim: Simulator) -> None:
    sock = _raw_bind(sim.port("alpha"))
    sim.set_fault("alpha", "dlr_before_resp")
    sm = pdu.ShortMessage("2000", "56955556666", registered_delivery=1, short_message=b"hola")
    sock.sendall(pdu.encode_pdu(pdu.SUBMIT_SM, 7, 0, pdu.encode_sm(sm)))
    first, second = _read_raw(sock), _read_raw(sock)
    assert first[0] == pdu.DELIVER_SM and second[0] == pdu.SUBMIT_SM | pdu.RESP
    message_id = second[3].rstrip(b"\0").decode()
    assert f"id:{message_id} ".encode() in first[3]
    sock.sendall(pdu.encode_pdu(pdu.DELIVER_SM | pdu.RESP, first[2], 0, b"\0"))
    sock.close()
    sim.clear_faults("alpha")
    sim.set_fault("alpha", "duplicate_receipts")
    esme = Esme(sim)
    sim.send_receipt("alpha", "feedbeef42", "EXPIRED", err=3)
    esme.read_until(lambda: len(esme.received) == 2)
    texts = {r.short_message for r in esme.received}
    assert len(texts) == 1 and b"id:feedbeef42 " in texts.pop()
    esme.close()


# ---- malformed input --------------------------------------------------------------------
def test_malformed_pdus_get_generic_nack_and_the_server_stays_up(sim: Simulator) -> None:
    sock = _raw_bind(sim.port("alpha"))
    sock.sendall(pdu.encode_pdu(0x00000077, 9))  # unknown command_id
    assert _read_raw(sock)[:3] == (pdu.GENERIC_NACK, pdu.ESME_RINVCMDID, 9)
    sock.sendall(pdu.encode_pdu(pdu.SUBMIT_SM, 10, 0, b"\0\x01\x012000"))  # body cut short
    assert _read_raw(sock)[:3] == (pdu.GENERIC_NACK, pdu.ESME_RINVCMDLEN, 10)
    sock.sendall(struct.pack(">IIII", 8, pdu.SUBMIT_SM, 0, 11))  # command_length below the header
    assert _read_raw(sock)[:2] == (pdu.GENERIC_NACK, pdu.ESME_RINVCMDLEN)
    with pytest.raises(ConnectionError):
        _read_raw(sock)
    sock.close()
    malformed = [p for p in sim.pdus("alpha") if "malformed" in p]
    assert len(malformed) == 3
    esme = Esme(sim)
    esme.submit()
    esme.read_until(lambda: esme.sent)
    esme.close()


# ---- concatenation ----------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "ALERTA {evacuación} [zona 3]: diríjase al punto de encuentro €5 ~ " * 4,
    "Evacúe ahora 🚒🔥 por la ruta norte; responda código 4821. " * 3,
])
def test_concatenated_message_is_reassembled_and_each_part_has_its_own_id_and_receipt(
        sim: Simulator, text: str) -> None:
    encoded = encode_parts(text, ref=42)
    assert len(encoded.parts) > 1
    esme = Esme(sim)
    for part in encoded.parts:
        esme.submit(part, esm_class=0x40, data_coding=encoded.data_coding, registered_delivery=1)
    n = len(encoded.parts)
    esme.read_until(lambda: len(esme.sent) == n and len(esme.received) == n)
    assert sim.incomplete("alpha") == []
    [message] = sim.messages("alpha")
    assert message["text"] == text
    assert message["parts"] == n and message["ref"] == 42
    assert message["message_ids"] == [p.message_id.decode() for p in esme.sent]
    receipted = {RECEIPT_RE.match(r.short_message.decode())["id"] for r in esme.received}
    assert receipted == set(message["message_ids"])
    assert sim.messages_by_recipient("alpha") == {"56911112222": [text]}
    esme.close()


# ---- configuration, control port, log, CLI ----------------------------------------------
def test_config_file_reads_password_from_env_and_refuses_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text('[[carriers]]\nname = "a"\npassword_env = "SIM_PW"\n'
                    '[carriers.receipts]\nstyle = "tlv"\ndelay_s = [0.1, 0.2]\nfailures = { UNDELIV = 0.1 }\n'
                    '[[carriers.faults]]\nkind = "throttle"\nevery_nth = 5\n')
    config = load_config(path, env={"SIM_PW": "pw"})
    carrier = config.carriers[0]
    assert carrier.password == "pw" and carrier.receipts.delay_s == (0.1, 0.2)
    assert carrier.faults[0].params == {"every_nth": 5}
    with pytest.raises(ConfigError, match="SIM_PW"):
        load_config(path, env={})
    path.write_text('[[carriers]]\nname = "a"\npasword = "x"\n')
    with pytest.raises(ConfigError, match="pasword"):
        load_config(path, env={})


def test_unknown_fault_kind_or_parameter_is_refused(sim: Simulator) -> None:
    with pytest.raises(InvalidInput, match="unknown fault kind"):
        sim.set_fault("alpha", "meteor")
    with pytest.raises(InvalidInput, match="no parameter"):
        sim.set_fault("alpha", "throttle", every_nth=2, colour="red")


def test_control_port_sets_faults_and_reports_status(sim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory(_carrier(), control_port=0)
    with ControlClient("127.0.0.1", sim.control_port) as control:
        control.set_fault("alpha", "refuse_bind")
        with pytest.raises(smpplib.exceptions.PDUError):
            Esme(sim)
        assert control.request("status")["carriers"]["alpha"]["faults"][0]["kind"] == "refuse_bind"
        control.clear_faults("alpha")
        esme = Esme(sim)
        esme.submit()
        esme.read_until(lambda: esme.sent)
        assert len(control.request("submits", carrier="alpha")["submits"]) == 1
        esme.close()


def test_pdu_log_file_has_one_json_line_per_pdu(sim_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log_path = tmp_path / "pdus.jsonl"
    sim = sim_factory(_carrier(), log_path=log_path)
    esme = Esme(sim)
    esme.submit("hola mundo")
    esme.read_until(lambda: esme.sent)
    esme.close()
    sim.stop()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    commands = [line.get("command") for line in lines]
    assert commands[:3] == ["bind_transceiver", "submit_sm", "unbind"]
    submit = lines[1]
    assert submit["text"] == "hola mundo" and submit["message_id"] == esme.sent[0].message_id.decode()
    assert PASSWORD not in log_path.read_text()


def test_cli_runs_one_default_carrier_on_the_given_port(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "from alerting.interfaces.cli import main; main()", "smsc-sim",
                             "--port", "0", "--password", PASSWORD], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = json.loads(proc.stdout.readline())
        port = banner["ports"]["default"]
        client = smpplib.client.Client("127.0.0.1", port, allow_unknown_opt_params=True)
        client.connect()
        client.bind_transmitter(system_id="sirena", password=PASSWORD)
        client.unbind()
        client.disconnect()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_drop_at_drops_every_connection_of_the_carrier(sim: Simulator) -> None:
    first, second = Esme(sim), Esme(sim, kind="receiver")
    sim.set_fault("alpha", "drop_at", in_s=0.2)
    for esme in (first, second):
        with pytest.raises(smpplib.exceptions.ConnectionError):
            esme.client.read_pdu()
        esme.client.disconnect()
    Esme(sim).close()  # the listener stays open


def test_summary_counts_duplicates_and_keeps_the_senders_reference(sim: Simulator) -> None:
    esme = Esme(sim)
    esme.submit("Alerta 1", user_message_reference=77)
    esme.submit("Alerta 1", user_message_reference=77)  # a re-send after a lost resp
    esme.submit("Alerta 1", dest="56900000001")
    esme.read_until(lambda: len(esme.sent) == 3)
    assert sim.summary("alpha") == {"submits": 3, "messages": 3, "recipients": 2, "duplicate_messages": 1}
    assert sim.messages("alpha", dest="56911112222")[0]["user_message_reference"] == 77
    assert sim.submits("alpha")[0]["user_message_reference"] == 77
    esme.close()


def test_injected_receipt_for_a_known_id_goes_back_to_its_sender(sim: Simulator) -> None:
    esme = Esme(sim)
    esme.submit("hola", dest="56977778888")
    esme.read_until(lambda: esme.sent)
    message_id = esme.sent[0].message_id.decode()
    sim.send_receipt("alpha", message_id, "REJECTD", err=2)
    esme.read_until(lambda: esme.received)
    receipt = esme.received[0]
    assert receipt.source_addr == b"56977778888" and receipt.destination_addr == b"2000"
    fields = RECEIPT_RE.match(receipt.short_message.decode())
    assert (fields["id"], fields["stat"], fields["err"], fields["text"]) == (message_id, "REJECTD", "002", "hola")
    with pytest.raises(InvalidInput):
        sim.send_receipt("alpha", message_id, "LOST")
    esme.close()


def test_handset_texts_quote_the_code_a_wrong_code_or_none() -> None:
    config = HandsetConfig(reply_share=1.0, delay_s=(1.0, 2.0),
                           texts=[("ACK {code}", 1.0), ("ACK {wrong_code}", 1.0), ("SI", 1.0)])
    handsets = Handsets(config, random.Random(3))
    replies = [handsets.reply_to("Simulacro. Responda ACK 4821") for _ in range(300)]
    texts = {text for _, text in replies}  # type: ignore[misc]
    assert {"ACK 4821", "SI"} <= texts
    wrong = [t for t in texts if t.startswith("ACK ") and t != "ACK 4821"]
    assert wrong and all(re.fullmatch(r"ACK \d{4}", t) for t in wrong)
    assert all(1.0 <= delay <= 2.0 for delay, _ in replies)  # type: ignore[misc]
    assert handsets.reply_to("Sin código aquí")[1] in ("ACK", "SI")  # type: ignore[index]
    assert Handsets(HandsetConfig(reply_share=0.0), random.Random(1)).reply_to("ACK 4821") is None


def test_deliver_window_holds_back_deliver_sm_until_answered(sim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory(_carrier(deliver_window=2))
    sock = _raw_bind(sim.port("alpha"), command_id=pdu.BIND_RECEIVER)
    sim.send_mo_batch("alpha", [("5691000000" + str(i), "2000", f"SI {i}") for i in range(5)])
    first = [_read_raw(sock) for _ in range(2)]
    assert sim.wait_for(lambda: sim.status()["carriers"]["alpha"]["pending_deliveries"] == 3)
    for command_id, _, seq, _ in first:
        assert command_id == pdu.DELIVER_SM
        sock.sendall(pdu.encode_pdu(pdu.DELIVER_SM | pdu.RESP, seq, 0, b"\0"))
    for batch in (2, 1):
        rest = [_read_raw(sock) for _ in range(batch)]
        sock.sendall(b"".join(pdu.encode_pdu(pdu.DELIVER_SM | pdu.RESP, seq, 0, b"\0") for _, _, seq, _ in rest))
    assert sim.wait_for(lambda: sim.status()["carriers"]["alpha"]["outstanding_deliveries"] == 0)
    sock.close()


def test_batches_of_replies_and_receipts_through_the_control_port(sim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory(_carrier(), control_port=0)
    esme = Esme(sim)
    for i in range(5):
        esme.submit(f"m{i}", dest=f"5698888000{i}")
    esme.read_until(lambda: len(esme.sent) == 5)
    ids = [p.message_id.decode() for p in esme.sent]
    with ControlClient("127.0.0.1", sim.control_port) as control:
        mos = [{"source": f"5698888000{i}", "dest": "2000", "text": "ACK"} for i in range(5)]
        assert control.request("send_mo_batch", carrier="alpha", messages=mos)["sent"] == 5
        assert control.request("send_receipt_batch", carrier="alpha", message_ids=ids, stat="DELIVRD")["sent"] == 5
        assert control.request("summary", carrier="alpha")["recipients"] == 5
    esme.read_until(lambda: len(esme.received) == 10)
    receipts = [r for r in esme.received if r.esm_class == 0x04]
    assert sorted(RECEIPT_RE.match(r.short_message.decode())["id"] for r in receipts) == sorted(ids)
    assert {r.source_addr.decode() for r in receipts} == {f"5698888000{i}" for i in range(5)}
    esme.close()


def test_demo_config_matches_the_demo_carriers_file() -> None:
    import tomllib

    env = {"SIRENA_CARRIER_ALPHA_PASSWORD": "a", "SIRENA_CARRIER_BETA_PASSWORD": "b"}
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "smsc_sim" / "demo.toml", env=env)
    carriers = tomllib.loads((root / "broadcast" / "carriers.demo.toml").read_text())["carriers"]
    for carrier in config.carriers:
        side = carriers[carrier.name]
        assert (carrier.port, carrier.system_id) == (side["port"], side["system_id"])
        assert carrier.password == env[side["password_env"]]
        assert carrier.handsets.reply_share > 0


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(min_size=1, max_size=700),
    st.text(alphabet=GSM7_BASIC.replace("\x1b", "") + "".join(GSM7_EXTENSION.values()), min_size=1, max_size=700),
))
def test_the_simulator_reads_back_whatever_the_sender_encodes(text: str) -> None:
    # Two codecs written apart (the sender's and the simulator's) must agree on every text.
    assume(not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text))  # lone surrogates cannot be sent
    encoded = encode_parts(text, ref=7)
    octets = b""
    for payload in encoded.parts:
        esm_class = 0x40 if encoded.esm_class_udhi else 0
        _, body, part = pdu.split_udh(payload, esm_class, {})
        assert (part is not None) == (len(encoded.parts) > 1)
        octets += body
    assert decode_text(octets, encoded.data_coding) == text


def test_concatenation_is_read_from_16_bit_udh_and_from_sar_tlvs() -> None:
    udh16 = bytes((6, 0x08, 4, 0x12, 0x34, 3, 2))
    _, body, part = pdu.split_udh(udh16 + b"hola", 0x40, {})
    assert (body, part) == (b"hola", pdu.PartInfo(0x1234, 3, 2))
    sar = {pdu.TAG_SAR_MSG_REF_NUM: b"\x00\x09", pdu.TAG_SAR_TOTAL_SEGMENTS: b"\x02",
           pdu.TAG_SAR_SEGMENT_SEQNUM: b"\x01"}
    assert pdu.split_udh(b"hola", 0, sar)[2] == pdu.PartInfo(9, 2, 1)
    # A header that claims more octets than there are is text, not a crash.
    assert pdu.split_udh(b"\x09ab", 0x40, {}) == (b"", b"\x09ab", None)


def test_message_payload_round_trips_through_the_codec() -> None:
    long_text = ("x" * 300).encode()
    body = pdu.encode_sm(pdu.ShortMessage("2000", "56911112222", short_message=long_text))
    decoded = pdu.decode_sm(body, 0, len(body))
    assert decoded.short_message == b"" and pdu.payload_of(decoded) == long_text


def test_drop_after_counts_from_when_the_fault_is_set_on_a_live_bind(sim: Simulator) -> None:
    esme = Esme(sim)
    for i in range(5):
        esme.submit(f"before {i}")
    esme.read_until(lambda: len(esme.sent) == 5)
    sim.set_fault("alpha", "drop_after", n=2)
    esme.submit("after 1")
    esme.read_until(lambda: len(esme.sent) == 6)  # 1 of 2: still up
    esme.submit("after 2")
    with pytest.raises(smpplib.exceptions.ConnectionError):
        esme.read_until(lambda: len(esme.sent) == 8)
    assert len(esme.sent) == 7  # the second was answered, then the line went down
    esme.client.disconnect()


def test_cli_refuses_a_bad_config_or_a_busy_port_naming_it(tmp_path: Path, sim: Simulator) -> None:
    cli = [sys.executable, "-c", "from alerting.interfaces.cli import main; main()", "smsc-sim"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[carriers]]\nname = "a"\nreceipts = { style = "smoke" }\n')
    result = subprocess.run([*cli, "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and f"{bad}: carriers.a.receipts.style" in result.stderr
    busy = subprocess.run([*cli, "--port", str(sim.port("alpha"))], capture_output=True, text=True, timeout=30)
    assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{sim.port('alpha')}" in busy.stderr


def test_a_message_missing_a_part_is_reported_incomplete(sim: Simulator) -> None:
    encoded = encode_parts("Evacúe la zona costera de inmediato. " * 4, ref=9)
    esme = Esme(sim)
    for part in encoded.parts[:-1]:
        esme.submit(part, esm_class=0x40, data_coding=encoded.data_coding)
    esme.read_until(lambda: len(esme.sent) == len(encoded.parts) - 1)
    assert sim.messages("alpha") == []
    [partial] = sim.incomplete("alpha")
    assert (partial["ref"], partial["total"]) == (9, len(encoded.parts))
    assert partial["have"] == list(range(1, len(encoded.parts)))
    esme.close()


def test_the_simulator_refuses_at_start_an_account_smpp_cannot_carry_naming_the_variable(tmp_path):
    from pathlib import Path

    config = tmp_path / "sim.toml"
    config.write_text('[[carriers]]\nname = "alpha"\nport = 0\npassword_env = "SIM_ALPHA_PW"\n')
    sirena = str(Path(sys.executable).parent / "sirena")
    done = subprocess.run([sirena, "smsc-sim", "--config", str(config)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SIM_ALPHA_PW": "password12"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "carriers.alpha: SIM_ALPHA_PW is 10 characters long; SMPP allows at most 8" in done.stderr
    assert "listening" not in done.stdout
    default = subprocess.run([sirena, "smsc-sim", "--port", "0", "--password", "contraseña"], capture_output=True,
                             text=True, timeout=60)
    assert default.returncode == 2 and "--password holds characters other than printable ASCII" in default.stderr
