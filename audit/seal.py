"""Seal the trail: give committed events their place in the hash chain.

An append (audit/trail.py) stores the event with the hash of its content and takes no lock, so
concurrent actions commit side by side. `audit.seal_events` (migration 0011_audit_seal) then
links committed, unsealed events in id order: each gets the next seq, the previous event's hash
as prev_hash, and hash = SHA-256(prev_hash || content_hash || seq). Sealers are serialized by an
advisory lock held only for their own short transaction, so the chain never forks.

Who seals: the scheduler on every pass (`broadcast.reconciler.periodic_tasks`, every
SIRENA_RECONCILE_INTERVAL_S), and, before they look at the chain, `audit verify`,
`audit checkpoint`, `audit export`, the console's export and the webhook collector; a worker
also seals right after it commits an alert's completion. Until sealed (normally under one
scheduler pass), an event is protected as every event is: the app role cannot change or delete
it, the triggers stop the owner, and verify checks its content against its content hash. What
a sealed event adds is its link: the chain shows a deleted or moved event, and checkpoints a
cut tail.
"""

from __future__ import annotations

import logging

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# Migration 0002_audit's key, taken by `audit.seal_events` for its transaction.
SEAL_LOCK_KEY = 0x534952415544
BATCH = 50_000

_SEAL = text("SELECT audit.seal_events(:n)")
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
            seal_committed(engine, wait=False)  # type: ignore[arg-type]
        except Exception:
            log.exception("could not seal the audit trail after commit; the scheduler will")

    event.listen(session, "after_commit", _seal, once=True)
    event.listen(session, "after_rollback", lambda s: s.info.pop("audit_seal_after_commit", None), once=True)
