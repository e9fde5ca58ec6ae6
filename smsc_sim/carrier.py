"""One simulated carrier: its listener, binds, message ids, store of pending deliver_sm, faults.

Like a real SMSC it keeps receipts and replies until a receiver or transceiver of the same
account is bound, and re-sends a deliver_sm that was not answered OK (at-least-once).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Any

from smsc_sim import pdu
from smsc_sim.config import CarrierConfig
from smsc_sim.errors import ConfigError
from smsc_sim.faults import FaultSet, SubmitVerdict, check_fault
from smsc_sim.handsets import Handsets
from smsc_sim.receipts import Delivery, build_mo, build_receipt, receipt_id
from smsc_sim.records import Message, PduLog, Record
from smsc_sim.session import Session

_CLEAN = SubmitVerdict()
_SUBMIT_SM_RESP = pdu.SUBMIT_SM | pdu.RESP
MAX_DELIVERY_ATTEMPTS = 20
# A receipt owed, as one string: a 1M alert's receipts 20-120 s late are a million at once, and a
# tuple of their fields took ~500 bytes each (the simulator reached 467 MB), this ~150. NUL-separated
# (an SMPP address cannot hold one): message id, stat, err, the submit's second, the index of its
# (sender, TON/NPI) in Carrier._senders, the recipient, and last the text's first 20 characters.
_Owed = str


class Carrier:
    """Runtime state of one simulated carrier. Used only from the simulator's event loop."""

    def __init__(self, config: CarrierConfig, log: PduLog, rng: random.Random, host: str) -> None:
        self.config = config
        self.name = config.name
        self.log = log
        self.rng = rng
        self.host = host
        self.port = config.port
        self.faults = FaultSet(rng)
        self.handsets = Handsets(config.handsets, rng) if config.handsets.reply_share else None
        self.sessions: set[Session] = set()
        self.receivers: list[Session] = []
        self.pending: deque[Delivery] = deque()
        self.submits: list[Record] = []
        self.messages: list[Message] = []
        self.counts = {"submit_sm": 0, "accepted": 0, "refused": 0, "unanswered": 0, "receipts": 0, "mo": 0}
        self._parts: dict[tuple[str, str, int], dict[int, Record]] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rr = 0
        self._due: list[_Owed] = []
        self._later: dict[int, list[_Owed]] = {}  # receipts by the 10-ms slot they are due in
        self._by_id: dict[str, Record] = {}
        self._senders: list[tuple[str, tuple[int, int, int, int]]] = []  # of receipts owed (few distinct)
        self._sender_index: dict[tuple[str, tuple[int, int, int, int]], int] = {}
        # Ids start at a random point so two runs never hand out the same ids.
        if config.message_id_style == "hex":
            self._next_id = rng.randrange(0x10_0000_0000, 0x80_0000_0000)
        else:
            self._next_id = rng.randrange(1_000_000_000, 2_000_000_000)
        self._hex_ids = config.message_id_style == "hex"

    # ---- listener -----------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on the configured port (0: a free one, kept across restarts)."""
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: Session(self), self.host, self.port)
        except OSError as exc:
            raise ConfigError(f"carriers.{self.name}.port: cannot listen on {self.host}:{self.port} "
                              f"({exc.strerror})") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        for spec in self.config.faults:
            self.apply_fault(spec.kind, spec.params)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.drop_all("simulator stopped")
        for task in list(self._tasks):
            task.cancel()

    def drop_all(self, reason: str, rst: bool = False) -> None:
        for session in list(self.sessions):
            session.drop(reason, rst=rst)

    async def restart(self, after_s: float) -> None:
        """Close the listener and every connection; listen again on the same port after after_s."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.drop_all("restart", rst=True)
        self.log.event(self.name, "restart", after_s=after_s)
        await asyncio.sleep(after_s)
        self._server = await asyncio.get_running_loop().create_server(lambda: Session(self), self.host, self.port)
        self.log.event(self.name, "restarted", port=self.port)

    # ---- faults -------------------------------------------------------------------------
    def apply_fault(self, kind: str, params: dict[str, Any]) -> None:
        """Activate a fault or carry out a one-shot action. Raises InvalidInput."""
        checked = check_fault(kind, params)
        self.log.event(self.name, "fault", kind=kind, **checked)
        loop = asyncio.get_running_loop()
        if kind == "restart":
            task = loop.create_task(self.restart(float(checked["after_s"])))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "drop_at":
            delay = float(checked["in_s"]) if "in_s" in checked else float(checked["at"]) - time.time()
            loop.call_later(max(0.0, delay), self.drop_all, "drop_at")
        else:
            self.faults.set(kind, checked)

    def clear_faults(self, kind: str | None = None) -> None:
        self.faults.clear(kind)
        self.log.event(self.name, "faults cleared", kind=kind or "all")

    # ---- binds --------------------------------------------------------------------------
    def bound_sessions(self) -> list[Session]:
        return [s for s in self.sessions if s.bound]

    def register(self, session: Session) -> None:
        if session.bound in ("receiver", "transceiver"):
            self.receivers.append(session)
            self.pump()

    def unregister(self, session: Session) -> None:
        if session in self.receivers:
            self.receivers.remove(session)

    def session_closed(self, session: Session) -> None:
        self.sessions.discard(session)
        self.unregister(session)
        if session.outstanding:
            # Sent but never answered: a real SMSC sends them again on the next bind.
            self.pending.extendleft(reversed(list(session.outstanding.values())))
            session.outstanding.clear()
            self.pump()

    # ---- submit_sm ----------------------------------------------------------------------
    def on_submit(self, session: Session, seq: int, sm: pdu.ShortMessage) -> None:
        """Judge, record and answer one submit_sm; plan its receipt and any handset reply."""
        self.counts["submit_sm"] += 1
        verdict = self.faults.judge_submit(sm.destination_addr) if self.faults.faults else _CLEAN
        payload = sm.short_message or sm.tlvs.get(pdu.TAG_MESSAGE_PAYLOAD, b"")
        if sm.esm_class & 0x40 or pdu.TAG_SAR_MSG_REF_NUM in sm.tlvs:
            _, octets, part = pdu.split_udh(payload, sm.esm_class, sm.tlvs)
        else:
            octets, part = payload, None
        status = verdict.status if verdict.answer else None
        message_id = self._new_id() if verdict.on_air else None
        record = Record(time.time(), self.name, session.id, "in", pdu.SUBMIT_SM, seq, status, sm, message_id,
                        part, octets, None, self.config.gsm7_codings)
        if self.log.active:
            self.log.add(record)
        if not verdict.on_air:
            self.counts["refused" if verdict.answer else "unanswered"] += 1
            if verdict.answer:
                session.send(pdu.encode_pdu(_SUBMIT_SM_RESP, seq, verdict.status), verdict.delay_s)
            return
        assert message_id is not None
        self.counts["accepted"] += 1
        if self.log.keep:
            self.submits.append(record)
            self._by_id[message_id] = record
        self._assemble(record)
        wants = sm.registered_delivery & 0x03
        if wants in (1, 2):
            first = verdict.answer and bool(self.faults.faults) and self.faults.dlr_before_resp()
            self._plan_receipt(record, wants, immediate=first)
        if verdict.answer:
            session.send(pdu.encode_pdu(_SUBMIT_SM_RESP, seq, 0, message_id.encode("ascii") + b"\0"),
                         verdict.delay_s)
        else:
            self.counts["unanswered"] += 1

    def _new_id(self) -> str:
        n = self._next_id
        self._next_id = n + 1
        return f"{n:x}" if self._hex_ids else str(n)

    def _assemble(self, record: Record) -> None:
        sm, part = record.sm, record.part
        assert sm is not None
        if part is None or part.total <= 1:
            self._complete(Message(self.name, sm.source_addr, sm.destination_addr, [record], None, record.t))
            return
        key = (sm.source_addr, sm.destination_addr, part.ref)
        parts = self._parts.setdefault(key, {})
        parts[part.index] = record
        if len(parts) < part.total:
            return
        del self._parts[key]
        message = Message(self.name, sm.source_addr, sm.destination_addr, [parts[i] for i in sorted(parts)],
                          part.ref, record.t)
        if self.log.active:
            self.log.event(self.name, "reassembled", **message.as_dict())
        self._complete(message)

    def _complete(self, message: Message) -> None:
        if self.log.keep:
            self.messages.append(message)
        if self.handsets is not None:
            reply = self.handsets.reply_to(message.text)
            if reply is not None:
                delay, text = reply
                mo = build_mo(message.dest, message.source, text)
                asyncio.get_running_loop().call_later(delay, self.enqueue, mo)

    # ---- receipts and MO ----------------------------------------------------------------
    def _plan_receipt(self, record: Record, wants: int, immediate: bool) -> None:
        sm = record.sm
        assert sm is not None and record.message_id is not None
        stat, err = self._fate(sm.destination_addr)
        if wants == 2 and stat == "DELIVRD":  # "on failure only"
            return
        sender = (sm.source_addr, (sm.dest_addr_ton, sm.dest_addr_npi, sm.source_addr_ton, sm.source_addr_npi))
        index = self._sender_index.get(sender)
        if index is None:
            index = self._sender_index[sender] = len(self._senders)
            self._senders.append(sender)
        owed = "\0".join((record.message_id, stat, str(err), str(int(record.t)), str(index), sm.destination_addr,
                          record.text[:20]))
        if immediate:
            self._send_receipt(owed)
            return
        low, high = self.config.receipts.delay_s
        delay = low if low == high else self.rng.uniform(low, high)
        if delay > 0:
            # One timer per 10-ms slot, not per receipt: at thousands a second the timers' heap was
            # a fifth of the simulator's CPU.
            loop = asyncio.get_running_loop()
            slot = int((loop.time() + delay) * 100) + 1
            if slot not in self._later:
                self._later[slot] = []
                loop.call_at(slot / 100, self._send_later, slot)
            self._later[slot].append(owed)
            return
        # Immediate receipts share one loop callback: a timer per receipt costs more than the receipt.
        if not self._due:
            asyncio.get_running_loop().call_soon(self._send_due)
        self._due.append(owed)

    def _send_later(self, slot: int) -> None:
        for owed in self._later.pop(slot, ()):
            self._send_receipt(owed)

    def _send_due(self) -> None:
        due, self._due = self._due, []
        for owed in due:
            self._send_receipt(owed)

    def _fate(self, destination: str) -> tuple[str, int]:
        if self.faults.faults and (fault := self.faults.unreachable(destination)) is not None:
            stat = str(fault.params["stat"])
            return stat, self.config.receipts.errors.get(stat, 0)
        failures = self.config.receipts.failures
        if failures:
            roll, acc = self.rng.random(), 0.0
            for state, share in failures.items():
                acc += share
                if roll < acc:
                    return state, self.config.receipts.errors.get(state, 0)
        return "DELIVRD", 0

    def _send_receipt(self, owed: _Owed) -> None:
        message_id, stat, err, submitted, index, recipient, text = owed.split("\0", 6)
        sender, tons = self._senders[int(index)]
        self.send_receipt(message_id, stat, int(err), source=recipient, dest=sender, submitted=float(submitted),
                          text=text, tons=tons)

    def send_receipt(self, message_id: str, stat: str, err: int = 0, *, source: str, dest: str,
                     submitted: float, text: str = "", style: str | None = None,
                     tons: tuple[int, int, int, int] = (1, 1, 1, 1)) -> None:
        """Queue a receipt for `message_id` (known or not) to this carrier's receivers."""
        receipts = self.config.receipts
        copies = self.faults.receipt_copies() if self.faults.faults else 1
        for _ in range(copies):
            delivery = build_receipt(
                message_id=receipt_id(message_id, receipts.id_style, self.config.message_id_style),
                stat=stat, err=err, style=style or receipts.style, source=source, dest=dest,
                submitted=submitted, done=time.time(), text=text,
                source_ton=tons[0], source_npi=tons[1], dest_ton=tons[2], dest_npi=tons[3],
            )
            delivery.message_id = message_id
            self.counts["receipts"] += 1
            self.enqueue(delivery)

    def find_submit(self, message_id: str) -> Record | None:
        return self._by_id.get(message_id)

    def enqueue(self, delivery: Delivery) -> None:
        if delivery.kind == "mo" and delivery.attempts == 0:
            self.counts["mo"] += 1
        self.pending.append(delivery)
        self.pump()

    def pump(self) -> None:
        """Hand pending deliver_sm to the bound receivers, round robin, within each one's window."""
        window = self.config.deliver_window
        while self.pending and self.receivers:
            if window:
                open_ = [s for s in self.receivers if len(s.outstanding) < window]
                if not open_:
                    return  # resumed by the next deliver_sm_resp
            else:
                open_ = self.receivers
            self._rr = (self._rr + 1) % len(open_)
            open_[self._rr].deliver(self.pending.popleft())

    def retry_delivery(self, delivery: Delivery) -> None:
        """The ESME refused a deliver_sm: try again later, as SMSCs do, up to a limit."""
        if delivery.attempts >= MAX_DELIVERY_ATTEMPTS:
            self.log.event(self.name, "delivery abandoned", kind=delivery.kind, message_id=delivery.message_id)
            return
        delay = min(2.0 ** (delivery.attempts - 1), 30.0)
        asyncio.get_running_loop().call_later(delay, self._requeue, delivery)

    def _requeue(self, delivery: Delivery) -> None:
        self.pending.append(delivery)
        self.pump()

    def status(self) -> dict[str, Any]:
        binds: dict[str, int] = {}
        for session in self.bound_sessions():
            binds[session.bound or "?"] = binds.get(session.bound or "?", 0) + 1
        return {
            "port": self.port,
            "binds": binds,
            "counts": dict(self.counts),
            "pending_deliveries": len(self.pending),
            "outstanding_deliveries": sum(len(s.outstanding) for s in self.sessions),
            "faults": self.faults.describe(),
            "incomplete_messages": len(self._parts),
        }

    def incomplete(self) -> list[dict[str, Any]]:
        """Concatenated messages with parts still missing: what a handset could not show."""
        return [{"carrier": self.name, "source": source, "dest": dest, "ref": ref,
                 "total": next(iter(parts.values())).part.total,  # type: ignore[union-attr]
                 "have": sorted(parts)}
                for (source, dest, ref), parts in list(self._parts.items())]
