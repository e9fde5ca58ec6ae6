"""One ESME connection to a simulated carrier: framing, binds, and answers to every PDU.

Writes are batched: everything produced while handling one TCP read goes out in one
`transport.write`, which is what lets one bind pass well over 20,000 submit_sm/s.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING

from smsc_sim import pdu
from smsc_sim.faults import Fault
from smsc_sim.receipts import Delivery
from smsc_sim.records import Record

if TYPE_CHECKING:
    from smsc_sim.carrier import Carrier

log = logging.getLogger("sirena.smsc_sim")

_BIND_KINDS = {pdu.BIND_TRANSMITTER: "transmitter", pdu.BIND_RECEIVER: "receiver",
               pdu.BIND_TRANSCEIVER: "transceiver"}
_session_ids = itertools.count(1)
_UNBIND_RESP = pdu.UNBIND | pdu.RESP
_ENQUIRE_LINK_RESP = pdu.ENQUIRE_LINK | pdu.RESP


class Session(asyncio.Protocol):
    """An SMPP server-side connection. Lives on the simulator's event loop only."""

    def __init__(self, carrier: Carrier) -> None:
        self.carrier = carrier
        self.id = f"{carrier.name}#{next(_session_ids)}"
        self.bound: str | None = None  # transmitter | receiver | transceiver
        self.transport: asyncio.Transport | None = None
        self.outstanding: dict[int, Delivery] = {}
        self._buf = b""
        self._out: list[bytes] = []
        self._flush_pending = False
        self._closing = False
        self._pdus = 0
        self._drop_fault: Fault | None = None
        self._drop_base = 0
        self._seq = 0

    # ---- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.carrier.sessions.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.carrier.session_closed(self)

    def pause_writing(self) -> None:
        # The ESME is not reading: stop reading from it too, so our buffer stays bounded.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self._closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        size, pos = len(buf), 0
        unpack = pdu.HEADER.unpack_from
        while size - pos >= 4 and not self._closing:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < pdu.HEADER_LEN or length > pdu.MAX_PDU_LEN:
                self._bad_length(buf, pos, length)
                return
            if size - pos < length:
                break
            _, command_id, status, sequence = unpack(buf, pos)
            try:
                self._dispatch(command_id, status, sequence, buf, pos + pdu.HEADER_LEN, pos + length)
            except pdu.PduError as exc:
                self._malformed(command_id, sequence, exc.status, str(exc))
            except Exception:  # a bug here must cost one nack, never the server
                log.exception("carrier %s bind %s: error handling %s", self.carrier.name, self.id,
                              pdu.command_name(command_id))
                self._malformed(command_id, sequence, pdu.ESME_RSYSERR, "internal error")
            pos += length
            self._pdus += 1
            drop = self.carrier.faults.drop_threshold() if self.carrier.faults.faults else None
            if drop is not None and self._drop_reached(drop):
                self.carrier.faults.dropped(drop)
                self.drop(f"drop_after {drop.params['n']} PDUs", rst=bool(drop.params["rst"]))
                return
        self._buf = buf[pos:]
        self._flush()

    def _drop_reached(self, fault: Fault) -> bool:
        # n counts from when the fault was set: a bind that was up before it gets n more PDUs.
        if self._drop_fault is not fault:
            self._drop_fault, self._drop_base = fault, self._pdus - 1
        return self._pdus - self._drop_base >= int(fault.params["n"])

    # ---- output -------------------------------------------------------------------------
    def send(self, data: bytes, delay_s: float = 0.0) -> None:
        """Queue bytes for the ESME; written with everything else produced in this loop turn."""
        if delay_s > 0:
            asyncio.get_running_loop().call_later(delay_s, self.send, data)
            return
        if self._closing:
            return
        self._out.append(data)
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._out and self.transport is not None and not self._closing:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def next_sequence(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def drop(self, reason: str, rst: bool = False) -> None:
        """Close the connection now: what is answered goes out, nothing more is read."""
        if self.transport is None or self._closing:
            return
        self._flush()
        self._closing = True
        self.carrier.unregister(self)  # nothing more is handed to a closing connection
        self.carrier.log.event(self.carrier.name, "dropped", bind=self.id, reason=reason)
        if rst:
            self.transport.abort()
        else:
            self.transport.close()

    def deliver(self, delivery: Delivery) -> None:
        """Send a deliver_sm; it stays outstanding until the ESME answers it."""
        seq = self.next_sequence()
        delivery.attempts += 1
        self.outstanding[seq] = delivery
        self.send(pdu.encode_pdu(pdu.DELIVER_SM, seq, 0, pdu.encode_sm(delivery.sm)))
        note: dict[str, object] = {"kind": delivery.kind, "attempt": delivery.attempts}
        if delivery.stat:
            note["stat"] = delivery.stat
        self._record("out", pdu.DELIVER_SM, seq, None, sm=delivery.sm, message_id=delivery.message_id,
                     text_octets=pdu.payload_of(delivery.sm), note=note, decoded=delivery.text)

    # ---- commands -----------------------------------------------------------------------
    def _dispatch(self, command_id: int, status: int, seq: int, buf: bytes, pos: int, end: int) -> None:
        if command_id == pdu.SUBMIT_SM:
            if self.bound not in ("transmitter", "transceiver"):
                self._answer(pdu.SUBMIT_SM | pdu.RESP, seq, pdu.ESME_RINVBNDSTS, command_id)
                return
            self.carrier.on_submit(self, seq, pdu.decode_sm(buf, pos, end))
        elif command_id == pdu.DELIVER_SM | pdu.RESP:
            self._on_deliver_sm_resp(status, seq)
        elif command_id == pdu.ENQUIRE_LINK:
            self._record("in", command_id, seq, 0)
            if self.carrier.faults.answers_enquire_link():
                self.send(pdu.encode_pdu(_ENQUIRE_LINK_RESP, seq), self.carrier.faults.response_delay())
        elif command_id in _BIND_KINDS:
            self._on_bind(command_id, seq, buf, pos, end)
        elif command_id == pdu.UNBIND:
            self._record("in", command_id, seq, 0)
            self.send(pdu.encode_pdu(_UNBIND_RESP, seq))
            self.carrier.unregister(self)
            self.bound = None
            asyncio.get_running_loop().call_soon(self.drop, "unbind")
        elif command_id in (_ENQUIRE_LINK_RESP, _UNBIND_RESP, pdu.GENERIC_NACK):
            self._record("in", command_id, seq, status)
        else:
            raise pdu.PduError(f"unsupported command {pdu.command_name(command_id)}", pdu.ESME_RINVCMDID)

    def _on_bind(self, command_id: int, seq: int, buf: bytes, pos: int, end: int) -> None:
        fields, _ = pdu.decode_body(command_id, buf, pos, end)
        carrier, kind = self.carrier, _BIND_KINDS[command_id]
        note = {"system_id": fields.get("system_id"), "system_type": fields.get("system_type"), "bind_kind": kind}
        status = self._bind_status(fields)
        if status == -1:
            self._record("in", command_id, seq, None, note={**note, "refused": "close"})
            self.drop("refuse_bind close")
            return
        self._record("in", command_id, seq, status, note=note)
        if status:
            self.send(pdu.encode_pdu(command_id | pdu.RESP, seq, status))
            return
        body = pdu.encode_fields(command_id | pdu.RESP, {"system_id": "SIRENASIM"})
        body += pdu.encode_tlvs({pdu.TAG_SC_INTERFACE_VERSION: b"\x34"})
        self.send(pdu.encode_pdu(command_id | pdu.RESP, seq, 0, body))
        self.bound = kind
        carrier.register(self)

    def _bind_status(self, fields: dict[str, object]) -> int:
        """The bind_resp status; -1 means close the connection instead of answering."""
        carrier = self.carrier
        if self.bound is not None:
            return pdu.ESME_RALYBND
        refusal = carrier.faults.bind_refusal() if carrier.faults.faults else None
        if refusal is not None:
            mode, status = refusal
            return -1 if mode == "close" else status
        if fields.get("system_id") != carrier.config.system_id:
            return pdu.ESME_RINVSYSID
        if fields.get("password") != carrier.config.password:
            return pdu.ESME_RINVPASWD
        if carrier.config.system_type is not None and fields.get("system_type") != carrier.config.system_type:
            return pdu.ESME_RINVSYSTYP
        if len(carrier.bound_sessions()) >= carrier.config.max_binds:
            return pdu.ESME_RBINDFAIL
        return pdu.ESME_ROK

    def _on_deliver_sm_resp(self, status: int, seq: int) -> None:
        delivery = self.outstanding.pop(seq, None)
        self._record("in", pdu.DELIVER_SM | pdu.RESP, seq, status,
                     message_id=delivery.message_id if delivery else None,
                     note=None if delivery else {"unexpected": True})
        if delivery is not None and status != pdu.ESME_ROK:
            self.carrier.retry_delivery(delivery)
        if self.carrier.pending and self.carrier.config.deliver_window:
            self.carrier.pump()

    def _answer(self, resp_id: int, seq: int, status: int, command_id: int) -> None:
        self._record("in", command_id, seq, status)
        self.send(pdu.encode_pdu(resp_id, seq, status))

    def _malformed(self, command_id: int, seq: int, status: int, reason: str) -> None:
        log.warning("carrier %s bind %s: malformed %s: %s", self.carrier.name, self.id,
                    pdu.command_name(command_id), reason)
        self._record("in", command_id, seq, status, note={"malformed": reason, "answer": "generic_nack"})
        self.send(pdu.encode_pdu(pdu.GENERIC_NACK, seq, status))

    def _bad_length(self, buf: bytes, pos: int, length: int) -> None:
        # The stream cannot be re-framed after a bad command_length: nack and close, as SMSCs do.
        header = buf[pos : pos + 16]
        command_id = int.from_bytes(header[4:8], "big") if len(header) >= 8 else 0
        seq = int.from_bytes(header[12:16], "big") if len(header) >= 16 else 0
        self._malformed(command_id, seq, pdu.ESME_RINVCMDLEN, f"command_length {length}")
        self._buf = b""
        self.drop("bad command_length")

    def _record(self, direction: str, command_id: int, seq: int, status: int | None, **kw: object) -> None:
        carrier = self.carrier
        if carrier.log.active:
            carrier.log.add(Record(time.time(), carrier.name, self.id, direction, command_id, seq, status,
                                   gsm7_codings=carrier.config.gsm7_codings, **kw))  # type: ignore[arg-type]
