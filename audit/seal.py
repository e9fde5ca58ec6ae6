"""Seal the trail: give committed events their place in the hash chain.

An append (audit/trail.py) stores the event with the hash of its content and takes no lock, so
concurrent actions commit side by side. `audit.seal_events` (migration 0011_audit_seal) then
links committed, unsealed events in id order: each gets the next seq, the previous event's hash
as prev_hash, and hash = SHA-256(prev_hash || content_hash || seq). Sealers are serialized by an
advisory lock held only for their own short transaction, so the chain never forks.

Who seals: the processes that write events — the web app (console and API) and every gateway
worker — in the background every SEAL_EVERY_S (`Sealer`), the scheduler on every pass
(`alerting.interfaces.scheduler.periodic_tasks`), every CLI command as it ends, and, before they look at
the chain, `audit verify`, `audit checkpoint`, `audit export`, the console's export and the
webhook collector; a worker also seals right after it commits an alert's completion. So an event
waits a second or two for its link, scheduler or no scheduler, while one of those runs. Until
sealed, an event is protected as every event is: the app role cannot change or delete it, the
triggers stop the owner, and verify checks its content against its content hash. What a sealed
event adds is its link: the chain shows a deleted or moved event, and checkpoints a cut tail.
An unsealed event older than UNSEALED_WARN_S means nothing is sealing: `sirena status`, /readyz
and `audit verify` say so (`unsealed_backlog`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# Migration 0002_audit's key, taken by `audit.seal_events` for its transaction.
SEAL_LOCK_KEY = 0x534952415544
BATCH = 50_000
SEAL_EVERY_S = 1.0  # the background sealer's period (web app, gateway workers)
UNSEALED_WARN_S = 10.0  # an event unsealed for longer: nothing is sealing (status, readyz, verify warn)
LATE_DO = ("Nothing is sealing: start the web app, a gateway worker or the scheduler (each seals every second or "
           "two), or run: sirena audit verify (it seals first)")

_SEAL = text("SELECT audit.seal_events(:n)")
_ANY_UNSEALED = text("SELECT EXISTS (SELECT 1 FROM audit.events WHERE seq IS NULL)")
_BACKLOG = text("SELECT count(*), extract(epoch FROM clock_timestamp() - min(at)) FROM audit.events WHERE seq IS NULL")
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:k)")


def seal_events(bind: Session | Connection, *, limit: int = BATCH) -> int:
    """Seal up to `limit` committed (or this transaction's own) unsealed events in the caller's
    transaction; return how many. The transaction must be READ COMMITTED, and holds the seal
    lock until it ends: every other sealer waits for it, appends do not."""
    return int(bind.execute(_SEAL, {"n": limit}).scalar_one())


def seal_committed(engine: Engine, *, wait: bool = True, limit: int = BATCH) -> int:
    """Seal every event committed so far, in transactions of their own (one per `limit` events);
    return how many were sealed.

    wait=False: if another sealer holds the lock, return 0 at once (it is sealing, and the
    scheduler's next pass seals whatever it missed). Raises DBAPIError if the database does.
    """
    total = 0
    while True:
        with engine.connect() as conn, conn.begin():
            if not wait and not conn.execute(_TRY_LOCK, {"k": SEAL_LOCK_KEY}).scalar_one():
                return total
            done = seal_events(conn, limit=limit)
        total += done
        if done < limit:
            return total


def seal_after_commit(session: Session) -> None:
    """Seal right after `session` commits (nothing if it rolls back), without waiting for another
    sealer. Never raises into the committed action: a failure is logged and left to the scheduler."""
    if session.info.get("audit_seal_after_commit"):
        return
    session.info["audit_seal_after_commit"] = True

    def _seal(s: Session) -> None:
        s.info.pop("audit_seal_after_commit", None)
        bind = s.get_bind()
        engine = bind.engine if isinstance(bind, Connection) else bind
        try:
            seal_committed(engine, wait=False)
        except Exception:
            log.exception("could not seal the audit trail after commit; the scheduler will")

    event.listen(session, "after_commit", _seal, once=True)
    event.listen(session, "after_rollback", lambda s: s.info.pop("audit_seal_after_commit", None), once=True)


@dataclass(frozen=True)
class Backlog:
    """Committed events still waiting for their seal, and how long the oldest has waited."""

    events: int
    oldest_s: float | None

    @property
    def late(self) -> bool:
        return self.oldest_s is not None and self.oldest_s > UNSEALED_WARN_S

    def warning(self) -> str | None:
        """What is wrong, for an operator, when the backlog is late (else None); LATE_DO says what to do."""
        if not self.late:
            return None
        return (f"{self.events} audit event(s) not sealed into the hash chain yet, the oldest for "
                f"{self.oldest_s:.0f} s (until sealed, deleting one would leave no trace in the chain)")

    def as_dict(self) -> dict[str, object]:
        return {"unsealed_events": self.events,
                "oldest_unsealed_s": None if self.oldest_s is None else round(self.oldest_s, 1),
                "late": self.late}


def unsealed_backlog(bind: Session | Connection) -> Backlog:
    """How many committed events wait for their seal and the age of the oldest (by its `at`),
    read in the caller's transaction (one index scan: the unsealed events are a partial index)."""
    count, oldest = bind.execute(_BACKLOG).one()
    return Backlog(int(count), None if oldest is None else max(0.0, float(oldest)))


class Sealer:
    """A daemon thread that seals what has committed every `every_s` seconds, in processes that
    write events (web app, gateway workers): the window in which an event has no link is then a
    second or two, with or without the scheduler. A tick with nothing unsealed costs one index
    lookup; another sealer at work makes it skip (no waiting). Errors (PostgreSQL restarting) are
    logged at debug and the next tick tries again."""

    def __init__(self, engine: Engine, every_s: float = SEAL_EVERY_S) -> None:
        self.engine, self.every_s = engine, every_s
        self.sealed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)

    @classmethod
    def start_for(cls, engine: Engine, every_s: float = SEAL_EVERY_S) -> Sealer:
        sealer = cls(engine, every_s)
        sealer._thread.start()
        return sealer

    def stop(self) -> None:
        """Stop the thread after one last seal (what this process wrote just before it stopped)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.every_s)
            try:
                with self.engine.connect() as conn:
                    pending = conn.execute(_ANY_UNSEALED).scalar_one()
                if pending:
                    self.sealed += seal_committed(self.engine, wait=False)
            except Exception as exc:
                log.debug("background seal failed (next tick retries): %s", exc)
            if stopping:
                return
