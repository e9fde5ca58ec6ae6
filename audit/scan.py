"""Recompute the hashes of one range of the chain: the inner loop of `verify`, kept light so it can
run in worker processes (it imports only psycopg2, the standard library and audit.chain).

Fast path: the rows arrive by COPY in PostgreSQL's text format, their time as ISO timestamptz
text in UTC (cheaper for the server than to_char), each hash computed from the previous event's
hash; a match proves both the content and the link. A version 2 event (audit/chain.py) is
hashed almost as COPY sends it: its canonical form is COPY's own escaping, so only the time is
rewritten. Any row that does not match is re-read with the authoritative canonical SELECT
(audit/chain.py) after the COPY and diagnosed, so the fast path can only cost time, never a wrong
verdict. Events not sealed yet have no place in the chain: `scan_unsealed` checks their content
against their content hash.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audit import chain

CHANGED_CONTENT = "changed_content"
BROKEN_LINK = "broken_link"
GAP = "gap"
REORDERED = "reordered"
CHECKPOINT_MISMATCH = "checkpoint_mismatch"

MAX_SUSPECTS = 1_000
_REORDER_WINDOW = 64

_CONTENT_COLUMNS = ("at, actor_kind, actor_name, actor_operator_id, actor_token_id, action, subject_type, "
                    "subject_id, payload, origin_address, origin_user_agent, origin_interface, outcome, reason")
_COPY_COLUMNS = f"seq, hash, content_hash, {_CONTENT_COLUMNS}"
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass(frozen=True)
class Problem:
    kind: str
    seq: int | None  # the event concerned (None: not about one sealed event, e.g. a checkpoint line)
    message: str
    event_id: int | None = None  # an unsealed event (it has no seq yet)

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "seq": self.seq, "event_id": self.event_id, "message": self.message}


@dataclass
class RangeResult:
    """What one range holds: its ends (to stitch ranges together) and its problems."""

    count: int = 0
    first_seq: int | None = None
    first_prev_hash: bytes | None = None
    last_seq: int | None = None
    last_hash: bytes | None = None
    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False
    rechecked: int = 0  # rows the fast path could not confirm, re-read with the canonical SELECT
    server_cpu_s: float | None = None  # CPU of the backend that served the range, when it is local


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: _UNESCAPE.get(m.group(1), m.group(1)), value)


def _iso_utc(text: str) -> str:
    """'2026-11-27 14:00:00.12+00' (DateStyle ISO, TimeZone UTC) → '2026-11-27T14:00:00.120000Z'."""
    if len(text) == 22:
        return f"{text[:10]}T{text[11:19]}.000000Z"
    return f"{text[:10]}T{text[11:-3].ljust(15, '0')}Z"


def _iso_utc_bytes(at: bytes) -> bytes:
    """The same for bytes: PostgreSQL drops trailing zeros of the fraction, and the fraction itself
    on a whole second ('2026-11-27 14:00:00+00')."""
    clock = at[11:-3]
    if len(clock) == 8:
        clock += b"."
    return at[:10] + b"T" + clock.ljust(15, b"0") + b"Z"


class _Sink:
    """Receives one COPY row per write() and checks it against the running chain.

    `write` is a closure over local state, not a method over attributes: it runs once per event,
    and attribute look-ups were a third of its time; `finish` stores the totals once, after the
    COPY. One split, joined buffers and hexlify halved its cost again (5.8–6.7 → 3.2–3.8 µs per
    event on 300,000 events of the benchmark's trail).
    """

    def __init__(self, first_prev: bytes, prev_seq: int | None, expected: dict[int, str]) -> None:
        self.result = RangeResult()
        self.expected = expected
        self.suspects: list[tuple[int, bytes, bool]] = []  # (seq, previous row's hash, after a gap)
        self.write, self.finish = self._writer(first_prev, prev_seq)

    def _writer(self, prev_hash: bytes, prev_seq: int | None
                ) -> tuple[Callable[[bytes | str], None], Callable[[], None]]:
        """(write, finish): write checks one row; finish stores the range's count and last event."""
        sha, tag_v2, hexlify = hashlib.sha256, chain.VERSION_TAG_V2, binascii.b2a_hex
        result, suspects, expected = self.result, self.suspects, self.expected
        next_seq = None if prev_seq is None else prev_seq + 1
        count = 0

        def write(data: bytes | str) -> None:
            nonlocal prev_hash, next_seq, count
            line = data.encode() if isinstance(data, str) else data
            # seq, hash, content_hash, at, then the rest of the content as COPY sent it.
            seq_text, stored_hex, content_hex, at, rest = line.split(b"\t", 4)
            seq = int(seq_text)
            stored_hex = stored_hex[3:]  # bytea in COPY text is '\\x<hex>'
            if content_hex == b"\\N":
                digest = self._version_1(seq, at, rest, prev_hash)
                ok = hexlify(digest) == stored_hex
            else:
                # The time in the canonical form (_iso_utc_bytes, inlined: this runs once per event).
                clock = at[11:-3]
                if len(clock) != 15:
                    clock = (clock + b"." if len(clock) == 8 else clock).ljust(15, b"0")
                content = sha(b"".join((tag_v2, at[:10], b"T", clock, b"Z\t", rest[:-1]))).digest()
                digest = sha(b"".join((prev_hash, content, seq.to_bytes(8, "big")))).digest()
                # The stored content hash must agree too.
                ok = hexlify(digest) == stored_hex and hexlify(content) == content_hex[3:]
            if seq != next_seq and next_seq is not None:
                self._add(chain_gap(next_seq - 1, seq))
                gap = True
            else:
                gap = False
            if not ok:
                if len(suspects) < MAX_SUSPECTS:
                    suspects.append((seq, prev_hash, gap))
                else:
                    result.truncated = True
                digest = _stored_hash(stored_hex)
            if expected and seq in expected and expected[seq].encode() != stored_hex:
                self._add(Problem(CHECKPOINT_MISMATCH, seq, (
                    f"event {seq} has hash {stored_hex[:16].decode(errors='replace')}… but a checkpoint recorded "
                    f"{expected[seq][:16]}… (the chain was rewritten from here or earlier)")))
            if count == 0:
                result.first_seq = seq
            count += 1
            prev_hash, next_seq = digest, seq + 1

        def finish() -> None:
            result.count = count
            if count:
                result.last_seq, result.last_hash = next_seq - 1, prev_hash  # type: ignore[operator]

        return write, finish

    def _version_1(self, seq: int, at: bytes, rest: bytes, prev_hash: bytes) -> bytes:
        """An event written before migration 0011: length-prefixed fields, seq included."""
        fields = [str(seq), _iso_utc(at.decode()), *rest[:-1].decode().split("\t")]
        parts = [chain.VERSION_TAG]
        for v in fields:
            if v == "\\N":
                parts.append("~")
            else:
                if "\\" in v:
                    v = _unescape(v)
                parts.append(f"{len(v)}:{v}")
        return hashlib.sha256(prev_hash + "\n".join(parts).encode()).digest()

    def _add(self, problem: Problem) -> None:
        if len(self.result.problems) < MAX_SUSPECTS:
            self.result.problems.append(problem)
        else:
            self.result.truncated = True


def _stored_hash(stored_hex: bytes) -> bytes:
    """The stored hash, which the next event must link to (an empty one if it is not even hex)."""
    try:
        return bytes.fromhex(stored_hex.decode())
    except ValueError:
        return b""


def chain_gap(prev_seq: int, seq: int) -> Problem:
    if seq > prev_seq + 1:
        missing = f"event {prev_seq + 1}" if seq == prev_seq + 2 else f"events {prev_seq + 1}..{seq - 1}"
        return Problem(GAP, prev_seq + 1, f"{missing} missing: the chain jumps from {prev_seq} to {seq} (deleted)")
    return Problem(GAP, seq, f"event {seq} follows event {prev_seq}: sequence numbers out of order or repeated")


def scan_range(conn: Any, lo: int, hi: int, *, first: bool, expected: dict[int, str]) -> RangeResult:
    """Check events lo..hi on `conn` (a psycopg2 connection inside the snapshot to verify).

    `first`: this range starts the chain (its first event must be 1 and link to GENESIS);
    otherwise the caller stitches it to the previous range with first_seq/first_prev_hash.
    `expected` maps checkpointed seqs to their hashes (hex).
    """
    cur = conn.cursor()
    cur.execute("SET LOCAL timezone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SELECT pg_backend_pid()")
    backend = _BackendCpu(cur.fetchone()[0])
    first_prev = chain.GENESIS
    if not first:
        cur.execute("SELECT prev_hash FROM audit.events WHERE seq >= %s AND seq <= %s ORDER BY seq LIMIT 1", (lo, hi))
        row = cur.fetchone()
        if row is None:
            return RangeResult()
        first_prev = bytes(row[0]) if row[0] is not None else b""
    sink = _Sink(first_prev, 0 if first else None, expected)
    # Stream the range in seq order by the seq index: a sort (or a bitmap scan and a sort, which
    # the planner picks on stale statistics) held the whole range and spilled it to disk first.
    cur.execute("SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off")
    cur.copy_expert(f"COPY (SELECT {_COPY_COLUMNS} FROM audit.events WHERE seq >= {int(lo)} AND seq <= {int(hi)} "
                    "ORDER BY seq) TO STDOUT", sink)
    sink.finish()
    result = sink.result
    result.first_prev_hash = first_prev if result.count else None
    result.server_cpu_s = backend.used_s()
    result.rechecked = len(sink.suspects)
    for seq, prev_hash, after_gap in sink.suspects:
        problem = _diagnose(cur, seq, prev_hash, after_gap or (not first and seq == result.first_seq))
        if problem is not None:
            result.problems.append(problem)
    cur.close()
    return result


class _BackendCpu:
    """CPU seconds used by a PostgreSQL backend on this machine (None when it is remote or hidden):
    lets the benchmark report CPU per event, which a busy machine does not distort as wall time."""

    def __init__(self, pid: int) -> None:
        self.process: Any = None
        self.start = 0.0
        try:
            import psutil

            self.process = psutil.Process(pid)
            self.start = self._cpu()
        except Exception:
            self.process = None

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def used_s(self) -> float | None:
        if self.process is None:
            return None
        try:
            return self._cpu() - self.start
        except Exception:
            return None


def _diagnose(cur: Any, seq: int, expected_prev: bytes, skip_link: bool) -> Problem | None:
    """Re-read one event with the authoritative canonical SELECT and say what is wrong with it."""
    cur.execute(f"SELECT {chain.SELECT_CANONICAL_COLUMNS} FROM audit.events e WHERE e.seq = %s", (seq,))
    row = cur.fetchone()
    values = row[:-3]
    stored_content, stored_prev, stored = (None if v is None else bytes(v) for v in row[-3:])
    if stored is None or stored_prev is None:
        return Problem(CHANGED_CONTENT, seq, f"event {seq} was changed: its hash or prev_hash was removed")
    version = 1 if stored_content is None else 2
    content, digest = chain.recompute(values, stored_prev, version=version)
    if stored_content is not None and content != stored_content:  # both None for a version-1 event
        return Problem(CHANGED_CONTENT, seq, (
            f"event {seq} was changed: its content no longer matches its content hash {stored_content.hex()[:16]}…"))
    if digest != stored:
        return _content_problem(seq, values, stored_prev, stored, version)
    if stored_prev != expected_prev and not skip_link:
        return Problem(BROKEN_LINK, seq, (
            f"event {seq} does not link to event {seq - 1}: its prev_hash is {stored_prev.hex()[:16]}…, "
            f"event {seq - 1}'s hash is {expected_prev.hex()[:16]}… (event {seq - 1} was rewritten)"))
    return None


def _content_problem(seq: int, values: tuple, stored_prev: bytes, stored: bytes, version: int) -> Problem:
    """A hash mismatch: say whether the event was moved (its content hashes under another seq)."""
    for delta in range(1, _REORDER_WINDOW + 1):
        for other in (seq - delta, seq + delta):
            if other > 0 and chain.recompute((str(other), *values[1:]), stored_prev, version=version)[1] == stored:
                return Problem(REORDERED, seq, (
                    f"event {seq} is event {other} moved: its content was written as event {other} "
                    "(events reordered)"))
    return Problem(CHANGED_CONTENT, seq, (
        f"event {seq} was changed: its content no longer matches its hash {stored.hex()[:16]}…"))


def scan_unsealed(conn: Any) -> tuple[int, list[Problem]]:
    """Check the events of `conn`'s snapshot that are not sealed yet: each one's content against the
    content hash stored at insert. Returns (how many, problems)."""
    sink = _UnsealedSink()
    cur = conn.cursor()
    cur.execute("SET LOCAL timezone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'")
    cur.copy_expert(f"COPY (SELECT id, content_hash, {_CONTENT_COLUMNS} FROM audit.events WHERE seq IS NULL "
                    "ORDER BY id) TO STDOUT", sink)
    cur.close()
    return sink.count, sink.problems


class _UnsealedSink:
    def __init__(self) -> None:
        self.count = 0
        self.problems: list[Problem] = []

    def write(self, data: bytes | str) -> None:
        line = data.encode() if isinstance(data, str) else data
        t1 = line.index(b"\t")
        t2 = line.index(b"\t", t1 + 1)
        t3 = line.index(b"\t", t2 + 1)
        event_id = int(line[:t1])
        content = hashlib.sha256(chain.VERSION_TAG_V2 + _iso_utc_bytes(line[t2 + 1:t3]) + line[t3:-1]).digest()
        self.count += 1
        if content.hex().encode() != line[t1 + 4:t2] and len(self.problems) < MAX_SUSPECTS:
            self.problems.append(Problem(CHANGED_CONTENT, None, (
                f"unsealed event id {event_id} was changed: its content no longer matches its content hash"),
                event_id=event_id))


def scan_range_in_snapshot(dsn: str, snapshot: str, lo: int, hi: int, first: bool,
                           expected: dict[int, str]) -> RangeResult:
    """scan_range in a worker process, on its own connection, inside the parent's exported snapshot."""
    import psycopg2

    conn = psycopg2.connect(dsn, application_name="sirena-audit-verify")
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
        return scan_range(conn, lo, hi, first=first, expected=expected)
    finally:
        conn.rollback()
        conn.close()
