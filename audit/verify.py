"""Verify the whole chain, streamed in constant memory, against the checkpoints kept outside.

Every event's hash is recomputed in Python from its stored columns (audit/chain.py), its link to
the previous event checked, the sequence checked for gaps, and every signed checkpoint must still
be in the chain with the same hash. The verdict names the first bad event and what is wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from alerting.settings import Settings
from audit import chain
from audit.chain import GENESIS, Head
from audit.checkpoints import Checkpoint, read_checkpoints

# Kinds of problem, stable names for scripts (`--json`) and tests.
CHANGED_CONTENT = "changed_content"
BROKEN_LINK = "broken_link"
GAP = "gap"
REORDERED = "reordered"
MISSING_AFTER_CHECKPOINT = "missing_after_checkpoint"
CHECKPOINT_MISMATCH = "checkpoint_mismatch"
BAD_CHECKPOINT = "bad_checkpoint"

_BATCH = 20_000
_MAX_PROBLEMS = 100  # keep scanning after the first (context for the auditor), within bounds
_REORDER_WINDOW = 64


@dataclass(frozen=True)
class Problem:
    kind: str
    seq: int | None  # the event concerned (None for a bad checkpoint line)
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "seq": self.seq, "message": self.message}


@dataclass
class Verdict:
    count: int = 0
    head: Head = field(default_factory=lambda: Head(0, GENESIS))
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    more_problems: bool = False
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def add(self, problem: Problem) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems = True

    def as_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "ok": self.ok,
            "count": self.count,
            "head_seq": self.head.seq,
            "head_hash": self.head.hash_hex,
            "checkpoints_checked": self.checkpoints,
            "first_bad_seq": first.seq if first else None,
            "first_problem": first.as_dict() if first else None,
            "problems": [p.as_dict() for p in self.problems],
            "more_problems": self.more_problems,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def verify_chain(engine: Engine, settings: Settings) -> Verdict:
    """Recompute the chain in `engine`'s database and check it against its checkpoints.

    Reads one consistent snapshot (REPEATABLE READ, read only), streamed with a server-side
    cursor: memory does not grow with the trail. Checkpoints are read before the snapshot, so
    each names an event the snapshot must hold. Raises ConfigError if checkpoints exist but the
    secret key to authenticate them does not. Never raises for a bad chain: see Verdict.problems.
    """
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT current_database()")
        database = cur.fetchone()[0]
        cur.close()
        raw.rollback()
        checkpoints, bad_lines = read_checkpoints(settings, database)
        raw.set_session(isolation_level="REPEATABLE READ", readonly=True)
        try:
            verdict = _scan(raw, checkpoints)
        finally:
            raw.rollback()
            raw.set_session(isolation_level="READ COMMITTED", readonly=False)
    finally:
        raw.close()
    for bad in bad_lines:
        verdict.add(Problem(BAD_CHECKPOINT, None, f"checkpoint file line {bad.line_no}: {bad.reason}"))
    verdict.elapsed_s = time.perf_counter() - started
    return verdict


def _scan(raw: Any, checkpoints: list[Checkpoint]) -> Verdict:
    verdict = Verdict(checkpoints=len(checkpoints))
    expected_at: dict[int, str] = {}
    for cp in checkpoints:
        expected_at.setdefault(cp.seq, cp.hash_hex)
    cur = raw.cursor(name="sirena_audit_verify")
    cur.itersize = _BATCH
    # ORDER BY e.seq, not seq: the select list renames seq::text to seq, which would sort as text.
    cur.execute(f"SELECT {chain.SELECT_CANONICAL_COLUMNS} FROM audit.events e ORDER BY e.seq")
    prev_seq, prev_hash = 0, GENESIS
    event_hash = chain.event_hash
    try:
        while True:
            rows = cur.fetchmany(_BATCH)
            if not rows:
                break
            for row in rows:
                values = row[:-2]
                stored_prev, stored = bytes(row[-2]), bytes(row[-1])
                seq = int(values[0])
                gap = seq != prev_seq + 1
                if gap:
                    verdict.add(Problem(GAP, min(seq, prev_seq + 1), _gap_message(prev_seq, seq)))
                if event_hash(stored_prev, values) != stored:
                    verdict.add(_content_problem(seq, values, stored_prev, stored))
                elif stored_prev != prev_hash and not gap:  # after a gap the link is broken by definition
                    verdict.add(Problem(BROKEN_LINK, seq, (
                        f"event {seq} does not link to event {prev_seq}: its prev_hash is "
                        f"{stored_prev.hex()[:16]}…, event {prev_seq}'s hash is {prev_hash.hex()[:16]}… "
                        f"(event {prev_seq} was rewritten, or events between them removed)")))
                want = expected_at.pop(seq, None)
                if want is not None and want != stored.hex():
                    verdict.add(Problem(CHECKPOINT_MISMATCH, seq, (
                        f"event {seq} has hash {stored.hex()[:16]}… but a checkpoint recorded "
                        f"{want[:16]}… (the chain was rewritten from here or earlier)")))
                prev_seq, prev_hash = seq, stored
                verdict.count += 1
    finally:
        cur.close()
    verdict.head = Head(prev_seq, prev_hash)
    expected_at.pop(0, None)
    # Checkpoints beyond the end: the tail was cut. Name the first missing event.
    beyond = sorted(s for s in expected_at if s > prev_seq)
    if beyond:
        verdict.add(Problem(MISSING_AFTER_CHECKPOINT, prev_seq + 1, (
            f"events {prev_seq + 1}..{beyond[-1]} are missing: a checkpoint recorded event {beyond[-1]} "
            f"but the chain ends at {prev_seq} (its tail was deleted)")))
    for seq in sorted(s for s in expected_at if s <= prev_seq):
        verdict.add(Problem(GAP, seq, f"event {seq}, recorded by a checkpoint, is missing"))
    verdict.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return verdict


def _gap_message(prev_seq: int, seq: int) -> str:
    if seq > prev_seq + 1:
        missing = f"event {prev_seq + 1}" if seq == prev_seq + 2 else f"events {prev_seq + 1}..{seq - 1}"
        return f"{missing} missing: the chain jumps from {prev_seq} to {seq} (deleted)"
    return f"event {seq} follows event {prev_seq}: sequence numbers out of order or repeated"


def _content_problem(seq: int, values: tuple, stored_prev: bytes, stored: bytes) -> Problem:
    """A hash mismatch: say whether the event was moved (its content hashes under another seq)."""
    for delta in range(1, _REORDER_WINDOW + 1):
        for other in (seq - delta, seq + delta):
            if other > 0 and chain.event_hash(stored_prev, (str(other), *values[1:])) == stored:
                return Problem(REORDERED, seq, (
                    f"event {seq} is event {other} moved: its content was written as event {other} "
                    "(events reordered)"))
    return Problem(CHANGED_CONTENT, seq, (
        f"event {seq} was changed: its content no longer matches its hash {stored.hex()[:16]}…"))
