"""Inbound deliver_sm: every PDU stored raw first, durably, before the SMSC gets its answer.

The bind's reader thread calls `InboundStore.__call__` for each deliver_sm and answers the SMSC
only when it returns; it returns once the PDU's row is committed (group commit: one INSERT and
one COMMIT for every PDU that arrived within a few milliseconds), and raises if it could not be
stored, so the bind answers with an error and the SMSC delivers it again. Interpretation
(receipts → delivery states, replies → meanings) happens afterwards, from these rows.

Replies are interpreted at once (a HELP must reach the operator within seconds, whatever is
being sent). Receipts yield to sending: while send batches wait in the priority queues and the
sending is bounded by this machine (not by the carriers' TPS: CarrierPool.tps_bound), their
interpretation is held (the rows are stored and acknowledged already) for at most
SIRENA_RECEIPTS_MAX_HOLD_S (30 s; 0: never held), then done 2,000 per job, each queueing the rest
of its range behind the batches already waiting (queue_interpretation). A blast then
reaches its last recipient sooner (bench/pipeline.py, 100,000 recipients: 11,060–12,028 msg/s,
7,478–8,084 without the hold) and every receipt is matched sooner too (12.6–13.6 s after the
approval, 15.7–16.7 s without); the delivered counts lag the sent ones by up to the hold meanwhile.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alerting.base import job_ids, runtime
from alerting.base.db import pg_array, transaction
from alerting.base.outbox import PRIORITY_QUEUES, enqueue_now
from alerting.base.settings import Settings
from alerting.base.sms_text.encoding import decode_text

log = logging.getLogger("sirena.inbound")

INBOUND_QUEUE = "flash"  # interpreting replies and receipts goes before any alert's batches
ESM_RECEIPT_MASK = 0x3C  # esm_class bits 2-5: message type
ESM_UDHI = 0x40
# How long the store waits for more PDUs after the first before committing them together. The SMSC
# gets its answer this much later; a lone reply (a HELP at night) is stored 5 ms later, no more.
LINGER_S = 0.005


@dataclass
class _Item:
    carrier: str
    bind: str
    fields: dict[str, Any]
    done: threading.Event | None = None  # a caller waiting (`InboundStore.__call__`)
    error: BaseException | None = None
    answer: Callable[[bool], None] | None = None  # deferred: tells the SMSC once stored (or not)


def classify(fields: dict[str, Any]) -> str:
    """receipt / mo / unknown, from esm_class and the receipt TLVs."""
    if "malformed" in fields:
        return "unknown"
    tlvs = fields.get("tlvs") or {}
    esm = int(fields.get("esm_class") or 0)
    if esm & ESM_RECEIPT_MASK in (0x04, 0x10, 0x20) or "receipted_message_id" in tlvs:
        return "receipt"
    return "mo"


def _jsonable_tlvs(tlvs: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.hex() if isinstance(v, bytes | bytearray) else v) for k, v in tlvs.items()}


_INSERT = """
INSERT INTO inbound_messages (kind, carrier, bind, source_addr, destination_addr, esm_class, data_coding,
                              short_message, text, tlvs, received_at)
SELECT kind, carrier, bind, source_addr, destination_addr, esm_class, data_coding, short_message, text,
       tlvs::jsonb, now()
  FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], %s::smallint[],
              %s::smallint[], %s::bytea[], %s::text[], %s::text[])
       AS u(kind, carrier, bind, source_addr, destination_addr, esm_class, data_coding, short_message, text, tlvs)
RETURNING id, kind
"""


def row_of(carrier: str, bind: str, fields: dict[str, Any]) -> tuple[Any, ...]:
    """The inbound_messages row for one deliver_sm; text decoded when possible, bytes kept as sent."""
    kind = classify(fields)
    payload = fields.get("short_message")
    if payload is None and kind == "unknown":
        payload = fields.get("raw")
    data_coding = fields.get("data_coding")
    text = None
    tlvs = dict(fields.get("tlvs") or {})
    if not payload and "message_payload" in tlvs:
        payload = tlvs["message_payload"]
    if payload is not None and kind != "unknown":
        try:
            decoded = decode_text(payload, int(data_coding or 0), bool(int(fields.get("esm_class") or 0) & ESM_UDHI))
        except Exception:  # stored raw; shown as undecodable
            decoded = None
        text = decoded[0].rstrip("\x00") if decoded is not None else None  # binary or broken UCS-2: raw only
        if text is not None and "\x00" in text:
            text = None  # PostgreSQL text cannot hold NUL (the whole group commit would fail): data, kept raw
    if "malformed" in fields:
        tlvs["malformed"] = fields["malformed"]
    return (kind, carrier, bind, fields.get("source_addr", ""), fields.get("destination_addr", ""),
            fields.get("esm_class"), data_coding, payload, text, json.dumps(_jsonable_tlvs(tlvs)))


class InboundStore:
    """The `on_deliver` callback of a gateway's carrier pool, with group commit."""

    def __init__(self, *, after_store: Callable[[list[int]], None] | None = None,
                 after_receipts: Callable[[list[int]], None] | None = None, max_batch: int = 500,
                 wait_s: float = 10.0, linger_s: float = LINGER_S) -> None:
        """`after_store(ids)` is called with the ids of each commit's rows, but those of receipts
        when `after_receipts` is given: it gets those (replies and receipts are then interpreted
        by separate jobs, the receipts' yielding to sending)."""
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._after_store = after_store
        self._after_receipts = after_receipts
        self._max_batch = max_batch
        self._wait_s = wait_s
        self._linger_s = linger_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbound-store", daemon=True)
        self._thread.start()
        self.stored = 0

    def __call__(self, carrier: str, bind: str, fields: dict[str, Any]) -> None:
        item = _Item(carrier, bind, fields, threading.Event())
        self._queue.put(item)
        if not item.done.wait(self._wait_s):  # type: ignore[union-attr]
            raise TimeoutError("inbound message not stored in time; the SMSC will deliver it again")
        if item.error is not None:
            raise item.error

    def defer(self, carrier: str, bind: str, fields: dict[str, Any], answer: Callable[[bool], None]) -> None:
        """Store without blocking the bind's reader; `answer(ok)` is called after the commit (or failure).

        The SMSC gets deliver_sm_resp only once the row is durable, yet a bind can have hundreds of
        deliver_sm in flight, so a burst of receipts is stored in a few group commits.
        """
        self._queue.put(_Item(carrier, bind, fields, answer=answer))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            # Linger a few milliseconds for the rest of a burst: receipts of a blast come at thousands
            # a second, and without it each commit took only the ~7 that arrived during the last one.
            until = time.monotonic() + self._linger_s
            while len(batch) < self._max_batch:
                left = until - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            self._store(batch)

    def _store(self, batch: list[_Item]) -> None:
        stored: list[tuple[int, str]] = []
        try:
            # One array constant per column (db.pg_array), not a row or an element each.
            columns = [pg_array(c) for c in zip(*(row_of(i.carrier, i.bind, i.fields) for i in batch), strict=True)]
            with transaction() as session:
                cursor = session.connection().connection.cursor()
                try:
                    cursor.execute(_INSERT, columns)
                    stored = [(r[0], r[1]) for r in cursor.fetchall()]
                finally:
                    cursor.close()
        except Exception as exc:
            log.exception("could not store %d inbound messages", len(batch))
            for item in batch:
                item.error = exc
        finally:
            for item in batch:
                if item.done is not None:
                    item.done.set()
            # One transaction: every item stored, or none. The binds' answers go out one write per link.
            _answer_all([item.answer for item in batch if item.answer is not None], batch[0].error is None)
        self.stored += len(stored)
        if self._after_receipts is None:
            hooks = [(self._after_store, [i for i, _ in stored])]
        else:
            hooks = [(self._after_store, [i for i, kind in stored if kind != "receipt"]),
                     (self._after_receipts, [i for i, kind in stored if kind == "receipt"])]
        for hook, ids in hooks:
            if ids and hook is not None:
                try:
                    hook(ids)
                except Exception:
                    log.exception("after_store hook failed (the rows are stored; the sweep processes them)")


def _answer_all(answers: list[Callable[[bool], None]], ok: bool) -> None:
    """Call every answer; answers of one kind that can be written together (a bind's `many`) are."""
    kinds: dict[Any, list[Callable[[bool], None]]] = {}
    for answer in answers:
        kinds.setdefault(getattr(answer, "many", None), []).append(answer)
    for many, same in kinds.items():
        if many is not None:
            many(same, ok)
        else:
            for answer in same:
                answer(ok)


class Coalescer:
    """Calls `fire(min_id, max_id)` at most once per `interval_s`, with the ids poked since the last call.

    Every group commit of inbound rows pokes it; one interpretation job per interval then takes all
    of them, instead of one job per commit crowding the priority queues during a blast. With `hold`,
    it does not fire while `hold()` is true, unless the oldest id poked has waited `max_hold_s`.
    """

    def __init__(self, fire: Callable[[int, int], object], interval_s: float = 0.3,  # fire's result unused
                 hold: Callable[[], bool] | None = None, max_hold_s: float = 30.0) -> None:
        self._fire = fire
        self._interval_s = interval_s
        self._hold = hold
        self._max_hold_s = max_hold_s
        self._lock = threading.Lock()
        self._pending: tuple[int, int] | None = None
        self._since = 0.0  # when the oldest pending id was poked
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbound-coalescer", daemon=True)
        self._thread.start()

    def poke(self, ids: list[int]) -> None:
        with self._lock:
            lo, hi = min(ids), max(ids)
            if self._pending is not None:
                lo, hi = min(lo, self._pending[0]), max(hi, self._pending[1])
            else:
                self._since = time.monotonic()
            self._pending = (lo, hi)
        self._wake.set()

    def _held(self) -> bool:
        if self._hold is None or time.monotonic() - self._since >= self._max_hold_s:
            return False
        try:
            return self._hold()
        except Exception:
            log.exception("could not tell whether to hold inbound interpretation (not holding)")
            return False

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._held():
                time.sleep(self._interval_s)
                self._wake.set()  # look again: the ids stay pending
                continue
            with self._lock:
                pending, self._pending = self._pending, None
            if pending is not None:
                try:
                    self._fire(*pending)
                except Exception:
                    log.exception("could not queue the interpretation of inbound rows (the sweep will)")
            time.sleep(self._interval_s)


def receipts_max_hold_s() -> float:
    """SIRENA_RECEIPTS_MAX_HOLD_S of this process's runtime (its default before it starts)."""
    settings = runtime.settings()
    return float((settings or Settings).receipts_max_hold_s)


def busiest_queue() -> str | None:
    """The highest-priority queue with jobs waiting (send batches, mostly), or None: none waits, or
    Redis cannot say (nothing is held for want of an answer)."""
    rt = runtime.current()
    if rt.redis is None:
        return None
    try:
        with rt.redis.pipeline(transaction=False) as pipe:
            for name in PRIORITY_QUEUES:
                pipe.llen(f"rq:queue:{rt.redis_prefix}{name}")
            depths = pipe.execute()
    except Exception as exc:
        log.warning("queue depths unknown (%s): receipts are not held", exc)
        return None
    return next((name for name, depth in zip(PRIORITY_QUEUES, depths, strict=True) if depth), None)


def send_work_waiting() -> bool:
    """Whether jobs (send batches, mostly) wait in the priority queues: receipts then yield to them."""
    return busiest_queue() is not None


def queue_interpretation(min_id: int, max_id: int, only: str | None = None, part: int = 0) -> bool:
    """Queue `process_inbound(min_id, max_id[, only])` ahead of all waiting work (a HELP must not
    wait). Receipts (`only` "receipts", and `part`, the continuations of one range) go behind the
    waiting jobs of the highest priority that has any instead: every alert already queued at that
    priority (a flash or high alert approved meanwhile) sends before the next slice of receipts.
    Best effort: the sweep takes whatever a lost job leaves. Returns whether Redis took it."""
    job = job_ids.process_inbound(min_id, max_id, only, part)
    args = (min_id, max_id) if only is None else (min_id, max_id, only, part)
    if only != "receipts":
        return enqueue_now(job.func, *args, queue=INBOUND_QUEUE, job_id=job.job_id, at_front=True)
    return enqueue_now(job.func, *args, queue=busiest_queue() or INBOUND_QUEUE, job_id=job.job_id)


def queue_replies(min_id: int, max_id: int) -> bool:
    """Queue the interpretation of the replies (every kind but receipts) in [min_id, max_id]."""
    return queue_interpretation(min_id, max_id, "replies")


def queue_receipts(min_id: int, max_id: int) -> bool:
    """Queue the interpretation of the receipts in [min_id, max_id]."""
    return queue_interpretation(min_id, max_id, "receipts")


def queue_sweep(now_s: float) -> bool:
    """Queue one `sweep()` per 5-second slot of `now_s` (a second scheduler's pass adds nothing)."""
    job = job_ids.sweep_inbound(now_s)
    return enqueue_now(job.func, queue=INBOUND_QUEUE, job_id=job.job_id, timeout_s=300, at_front=True)
