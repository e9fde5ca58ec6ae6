"""Append events to the audit trail, in the caller's transaction.

An event commits or rolls back with the action it records: `append` runs in the caller's session
and raises AuditWriteFailed when it cannot write, so no privileged action commits without its
event. A refused action's transaction rolls back, so the error boundary records the refusal in a
fresh transaction with `audit_refusal`.

The database stores the event with the SHA-256 of its content (`audit.append_event`, SECURITY
DEFINER; the application role can call it and read the table, nothing else) and takes no lock:
concurrent actions commit side by side. The event gets its seq and its link in the chain when
sealed, after it commits (audit/seal.py); until then its seq is NULL and its id identifies it.
"""

from __future__ import annotations

import enum
import json
import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg2
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from alerting.base.db import session_bind, transaction
from alerting.base.errors import SirenaError
from audit.actor import Actor

log = logging.getLogger(__name__)

OUTCOMES = ("done", "refused")
_USER_AGENT_MAX = 512
_TEXT_MAX = 4000

# Run on the DBAPI cursor: through SQLAlchemy's statement machinery (compile cache, execution
# context, result) the same call cost about twice the client CPU (bench/audit.py).
_APPEND = (
    "SELECT audit.append_event(%(actor_kind)s, %(actor_name)s, %(actor_operator_id)s, %(actor_token_id)s, "
    "%(action)s, %(subject_type)s, %(subject_id)s, %(payload)s::jsonb, %(origin_address)s, "
    "%(origin_user_agent)s, %(origin_interface)s, %(outcome)s, %(reason)s)"
)


class AuditWriteFailed(SirenaError):
    """The trail could not record an event; the action it records must fail with it."""
    code = "audit_unavailable"
    exit_code = 1
    http_status = 503


def append(
    session: Session,
    *,
    actor: Actor,
    action: str,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    payload: dict[str, Any] | None = None,
    outcome: str = "done",
    reason: str | None = None,
) -> int:
    """Append one event in `session`'s transaction and return its id.

    `action` is a dotted verb such as "alert.approved"; `payload` holds what changed (before/after
    where it applies) and must be JSON-serializable (datetimes, Decimals, UUIDs, enums and sets are
    converted). Takes no lock: the event's seq (its place in the chain) is given when it is sealed,
    after this transaction commits. Raises AuditWriteFailed when the event cannot be written,
    ValueError on a programming error (empty action, unknown outcome).
    """
    params = _params(actor, action, subject_type, subject_id, payload, outcome, reason)
    return _execute(session, params)


def append_at_commit(
    session: Session,
    *,
    actor: Actor,
    action: str,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    payload: dict[str, Any] | None = None,
    outcome: str = "done",
    reason: str | None = None,
) -> None:
    """Like `append`, but the event is written just before `session` commits.

    For long transactions (a fan-out chunk, an import): the event's time and id are those of the
    commit, not of the start of the work, so it is sealed after the events of actions that
    committed meanwhile. The event still commits with the action or not at all: if it cannot be
    written, the commit raises AuditWriteFailed and everything rolls back. Arguments are checked
    now (ValueError, AuditWriteFailed for a payload that is not JSON).
    """
    params = _params(actor, action, subject_type, subject_id, payload, outcome, reason)
    pending: list[dict[str, Any]] = session.info.setdefault("audit_at_commit", [])
    if not pending:
        event.listen(session, "before_commit", _write_pending, once=True)
        event.listen(session, "after_rollback", lambda s: s.info.pop("audit_at_commit", None), once=True)
    pending.append(params)


def _write_pending(session: Session) -> None:
    for params in session.info.pop("audit_at_commit", []):
        _execute(session, params)


def _params(actor: Actor, action: str, subject_type: str | None, subject_id: str | int | None,
            payload: dict[str, Any] | None, outcome: str, reason: str | None) -> dict[str, Any]:
    if not action or not action.strip():
        raise ValueError("an audit event needs an action")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    try:
        payload_json = json.dumps(_clean(payload or {}), default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise AuditWriteFailed(
            f"the audit trail could not record {action}: payload is not JSON ({exc})", action=action
        ) from None
    return {
        "actor_kind": _text(actor.kind) or "unknown",
        "actor_name": _text(actor.name) or "",
        "actor_operator_id": actor.operator_id,
        "actor_token_id": actor.token_id,
        "action": _text(action),
        "subject_type": _text(subject_type),
        "subject_id": None if subject_id is None else _text(str(subject_id)),
        "payload": payload_json,
        "origin_address": _text(actor.address),
        "origin_user_agent": _text(actor.user_agent, _USER_AGENT_MAX),
        "origin_interface": _text(actor.interface),
        "outcome": outcome,
        "reason": _text(reason),
    }


def _execute(session: Session, params: dict[str, Any]) -> int:
    # Write the session's pending changes first, as session.execute would (autoflush): the event
    # follows what it records, and a later read in this transaction sees both.
    session.flush()
    try:
        dbapi = session.connection().connection
        return _append_on(dbapi, params)
    except (DBAPIError, psycopg2.Error) as exc:
        raise _failed(params, exc) from exc


def _append_on(dbapi: Any, params: dict[str, Any]) -> int:
    """Call audit.append_event on a DBAPI connection, in its current transaction."""
    cursor = dbapi.cursor()
    try:
        cursor.execute(_APPEND, params)
        return int(cursor.fetchone()[0])
    finally:
        cursor.close()


def _failed(params: dict[str, Any], exc: Exception) -> AuditWriteFailed:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    log.error("audit append failed: action=%s subject=%s:%s error=%s",
              params["action"], params["subject_type"], params["subject_id"], orig)
    first_line = str(orig).strip().splitlines()[0] if orig is not None and str(orig).strip() else str(exc)
    return AuditWriteFailed(
        f"the audit trail could not record {params['action']}, so the action was not done: {first_line}",
        action=params["action"],
    )


def append_alone(
    actor: Actor,
    action: str,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    *,
    payload: dict[str, Any] | None = None,
    outcome: str = "done",
    reason: str | None = None,
) -> int:
    """Append one event in a transaction of its own and commit it; return its id.

    For an event that records no change of its own (a refusal, after the action rolled back).
    On an engine it takes a pooled connection straight from the pool, with no ORM session: this
    is the trail's own cost, about half the client CPU of a session (bench/audit.py), which matters
    when refusals come in bursts (a password-guessing attack, a flood of API calls over a limit).
    Raises AuditWriteFailed when the event cannot be written, ValueError on a programming error.
    """
    params = _params(actor, action, subject_type, subject_id, payload, outcome, reason)
    bind = session_bind()
    if not isinstance(bind, Engine):  # bound to one connection (tests): its transaction rules
        with transaction() as session:
            return _execute(session, params)
    try:
        dbapi = bind.raw_connection()  # pinged on checkout if it sat idle (alerting.base.db.make_engine)
    except (SQLAlchemyError, psycopg2.Error) as exc:  # unreachable, or the pool is exhausted
        raise _failed(params, exc) from exc
    driver = dbapi.dbapi_connection
    try:
        if driver is None:  # a checked-out pool connection always carries its driver connection
            raise RuntimeError("audit append: the pooled connection has no driver connection")
        # Autocommit: the call is its own transaction, one round trip, where BEGIN, the call and
        # COMMIT took three. The pool hands out a connection with no transaction open: the switch is free.
        driver.autocommit = True
        try:
            return _append_on(driver, params)
        finally:
            if not driver.closed:
                driver.autocommit = False
    except psycopg2.Error as exc:
        _discard(dbapi)
        raise _failed(params, exc) from exc
    finally:
        dbapi.close()  # back to the pool


def _discard(dbapi: Any) -> None:
    try:
        dbapi.rollback()
    except psycopg2.Error:
        dbapi.invalidate()  # the connection is gone: the pool must not hand it out again


def audit_refusal(
    actor: Actor,
    action: str,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    reason: str | None = None,
    *,
    payload: dict[str, Any] | None = None,
) -> int | None:
    """Record a refused privileged action in a transaction of its own; return its id.

    Called by the error boundaries (web, API, CLI) when a Refused error escapes, after the action's
    own transaction has rolled back. Never raises: the action has already failed and its refusal
    must still reach the user; if the event cannot be written it is logged at ERROR in full, so
    it can be reconstructed, and None is returned.
    """
    try:
        return append_alone(actor, action, subject_type, subject_id, payload=payload, outcome="refused",
                            reason=reason)
    except Exception:
        log.exception("could not audit a refusal: actor=%s:%s action=%s subject=%s:%s reason=%s",
                      actor.kind, actor.name, action, subject_type, subject_id, reason)
        return None


def _text(value: str | None, limit: int = _TEXT_MAX) -> str | None:
    """PostgreSQL text cannot hold NUL; a hostile user agent must not block the audit of a login."""
    if value is None:
        return None
    return str(value).replace("\x00", "\ufffd")[:limit]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {str(k).replace("\x00", "\ufffd"): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_clean(v) for v in value), key=str)
    return value


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")
