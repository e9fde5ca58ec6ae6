"""One SMPP bind to a carrier: a TCP connection kept open, windowed submit_sm, inbound deliver_sm.

smpplib 2.2 gives us the connection, bind/unbind and PDU objects, but its Client is not thread
safe, does not reconnect (python-smpplib/python-smpplib#118), raises out of `listen()` on any error
status and writes deliver_sm_resp outside any lock. So a Bind wraps one smpplib Client with:

- a lock around every write (and sequence numbers from a counter that is atomic under the GIL);
- a reader thread framing PDUs from a buffered socket (one recv per burst, not two per PDU),
  answering deliver_sm / enquire_link / unbind and matching submit_sm_resp to the window;
- a maintenance thread: (re)connect with exponential backoff and jitter, enquire_link when idle,
  a dead-link watchdog, and response timeouts that free window slots;
- a listener (the carrier pool) told about every response, timeout and loss of the link.

The hot path (encoding submit_sm, parsing submit_sm_resp) is done with struct here: smpplib's PDU
objects cost ~29 µs to build against ~2 µs, and the bytes are the same (tests compare them).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import smpplib.client
import smpplib.consts
import smpplib.exceptions

from alerting.base.errors import SirenaError
from broadcast.carriers import BindMode, CarrierConfig

log = logging.getLogger("sirena.binds")

SUBMIT_SM, SUBMIT_SM_RESP, DELIVER_SM, DELIVER_SM_RESP = 0x04, 0x80000004, 0x05, 0x80000005
GENERIC_NACK, UNBIND, UNBIND_RESP = 0x80000000, 0x06, 0x80000006
ENQUIRE_LINK, ENQUIRE_LINK_RESP, DATA_SM, ALERT_NOTIFICATION = 0x15, 0x80000015, 0x103, 0x102
ESME_ROK, ESME_RINVCMDLEN, ESME_RINVCMDID, ESME_RSYSERR = 0x00, 0x02, 0x03, 0x08
_HEADER = struct.Struct(">LLLL")
_MAX_PDU = 64 * 1024
_STABLE_S = 10.0  # a link up this long has proved itself: its next reconnect starts without delay
_TLV_NAMES = {code: name for name, code in smpplib.consts.OPTIONAL_PARAMS.items()}
_STRING_TLVS = {"receipted_message_id", "additional_status_info_text", "callback_num_atag"}

# deliver_sm's mandatory fields in order (SMPP 3.4 §4.6.1): C-strings and single octets.
_DELIVER_SM_FIELDS = (
    "service_type", "source_addr_ton", "source_addr_npi", "source_addr", "dest_addr_ton", "dest_addr_npi",
    "destination_addr", "esm_class", "protocol_id", "priority_flag", "schedule_delivery_time",
    "validity_period", "registered_delivery", "replace_if_present_flag", "data_coding", "sm_default_msg_id",
    "sm_length",
)
_CSTRING_FIELDS = {"service_type", "source_addr", "destination_addr", "schedule_delivery_time", "validity_period"}

OnDeliver = Callable[[str, str, dict[str, Any]], None]


class CarrierUnavailable(SirenaError):
    """No bind to a carrier could be brought up; the message names the carrier and why."""

    code = "carrier_unavailable"
    exit_code = 7


class BindState(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
    STOPPED = "stopped"


@dataclass(slots=True, eq=False)
class Part:
    """One submit_sm: a part of an outbound message. `job` and `index` belong to the listener."""

    job: Any
    index: int
    source: tuple[str, int, int]  # source_addr, TON, NPI
    destination: str  # digits, no '+'
    payload: bytes
    data_coding: int
    esm_class: int
    attempt: int = 0
    sent_at: float = 0.0


class BindListener(Protocol):
    """What a bind tells its owner. Called from the bind's reader or maintenance thread."""

    def on_bind_up(self, bind: Bind) -> None: ...
    def on_bind_down(self, bind: Bind, reason: str, unanswered: list[Part]) -> None: ...
    def on_submit_resp(self, bind: Bind, part: Part, status: int, message_id: str | None) -> None: ...
    def on_submit_timeout(self, bind: Bind, parts: list[Part]) -> None: ...
    def on_window_free(self, bind: Bind) -> None: ...


@dataclass
class BindStats:
    """Counters for health(): only ever incremented, read without a lock."""

    submitted: int = 0
    responses: int = 0
    errors: int = 0
    timeouts: int = 0
    late_responses: int = 0
    delivers: int = 0
    malformed: int = 0
    connects: int = 0
    connect_failures: int = 0
    last_error: str = ""
    last_error_at: float = 0.0
    up_since: float = 0.0
    attempt_times: list[float] = field(default_factory=list)


class _Client(smpplib.client.Client):
    """smpplib's client with a read buffer and a thread-safe sequence counter."""

    _socket: socket.socket | None

    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, allow_unknown_opt_params=True)
        self._rbuf = bytearray()
        self._seq = itertools.count(1)

    def next_sequence(self) -> int:
        return next(self._seq) & 0x7FFFFFFF or next(self._seq)

    def _recv_exact(self, exact_size: int) -> bytes:  # used by smpplib's bind/unbind
        while len(self._rbuf) < exact_size:
            self._fill()
        data = bytes(self._rbuf[:exact_size])
        del self._rbuf[:exact_size]
        return data

    def _fill(self) -> None:
        sock = self._socket
        if sock is None:
            raise smpplib.exceptions.ConnectionError("closed")
        chunk = sock.recv(262144)
        if not chunk:
            raise smpplib.exceptions.ConnectionError("connection closed by the carrier")
        self._rbuf += chunk

    def read_frames(self) -> list[bytes]:
        """Every complete PDU now buffered, reading the socket once if none is. Raises on EOF."""
        if len(self._rbuf) < 16 or len(self._rbuf) < int.from_bytes(self._rbuf[:4], "big"):
            self._fill()
        frames = []
        buf, pos = self._rbuf, 0
        while len(buf) - pos >= 16:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < 16 or length > _MAX_PDU:
                raise smpplib.exceptions.PDUError(f"bad command_length {length}: stream out of step")
            if len(buf) - pos < length:
                break
            frames.append(bytes(buf[pos : pos + length]))
            pos += length
        del buf[:pos]
        return frames

    def shutdown(self) -> None:
        sock = self._socket
        if sock is not None:
            # shutdown() wakes a recv() blocked in the reader thread; close() alone does not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._socket = None
        self.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED


class Bind:
    """One windowed SMPP bind to `carrier`, reconnecting on its own until stopped.

    `submit()` is the only hot-path call: thread-safe, it writes the parts if the link is up and
    returns how many it took. Window accounting is the caller's (`free_slots()`); the bind never
    blocks a sender on the window.
    """

    def __init__(self, carrier: CarrierConfig, index: int, listener: BindListener, on_deliver: OnDeliver) -> None:
        self.carrier = carrier
        self.name = f"{carrier.name}-{index}"
        self.window = carrier.window
        self.listener = listener
        self.on_deliver = on_deliver
        self.state = BindState.DOWN
        self.stats = BindStats()
        self.pending: dict[int, Part] = {}  # seq → part, in send order
        self._lock = threading.Lock()
        self._tx: _Client | None = None
        self._rx: _Client | None = None  # only in transmitter_receiver mode
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._unbound = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_rx = 0.0
        self._enquire_sent_at = 0.0
        self._prefixes: dict[tuple[str, int, int], bytes] = {}
        self._tail = self._encode_tail(carrier)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; `state` becomes UP once bound."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._maintain, name=f"bind-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = 5.0) -> None:
        """Wait up to `drain_s` for outstanding responses, unbind cleanly, close. Idempotent."""
        deadline = time.monotonic() + drain_s
        while self.pending and time.monotonic() < deadline and self.state is BindState.UP:
            time.sleep(0.01)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=drain_s + 5)
        self.state = BindState.STOPPED

    def free_slots(self) -> int:
        return self.window - len(self.pending) if self.state is BindState.UP else 0

    # -- sending -------------------------------------------------------------------------------

    def submit(self, parts: list[Part]) -> int:
        """Write `parts` as submit_sm PDUs in one syscall; returns how many were taken (0 or all).

        A part taken is in the window until its submit_sm_resp, a timeout or the link's loss,
        each reported to the listener exactly once.
        """
        with self._lock:
            client = self._tx
            if self.state is not BindState.UP or client is None:
                return 0
            now = time.monotonic()
            chunks = []
            for part in parts:
                seq = client.next_sequence()
                part.sent_at = now
                self.pending[seq] = part
                chunks.append(self._encode_submit(seq, part))
            try:
                client._socket.sendall(b"".join(chunks))  # type: ignore[union-attr]  # UP: it is open
            except OSError as exc:
                reason = f"write failed: {exc}"
            else:
                self.stats.submitted += len(parts)
                return len(parts)
        # Written partly or not at all: the parts are unanswered, so the loss handler reports them.
        self._lose(client, reason)
        return len(parts)

    def _encode_submit(self, seq: int, part: Part) -> bytes:
        prefix = self._prefixes.get(part.source)
        if prefix is None:
            addr, ton, npi = part.source
            c = self.carrier
            prefix = c.service_type.encode() + b"\0" + bytes((ton, npi)) + addr.encode() + b"\0"
            prefix += bytes((c.dest_ton, c.dest_npi))
            self._prefixes[part.source] = prefix
        payload = part.payload
        body = b"".join(
            (
                prefix,
                part.destination.encode(),
                b"\0",
                bytes((part.esm_class, 0, 0)),  # esm_class, protocol_id, priority_flag
                self._tail,
                bytes((part.data_coding, 0, len(payload))),  # data_coding, sm_default_msg_id, sm_length
                payload,
            )
        )
        return _HEADER.pack(16 + len(body), SUBMIT_SM, 0, seq) + body

    @staticmethod
    def _encode_tail(carrier: CarrierConfig) -> bytes:
        # schedule_delivery_time (empty), validity_period, registered_delivery, replace_if_present
        validity = (carrier.validity_period or "").encode()
        return b"\0" + validity + b"\0" + bytes((carrier.registered_delivery, 0))

    # -- connecting ----------------------------------------------------------------------------

    def _maintain(self) -> None:
        backoff, up_at = 0.5, -_STABLE_S
        while not self._stop.is_set():
            if self.state is not BindState.UP:
                # A link that died young (a carrier dropping us right after bind) keeps its backoff:
                # no tight loop of bind, drop, bind.
                if time.monotonic() - up_at < _STABLE_S:
                    self._backoff_wait(backoff)
                    backoff = min(backoff * 2, self.carrier.reconnect_max_s)
                elif up_at > 0:
                    backoff = 0.5
                self.state = BindState.CONNECTING
                if self._connect():
                    up_at = time.monotonic()
                    self.listener.on_bind_up(self)
                    continue
                self.state = BindState.DOWN
                self._backoff_wait(backoff)
                backoff = min(backoff * 2, self.carrier.reconnect_max_s)
                up_at = -_STABLE_S
                continue
            self._tick()
            self._wake.wait(0.1)
            self._wake.clear()
        self._unbind()

    def _backoff_wait(self, backoff: float) -> None:
        # Full jitter: the binds of every worker must not hammer a recovering SMSC in step.
        self._stop.wait(random.uniform(backoff / 2, backoff))

    def _connect(self) -> bool:
        self.stats.attempt_times = [t for t in self.stats.attempt_times if t > time.monotonic() - 60]
        self.stats.attempt_times.append(time.monotonic())
        try:
            timeout = max(self.carrier.response_timeout_s, 1.0)
            tx = self._open("bind_transceiver" if self._rx_mode is None else "bind_transmitter", timeout)
            rx = None
            if self._rx_mode is not None:
                try:
                    rx = self._open("bind_receiver", timeout)
                except Exception:
                    tx.shutdown()
                    raise
        except smpplib.exceptions.PDUError as exc:
            status = exc.args[1] if len(exc.args) > 1 else 0
            desc = smpplib.consts.DESCRIPTIONS.get(status, "bind refused")
            self._note_error(f"carrier {self.carrier.name} refused the bind: {desc} (0x{status:02X})")
            return False
        except (OSError, smpplib.exceptions.ConnectionError) as exc:
            what = str(exc) or type(exc).__name__
            where = f"{self.carrier.host}:{self.carrier.port}"
            self._note_error(f"carrier {self.carrier.name}: cannot connect to {where}: {what}")
            return False
        with self._lock:
            self._tx, self._rx = tx, rx
            self._last_rx = time.monotonic()
            self._enquire_sent_at = 0.0
            self._unbound.clear()
            self.state = BindState.UP
        self.stats.connects += 1
        self.stats.up_since = time.time()
        for client in (tx, rx):
            if client is not None:
                threading.Thread(target=self._read, args=(client,), name=f"rx-{self.name}", daemon=True).start()
        log.info("bind %s up (%s:%s)", self.name, self.carrier.host, self.carrier.port)
        return True

    @property
    def _rx_mode(self) -> str | None:
        return "receiver" if self.carrier.bind_mode is BindMode.TRANSMITTER_RECEIVER else None

    def _open(self, command: str, timeout: float) -> _Client:
        client = _Client(self.carrier.host, self.carrier.port, timeout)
        client.logger.setLevel(logging.WARNING)  # smpplib logs every PDU at DEBUG/INFO
        try:
            client.connect()
            getattr(client, command)(
                system_id=self.carrier.system_id,
                password=self.carrier.password.reveal(),
                system_type=self.carrier.system_type,
            )
        except BaseException:
            client.shutdown()
            raise
        sock = client._socket
        assert sock is not None  # bound just now
        # A write blocked this long means the carrier stopped reading: the link is dead.
        sock.settimeout(timeout)
        # Writes are already batched per burst; Nagle would hold a submit_sm behind the ACK of a
        # deliver_sm_resp (40 ms delayed ACK): 30 submits/s at window 1 with receipts on.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client

    def _note_error(self, message: str) -> None:
        self.stats.connect_failures += 1
        self.stats.last_error, self.stats.last_error_at = message, time.time()
        log.warning("bind %s: %s", self.name, message)

    # -- reading -------------------------------------------------------------------------------

    def _read(self, client: _Client) -> None:
        listener = self.listener
        while True:
            try:
                frames = client.read_frames()
            except TimeoutError:
                continue  # idle: the maintenance thread's watchdog decides when a link is dead
            except (OSError, smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError) as exc:
                if not self._stop.is_set():
                    self._lose(client, str(exc) or "connection closed")
                return
            self._last_rx = time.monotonic()
            answered: list[tuple[Part, int, str | None]] = []
            with self._lock:  # one acquisition per burst, not per response
                for raw in frames:
                    command = int.from_bytes(raw[4:8], "big")
                    if command != SUBMIT_SM_RESP and command != GENERIC_NACK:
                        continue
                    status, seq = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
                    part = self.pending.pop(seq, None)
                    if part is None:
                        self.stats.late_responses += 1  # answered after its timeout: maybe a duplicate
                        continue
                    message_id = None
                    if command == SUBMIT_SM_RESP and status == ESME_ROK:
                        end = raw.find(b"\0", 16)
                        message_id = raw[16 : end if end >= 0 else len(raw)].decode("ascii", "replace")
                    elif command == GENERIC_NACK:
                        status = status or ESME_RSYSERR
                    answered.append((part, status, message_id))
            try:
                if answered:
                    self.stats.responses += len(answered)
                    for part, status, message_id in answered:
                        if status:
                            self.stats.errors += 1
                        listener.on_submit_resp(self, part, status, message_id)
                for raw in frames:
                    _length, command, status, seq = _HEADER.unpack_from(raw)
                    if command != SUBMIT_SM_RESP and command != GENERIC_NACK:
                        self._dispatch(client, raw, command, status, seq)
                if answered:
                    listener.on_window_free(self)
            except Exception:
                # The reader must outlive any bug above it: a dead reader is a silent dead bind.
                log.exception("bind %s: error handling a PDU burst", self.name)

    def _dispatch(self, client: _Client, raw: bytes, command: int, status: int, seq: int) -> None:
        if command in (DELIVER_SM, DATA_SM):
            self._deliver(client, raw, command, seq)
        elif command == ENQUIRE_LINK:
            self._write(client, _HEADER.pack(16, ENQUIRE_LINK_RESP, 0, seq))
        elif command == ENQUIRE_LINK_RESP:
            self._enquire_sent_at = 0.0
        elif command == UNBIND:
            self._write(client, _HEADER.pack(16, UNBIND_RESP, 0, seq))
            self._lose(client, "carrier sent unbind")
        elif command == UNBIND_RESP:
            self._unbound.set()
        elif command == ALERT_NOTIFICATION or command & 0x80000000:
            pass  # responses we did not ask for, and alert_notification, need no answer
        else:
            self.stats.malformed += 1
            log.warning("bind %s: unexpected command 0x%08X, answered generic_nack", self.name, command)
            self._write(client, _HEADER.pack(16, GENERIC_NACK, ESME_RINVCMDID, seq))

    def _deliver(self, client: _Client, raw: bytes, command: int, seq: int) -> None:
        self.stats.delivers += 1
        try:
            fields = parse_deliver_sm(raw) if command == DELIVER_SM else {"raw": raw, "data_sm": True}
        except ValueError as exc:
            # Stored raw all the same: the inbound side keeps what nobody could read.
            self.stats.malformed += 1
            log.warning("bind %s: malformed deliver_sm seq %d: %s", self.name, seq, exc)
            self._hand_over({"raw": raw, "malformed": str(exc)})
            self._write(client, _HEADER.pack(16, GENERIC_NACK, ESME_RINVCMDLEN, seq))
            return
        answer = DeliverAnswer(self, client, DELIVER_SM_RESP if command == DELIVER_SM else 0x80000103, seq)
        defer = getattr(self.on_deliver, "defer", None)
        if defer is not None:
            # The store answers once the PDU is committed; the reader goes on reading meanwhile.
            try:
                defer(self.carrier.name, self.name, fields, answer)
            except Exception:
                log.exception("bind %s: on_deliver failed", self.name)
                answer(False)
            return
        answer(self._hand_over(fields))

    def _hand_over(self, fields: dict[str, Any]) -> bool:
        try:
            self.on_deliver(self.carrier.name, self.name, fields)
            return True
        except Exception:
            log.exception("bind %s: on_deliver failed", self.name)
            return False

    def _write(self, client: _Client, data: bytes) -> None:
        with self._lock:
            sock = client._socket
            if sock is None:
                return
            try:
                sock.sendall(data)
            except OSError as exc:
                reason = f"write failed: {exc}"
            else:
                return
        self._lose(client, reason)

    # -- failure handling ----------------------------------------------------------------------

    def _lose(self, client: _Client, reason: str) -> None:
        """The link `client` belongs to is gone: close both halves, report what was unanswered."""
        with self._lock:
            if client is not self._tx and client is not self._rx:
                return  # already handled
            for c in (self._tx, self._rx):
                if c is not None:
                    c.shutdown()
            self._tx = self._rx = None
            self.state = BindState.DOWN
            unanswered = list(self.pending.values())
            self.pending.clear()
        self.stats.last_error, self.stats.last_error_at = reason, time.time()
        level = logging.DEBUG if self._stop.is_set() else logging.WARNING  # closing: expected
        log.log(level, "bind %s down: %s (%d unanswered)", self.name, reason, len(unanswered))
        self.listener.on_bind_down(self, reason, unanswered)
        self._wake.set()

    def _tick(self) -> None:
        now = time.monotonic()
        cutoff = now - self.carrier.response_timeout_s
        with self._lock:
            old = []
            for seq, part in self.pending.items():  # in send order: stop at the first young one
                if part.sent_at > cutoff:
                    break
                old.append(seq)
            expired = [self.pending.pop(seq) for seq in old]
            tx = self._tx
        if expired:
            self.stats.timeouts += len(expired)
            self.listener.on_submit_timeout(self, expired)
            self.listener.on_window_free(self)
        if tx is None:
            return
        if self._enquire_sent_at and now - self._enquire_sent_at > self.carrier.response_timeout_s:
            self._lose(tx, "no answer to enquire_link: dead link")
        elif not self._enquire_sent_at and now - self._last_rx > self.carrier.enquire_link_s:
            self._enquire_sent_at = now
            for client in (tx, self._rx):
                if client is not None:
                    self._write(client, _HEADER.pack(16, ENQUIRE_LINK, 0, client.next_sequence()))

    def _unbind(self) -> None:
        with self._lock:
            clients = [c for c in (self._tx, self._rx) if c is not None]
        for client in clients:
            self._write(client, _HEADER.pack(16, UNBIND, 0, client.next_sequence()))
        if clients:
            self._unbound.wait(2.0)
        with self._lock:
            for client in clients:
                client.shutdown()
            self._tx = self._rx = None
            unanswered = list(self.pending.values())
            self.pending.clear()
            self.state = BindState.STOPPED
        if unanswered:
            self.listener.on_bind_down(self, "stopped", unanswered)


class DeliverAnswer:
    """The deliver_sm_resp (or data_sm_resp) a bind owes for one inbound PDU, written when called.

    A failed hand-over is answered with a system error so the SMSC delivers it again; an answer the
    link can no longer carry is left unanswered, so the SMSC delivers it again too.
    """

    __slots__ = ("bind", "client", "resp", "seq")

    def __init__(self, bind: Bind, client: _Client, resp: int, seq: int) -> None:
        self.bind, self.client, self.resp, self.seq = bind, client, resp, seq

    def pdu(self, ok: bool) -> bytes:
        return _HEADER.pack(17, self.resp, ESME_ROK if ok else ESME_RSYSERR, self.seq) + b"\0"

    def __call__(self, ok: bool) -> None:
        DeliverAnswer.many([self], ok)

    @staticmethod
    def many(answers: list[DeliverAnswer], ok: bool) -> None:
        """Write these answers in one write per link, in order: a burst of receipts stored by one
        group commit costs one syscall per bind, not one per PDU."""
        links: dict[tuple[int, int], list[DeliverAnswer]] = {}
        for answer in answers:
            links.setdefault((id(answer.bind), id(answer.client)), []).append(answer)
        for same in links.values():
            _write_answers(same, ok)


def _write_answers(same: list[DeliverAnswer], ok: bool) -> None:
    first = same[0]
    try:
        first.bind._write(first.client, b"".join(a.pdu(ok) for a in same))
    except Exception as exc:  # the link went away: unanswered, so the SMSC delivers them again
        log.info("bind %s: %d deliver_sm_resp not written: %s", first.bind.name, len(same), exc)


def parse_deliver_sm(raw: bytes) -> dict[str, Any]:
    """The raw fields of a deliver_sm PDU, TLVs by name (unknown ones as `tlv_0xNNNN`).

    Raises ValueError when the PDU does not hold what its lengths say.
    """
    pos = 16
    out: dict[str, Any] = {"raw": raw, "sequence": int.from_bytes(raw[12:16], "big")}

    def cstring(name: str) -> None:
        nonlocal pos
        end = raw.find(b"\0", pos)
        if end < 0:
            raise ValueError(f"{name} is not NUL-terminated")
        out[name] = raw[pos:end].decode("latin-1")
        pos = end + 1

    def octet(name: str) -> None:
        nonlocal pos
        if pos >= len(raw):
            raise ValueError(f"PDU ends before {name}")
        out[name] = raw[pos]
        pos += 1

    for name in _DELIVER_SM_FIELDS:
        if name in _CSTRING_FIELDS:
            cstring(name)
        else:
            octet(name)
    end = pos + out["sm_length"]
    if end > len(raw):
        raise ValueError("short_message runs past the PDU")
    out["short_message"] = raw[pos:end]
    pos = end
    tlvs: dict[str, Any] = {}
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ValueError("truncated TLV header")
        tag, size = struct.unpack_from(">HH", raw, pos)
        value = raw[pos + 4 : pos + 4 + size]
        if len(value) != size:
            raise ValueError(f"TLV 0x{tag:04X} runs past the PDU")
        name = _TLV_NAMES.get(tag, f"tlv_0x{tag:04X}")
        if name in _STRING_TLVS:
            tlvs[name] = value.rstrip(b"\0").decode("latin-1")
        elif name == "message_state" and size == 1:
            tlvs[name] = value[0]
        else:
            tlvs[name] = value
        pos += 4 + size
    out["tlvs"] = tlvs
    return out
