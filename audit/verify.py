"""Verify the whole chain, streamed in constant memory, against the checkpoints kept outside.

The trail is sealed first (audit/seal.py), so every committed event is in the chain; how many
events waited for that seal, and for how long, is reported (a warning past UNSEALED_WARN_S: until
sealed, an event's deletion leaves no trace in the chain). Every event's
hash is recomputed in Python from its stored columns (audit/chain.py, audit/scan.py), its link to
the previous event checked, the sequence checked for gaps, and every signed checkpoint must still
be in the chain with the same hash. The verdict names the first bad event and what is wrong.
Events committed after that seal but before the snapshot are checked against their content hash
(they have no link yet). A large trail is checked in seq ranges by worker processes that share one
snapshot (pg_export_snapshot), then the ranges are stitched together.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from alerting.base.settings import Settings
from audit.chain import GENESIS, Head
from audit.checkpoints import read_checkpoints
from audit.scan import (
    BROKEN_LINK,
    CHANGED_CONTENT,
    CHECKPOINT_MISMATCH,
    GAP,
    REORDERED,
    Problem,
    RangeResult,
    chain_gap,
    scan_range,
    scan_unsealed,
)
from audit.seal import Backlog, seal_committed, unsealed_backlog

MISSING_AFTER_CHECKPOINT = "missing_after_checkpoint"
BAD_CHECKPOINT = "bad_checkpoint"
__all__ = ["BAD_CHECKPOINT", "BROKEN_LINK", "CHANGED_CONTENT", "CHECKPOINT_MISMATCH", "GAP",
           "MISSING_AFTER_CHECKPOINT", "REORDERED", "Problem", "Verdict", "verify_chain"]

_MAX_PROBLEMS = 100  # keep scanning after the first (context for the auditor), within bounds
MIN_EVENTS_PER_WORKER = 250_000  # below this, starting processes costs more than it saves


@dataclass
class Verdict:
    count: int = 0
    head: Head = field(default_factory=lambda: Head(0, GENESIS))
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    more_problems: bool = False
    elapsed_s: float = 0.0
    workers: int = 1
    rechecked: int = 0
    server_cpu_s: float | None = None
    sealed: int = 0  # events this verify sealed before checking
    unsealed: int = 0  # events committed after that seal: content checked, not yet linked
    backlog: Backlog | None = None  # what waited for its seal when verify started (before its own seal)

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

    def finish(self) -> None:
        """Order problems by event (the first bad event first), those about no event last."""
        self.problems.sort(key=lambda p: (p.seq is None, p.seq or 0, p.event_id or 0))
        if len(self.problems) > _MAX_PROBLEMS:
            del self.problems[_MAX_PROBLEMS:]
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
            "sealed": self.sealed,
            "unsealed": self.unsealed,
            "unsealed_before": self.backlog.as_dict() if self.backlog else None,
            "warnings": [f"{w}; nothing sealed them until this verify" for w in
                         (self.backlog.warning() if self.backlog else None,) if w],
            "elapsed_s": round(self.elapsed_s, 3),
            "workers": self.workers,
        }


def verify_chain(engine: Engine, settings: Settings, *, workers: int | None = None,
                 min_events_per_worker: int = MIN_EVENTS_PER_WORKER, seal: bool = True) -> Verdict:
    """Seal what has committed (unless seal=False), then recompute the chain in `engine`'s database
    and check it against its checkpoints.

    Reads one consistent snapshot (REPEATABLE READ, read only), streamed by COPY: memory does not
    grow with the trail. Checkpoints are read before the snapshot, so each names an event the
    snapshot must hold. `workers` (default: up to 4, one per CPU) processes share the snapshot
    when the trail has at least `min_events_per_worker` events per worker. Raises ConfigError if
    checkpoints exist but the secret key to authenticate them does not; never raises for a bad
    chain: see Verdict.problems.
    """
    started = time.perf_counter()
    with engine.connect() as conn:  # how long events waited unsealed: a window for an unnoticed deletion
        backlog = unsealed_backlog(conn)
    sealed = seal_committed(engine) if seal else 0
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT current_database()")
        database = _one(cur)[0]
        raw.rollback()
        checkpoints, bad_lines = read_checkpoints(settings, database)
        expected: dict[int, str] = {}
        for cp in checkpoints:
            expected.setdefault(cp.seq, cp.hash_hex)
        raw.set_session(isolation_level="REPEATABLE READ", readonly=True)
        try:
            cur = raw.cursor()
            cur.execute("SELECT pg_export_snapshot(), min(seq), max(seq) FROM audit.events")
            snapshot, lo, hi = _one(cur)
            ranges = _ranges(lo, hi, workers, min_events_per_worker)
            if len(ranges) <= 1:
                results = [scan_range(raw.dbapi_connection, lo or 1, hi or 0, first=True, expected=expected)]
            else:
                dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
                results = _scan_parallel(dsn, snapshot, ranges, expected)
            unsealed, unsealed_problems = scan_unsealed(raw.dbapi_connection)
        finally:
            raw.rollback()
            raw.set_session(isolation_level="READ COMMITTED", readonly=False)
    finally:
        raw.close()
    verdict = _stitch(results)
    verdict.sealed, verdict.unsealed, verdict.backlog = sealed, unsealed, backlog
    for problem in unsealed_problems:
        verdict.add(problem)
    verdict.workers = len(ranges)
    verdict.checkpoints = len(checkpoints)
    _check_tail(verdict, expected)
    for bad in bad_lines:
        verdict.add(Problem(BAD_CHECKPOINT, None, f"checkpoint file line {bad.line_no}: {bad.reason}"))
    verdict.finish()
    verdict.elapsed_s = time.perf_counter() - started
    return verdict


def _one(cur: Any) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:  # an aggregate SELECT always returns a row
        raise RuntimeError("expected one row")
    return tuple(row)


def _ranges(lo: int | None, hi: int | None, workers: int | None, per_worker: int) -> list[tuple[int, int]]:
    if lo is None or hi is None:
        return [(1, 0)]
    lo = min(lo, 1)
    n = workers if workers is not None else min(4, os.cpu_count() or 1)
    n = max(1, min(n, (hi - lo + 1) // max(1, per_worker)))
    step = -(-(hi - lo + 1) // n)
    return [(a, min(hi, a + step - 1)) for a in range(lo, hi + 1, step)]


def _scan_parallel(dsn: str, snapshot: str, ranges: list[tuple[int, int]],
                   expected: dict[int, str]) -> list[RangeResult]:
    """One `python -m audit.scan_worker` process per range, all in the exported snapshot."""
    workers = []
    for i, (a, b) in enumerate(ranges):
        # -P: the current directory is not put on sys.path, so an auditor's own "audit" folder
        # there cannot stand in for this package.
        proc = subprocess.Popen([sys.executable, "-P", "-m", "audit.scan_worker"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps((dsn, snapshot, a, b, i == 0,
                                       {s: h for s, h in expected.items() if a <= s <= b})))
        proc.stdin.close()
        workers.append(proc)
    results: list[RangeResult] = []
    failed: list[str] = []
    for (a, b), proc in zip(ranges, workers, strict=True):
        assert proc.stdout is not None
        out = proc.stdout.read()
        if proc.wait() != 0 or not out:
            failed.append(f"events {a}..{b} (worker exit code {proc.returncode})")
            continue
        results.append(pickle.loads(out))  # noqa: S301  (our own child's pipe, as multiprocessing does)
    if failed:
        raise RuntimeError(f"audit verify could not check {', '.join(failed)}; the worker's error is above")
    return results


def _stitch(results: list[RangeResult]) -> Verdict:
    """Join the ranges: each must start right after the previous one ends, linking to its hash."""
    verdict = Verdict()
    prev: RangeResult | None = None
    for r in results:
        for problem in r.problems:
            verdict.add(problem)
        verdict.more_problems |= r.truncated
        verdict.rechecked += r.rechecked
        if r.server_cpu_s is not None:
            verdict.server_cpu_s = (verdict.server_cpu_s or 0.0) + r.server_cpu_s
        if r.count == 0:
            continue
        if prev is not None:
            assert prev.last_seq is not None and r.first_seq is not None
            if r.first_seq != prev.last_seq + 1:
                verdict.add(chain_gap(prev.last_seq, r.first_seq))
            elif r.first_prev_hash != prev.last_hash:
                verdict.add(Problem(BROKEN_LINK, r.first_seq, (
                    f"event {r.first_seq} does not link to event {prev.last_seq} "
                    f"(event {prev.last_seq} was rewritten)")))
        verdict.count += r.count
        prev = r
    if prev is not None and prev.last_seq is not None and prev.last_hash is not None:
        verdict.head = Head(prev.last_seq, prev.last_hash)
    return verdict


def _check_tail(verdict: Verdict, expected: dict[int, str]) -> None:
    """Checkpoints beyond the end of the chain: its tail was cut. Name the first missing event."""
    head = verdict.head.seq
    beyond = sorted(s for s in expected if s > head)
    if beyond:
        verdict.add(Problem(MISSING_AFTER_CHECKPOINT, head + 1, (
            f"events {head + 1}..{beyond[-1]} are missing: a checkpoint recorded event {beyond[-1]} "
            f"but the chain ends at {head} (its tail was deleted)")))
