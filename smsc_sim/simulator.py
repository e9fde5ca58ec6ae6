"""The simulator as a whole: every carrier, the control port, and the API tests and the demo use.

    sim = Simulator(SimConfig(carriers=[CarrierConfig(name="alpha", port=0, password="pw")]))
    sim.start_in_thread()
    ... smpplib.client.Client("127.0.0.1", sim.port("alpha")) ...
    sim.set_fault("alpha", "throttle", every_nth=5)
    assert len(sim.submits("alpha")) == 10
    sim.stop()

Every public method may be called from any thread: work is handed to the simulator's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from smsc_sim import pdu
from smsc_sim.carrier import Carrier
from smsc_sim.config import SimConfig
from smsc_sim.control import serve_control
from smsc_sim.errors import InvalidInput, NotFound
from smsc_sim.receipts import build_mo
from smsc_sim.records import PduLog

T = TypeVar("T")
_FLUSH_EVERY_S = 0.5


class Simulator:
    """Several simulated SMSCs (one TCP port each) on one asyncio loop."""
    def __init__(self, config: SimConfig) -> None:
        config.validate()
        self.config = config
        self.rng = random.Random(config.seed)
        self.log = PduLog(config.log_path, config.keep_records)
        self.carriers = {c.name: Carrier(c, self.log, random.Random(self.rng.random()), config.host)
                         for c in config.carriers}
        self.control_port: int | None = config.control_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._control: asyncio.Server | None = None
        self._flusher: asyncio.TimerHandle | None = None
        self._closed = False

    # ---- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Open every carrier's port (and the control port) on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._closed = False
        for carrier in self.carriers.values():
            await carrier.start()
        if self.control_port is not None:

            self._control = await serve_control(self, self.config.host, self.control_port)
            self.control_port = self._control.sockets[0].getsockname()[1]
        self._schedule_flush()

    async def aclose(self) -> None:
        """Close every port and connection, flush the log."""
        if self._closed:
            return
        self._closed = True
        if self._control is not None:
            self._control.close()
            self._control = None
        for carrier in self.carriers.values():
            await carrier.close()
        if self._flusher is not None:
            self._flusher.cancel()
        await asyncio.sleep(0)  # let connection_lost callbacks run before the log closes
        self.log.close()
        if self._stopped is not None:
            self._stopped.set()

    async def serve_forever(self) -> None:
        """Start (unless started already), then run until `stop()`/`aclose()` or cancellation."""
        if self._stopped is None or self._closed:
            await self.start()
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            await self.aclose()

    def start_in_thread(self, timeout_s: float = 5.0) -> Simulator:
        """Run on a new event loop in a daemon thread; returns once every port listens."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                loop.run_until_complete(self.aclose())  # close the ports that did open
                loop.close()
                ready.set_exception(exc)
                return
            ready.set_result(None)
            assert self._stopped is not None
            try:
                loop.run_until_complete(self._stopped.wait())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="smsc-sim", daemon=True)
        self._thread.start()
        ready.result(timeout=timeout_s)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop a simulator started with start_in_thread (or serve_forever). Idempotent."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._stopped is not None and self._stopped.is_set():
            return
        if threading.current_thread() is self._thread:
            loop.create_task(self.aclose())
            return
        asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> Simulator:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _schedule_flush(self) -> None:
        self.log.flush()
        assert self._loop is not None
        self._flusher = self._loop.call_later(_FLUSH_EVERY_S, self._schedule_flush)

    def _call(self, fn: Callable[[], T], timeout_s: float = 5.0) -> T:
        """Run fn on the simulator's loop and return its result (directly if already there)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the simulator is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout_s)

    def _carrier(self, name: str) -> Carrier:
        carrier = self.carriers.get(name)
        if carrier is None:
            raise NotFound(f"no simulated carrier {name!r}", fields={"carrier": f"one of {', '.join(self.carriers)}"})
        return carrier

    # ---- the API ------------------------------------------------------------------------
    def port(self, carrier: str) -> int:
        """The TCP port the carrier listens on (the chosen one when configured as 0)."""
        return self._carrier(carrier).port

    def ports(self) -> dict[str, int]:
        return {name: c.port for name, c in self.carriers.items()}

    def set_fault(self, carrier: str, kind: str, **params: Any) -> None:
        """Activate a fault (see faults.KINDS). Raises NotFound, InvalidInput."""
        target = self._carrier(carrier)
        self._call(lambda: target.apply_fault(kind, params))

    def clear_faults(self, carrier: str, kind: str | None = None) -> None:
        """Clear one fault kind, or all of the carrier's faults."""
        target = self._carrier(carrier)
        self._call(lambda: target.clear_faults(kind))

    def submits(self, carrier: str | None = None) -> list[dict[str, Any]]:
        """Every submit_sm accepted onto "the air" (one per part), oldest first."""
        carriers = [self._carrier(carrier)] if carrier else list(self.carriers.values())
        records = [r for c in carriers for r in list(c.submits)]
        records.sort(key=lambda r: r.t)
        return [r.as_dict() for r in records]

    def submit_count(self, carrier: str | None = None) -> int:
        """How many submit_sm were accepted (cheap: no decoding)."""
        carriers = [self._carrier(carrier)] if carrier else list(self.carriers.values())
        return sum(c.counts["accepted"] for c in carriers)

    def messages(self, carrier: str | None = None, dest: str | None = None) -> list[dict[str, Any]]:
        """Whole messages that reached recipients (concatenated parts reassembled), oldest first."""
        carriers = [self._carrier(carrier)] if carrier else list(self.carriers.values())
        found = [m for c in carriers for m in list(c.messages) if dest is None or m.dest == dest]
        found.sort(key=lambda m: m.t)
        return [m.as_dict() for m in found]

    def messages_by_recipient(self, carrier: str | None = None) -> dict[str, list[str]]:
        """recipient → texts of the whole messages they got (a duplicate shows twice)."""
        out: dict[str, list[str]] = {}
        for message in self.messages(carrier):
            out.setdefault(message["dest"], []).append(message["text"])
        return out

    def incomplete(self, carrier: str | None = None) -> list[dict[str, Any]]:
        """Concatenated messages still missing parts (source, dest, ref, total, parts held)."""
        carriers = [self._carrier(carrier)] if carrier else list(self.carriers.values())
        return self._call(lambda: [m for c in carriers for m in c.incomplete()])

    def summary(self, carrier: str | None = None) -> dict[str, int]:
        """Counts of what reached the air: submits (parts), whole messages, distinct recipients,
        and duplicate messages (same recipient and text seen again)."""
        carriers = [self._carrier(carrier)] if carrier else list(self.carriers.values())
        messages = [m for c in carriers for m in list(c.messages)]
        distinct = {(m.dest, m.text) for m in messages}
        return {
            "submits": sum(len(c.submits) for c in carriers),
            "messages": len(messages),
            "recipients": len({m.dest for m in messages}),
            "duplicate_messages": len(messages) - len(distinct),
        }

    def pdus(self, carrier: str | None = None, command: str | None = None) -> list[dict[str, Any]]:
        """Every logged PDU (received "in" and deliver_sm sent "out"), optionally filtered."""
        records = list(self.log.records)
        return [d for d in (r.as_dict() for r in records)
                if (carrier is None or d["carrier"] == carrier) and (command is None or d["command"] == command)]

    def status(self) -> dict[str, Any]:
        """Ports, binds, counts, pending deliveries and active faults per carrier."""
        return self._call(lambda: {"control_port": self.control_port,
                                   "carriers": {n: c.status() for n, c in self.carriers.items()}})

    def send_mo(self, carrier: str, source: str, dest: str, text: str | bytes, data_coding: int | None = None) -> None:
        """Inject a mobile-originated message from handset `source` to `dest` (our number); bytes
        are sent as they are, with `data_coding` (default 4, 8-bit data)."""
        target = self._carrier(carrier)
        self._call(lambda: target.enqueue(build_mo(source, dest, text, data_coding)))

    def send_pdu(self, carrier: str, command_id: int, body: bytes = b"", status: int = 0) -> int:
        """Write one PDU exactly as given (a malformed deliver_sm, an unknown command) to the carrier's
        first bound receiver; returns its sequence number. What the ESME answers is logged ("in").
        Raises InvalidInput when no receiver is bound."""
        target = self._carrier(carrier)

        def send() -> int:
            if not target.receivers:
                raise InvalidInput(f"carrier {carrier} has no bound receiver", fields={"carrier": "not bound"})
            session = target.receivers[0]
            sequence = session.next_sequence()
            session.send(pdu.encode_pdu(command_id, sequence, status, body))
            return sequence

        return self._call(send)

    def send_mo_batch(self, carrier: str, messages: Iterable[tuple[str, str, str]]) -> int:
        """Inject many MOs, each (source, dest, text), in one hop to the loop; returns how many."""
        target = self._carrier(carrier)
        deliveries = [build_mo(source, dest, text) for source, dest, text in messages]

        def send() -> None:
            for delivery in deliveries:
                target.enqueue(delivery)

        self._call(send)
        return len(deliveries)

    def send_receipt(self, carrier: str, message_id: str, stat: str = "DELIVRD", err: int = 0, *,
                     source: str | None = None, dest: str | None = None, style: str | None = None,
                     text: str = "") -> None:
        """Inject a receipt, for a known id (addresses from its submit_sm) or any other id.

        `stat` is an appendix-B word (DELIVRD, EXPIRED, UNDELIV, REJECTD, ENROUTE, ACCEPTD ...).
        Raises NotFound for an unknown carrier, InvalidInput for an unknown state.
        """
        self.send_receipt_batch(carrier, [message_id], stat, err, source=source, dest=dest, style=style, text=text)

    def send_receipt_batch(self, carrier: str, message_ids: Iterable[str], stat: str = "DELIVRD", err: int = 0,
                           *, source: str | None = None, dest: str | None = None, style: str | None = None,
                           text: str = "") -> int:
        """Inject a receipt for each id in one hop to the loop (see send_receipt); returns how many."""
        if stat not in pdu.MESSAGE_STATES:
            raise InvalidInput(f"unknown receipt state {stat!r}", fields={"stat": ", ".join(pdu.MESSAGE_STATES)})
        target = self._carrier(carrier)
        ids = list(message_ids)

        def send() -> None:
            for message_id in ids:
                record = target.find_submit(message_id)
                sm = record.sm if record else None
                target.send_receipt(
                    message_id, stat, err,
                    source=source or (sm.destination_addr if sm else "0"),
                    dest=dest or (sm.source_addr if sm else "0"),
                    submitted=record.t if record else time.time(),
                    text=text or (record.text if record else ""),
                    style=style,
                )

        self._call(send, timeout_s=30.0)
        return len(ids)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0, poll_s: float = 0.01) -> bool:
        """Poll `predicate` until it is true or the timeout passes; returns its last value."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(poll_s)
        return predicate()
