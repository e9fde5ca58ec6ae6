"""Appending to the audit trail: what is stored, how it chains, and what the app role may do."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from alerting.db import transaction
from audit import chain
from audit.actor import Actor
from audit.trail import AuditWriteFailed, append, audit_refusal

OPERATOR = Actor(kind="operator", name="ana", operator_id=7, interface="console",
                 address="10.1.2.3", user_agent="Firefox/120")


def _row(db: Session, seq: int) -> dict:
    return dict(db.execute(text("SELECT * FROM audit.events WHERE seq = :s"), {"s": seq}).mappings().one())


def test_append_stores_the_event_and_returns_its_seq(db: Session) -> None:
    seq = append(db, actor=OPERATOR, action="alert.approved", subject_type="alert", subject_id=42,
                 payload={"before": {"state": "pending_approval"}, "after": {"state": "approved"}})
    row = _row(db, seq)
    assert row["actor_kind"] == "operator" and row["actor_name"] == "ana" and row["actor_operator_id"] == 7
    assert row["action"] == "alert.approved"
    assert (row["subject_type"], row["subject_id"]) == ("alert", "42")
    assert row["payload"]["after"] == {"state": "approved"}
    assert (row["origin_address"], row["origin_user_agent"], row["origin_interface"]) == (
        "10.1.2.3", "Firefox/120", "console")
    assert row["outcome"] == "done" and row["reason"] is None


def test_consecutive_events_link_and_python_recomputes_the_sql_hash(db: Session) -> None:
    first = append(db, actor=OPERATOR, action="zone.created", subject_type="zone", subject_id="z1",
                   payload={"name": "Valparaíso\nnorte", "vertices": 12, "ratio": 0.5, "ok": True, "n": None})
    second = append(db, actor=Actor.system("escalator"), action="alert.escalated", payload={"to": ["a", "b"]})
    assert second == first + 1
    rows = db.execute(text(f"SELECT {chain.SELECT_CANONICAL_COLUMNS_TEXT} FROM audit.events "
                           "WHERE seq IN (:a, :b) ORDER BY seq"), {"a": first, "b": second}).all()
    for row in rows:
        values, prev_hash, stored = row[:-2], bytes(row[-2]), bytes(row[-1])
        assert chain.event_hash(prev_hash, values) == stored
    assert bytes(rows[1][-2]) == bytes(rows[0][-1])


def test_event_time_is_hashed_in_utc_whatever_the_session_time_zone(db: Session) -> None:
    db.execute(text("SET LOCAL timezone = 'America/Santiago'"))
    seq = append(db, actor=OPERATOR, action="settings.changed")
    row = db.execute(text(f"SELECT at AS at_local, {chain.SELECT_CANONICAL_COLUMNS_TEXT} FROM audit.events "
                          "WHERE seq = :s"), {"s": seq}).one()
    assert row.at_local.utcoffset().total_seconds() != 0  # the session sees Santiago time
    assert chain.format_at(row[0]) == row[2]
    assert chain.event_hash(bytes(row[-2]), row[1:-2]) == bytes(row[-1])


def test_refused_outcome_keeps_the_reason(db: Session) -> None:
    seq = append(db, actor=OPERATOR, action="alert.approve", subject_type="alert", subject_id=9,
                 outcome="refused", reason="the composer cannot approve")
    row = _row(db, seq)
    assert (row["outcome"], row["reason"]) == ("refused", "the composer cannot approve")


def test_nul_characters_are_replaced_not_fatal(db: Session) -> None:
    actor = Actor(kind="operator", name="x", user_agent="evil\x00agent")
    seq = append(db, actor=actor, action="login.failed", payload={"user\x00": "a\x00b"})
    row = _row(db, seq)
    assert row["origin_user_agent"] == "evil\ufffdagent"
    assert row["payload"] == {"user\ufffd": "a\ufffdb"}


def test_unserializable_payload_fails_the_append(db: Session) -> None:
    with pytest.raises(AuditWriteFailed, match="payload is not JSON"):
        append(db, actor=OPERATOR, action="contacts.imported", payload={"x": object()})


def test_bad_outcome_is_a_programming_error(db: Session) -> None:
    with pytest.raises(ValueError):
        append(db, actor=OPERATOR, action="x", outcome="maybe")


def test_append_in_repeatable_read_is_refused_with_a_clear_error(committed_db) -> None:
    engine = create_engine(committed_db.database_url, poolclass=pool.NullPool,
                           isolation_level="REPEATABLE READ")
    with Session(engine) as session, pytest.raises(AuditWriteFailed, match="READ COMMITTED"):
        append(session, actor=OPERATOR, action="alert.approved")
    engine.dispose()


def test_app_role_cannot_change_or_insert_events_directly(db: Session) -> None:
    seq = append(db, actor=OPERATOR, action="token.created")
    for statement in (
        "UPDATE audit.events SET action = 'x' WHERE seq = :s",
        "DELETE FROM audit.events WHERE seq = :s",
        "TRUNCATE audit.events",
        "INSERT INTO audit.events SELECT * FROM audit.events WHERE seq = :s",
        "ALTER TABLE audit.events DISABLE TRIGGER ALL",
    ):
        with pytest.raises(DBAPIError, match=r"permission denied|must be owner"), db.begin_nested():
            db.execute(text(statement), {"s": seq})


def test_owner_is_stopped_by_the_triggers(committed_db) -> None:
    with transaction() as session:
        seq = append(session, actor=OPERATOR, action="token.created")
    engine = create_engine(committed_db.database_owner_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        for statement, op in (("UPDATE audit.events SET action = 'x' WHERE seq = :s", "UPDATE"),
                              ("DELETE FROM audit.events WHERE seq = :s", "DELETE"),
                              ("TRUNCATE audit.events", "TRUNCATE")):
            with pytest.raises(DBAPIError, match=f"append-only: {op} refused"), conn.begin():
                conn.execute(text(statement), {"s": seq})
    engine.dispose()


def test_audit_refusal_commits_on_its_own(committed_db) -> None:
    with pytest.raises(RuntimeError), transaction() as session:
        append(session, actor=OPERATOR, action="alert.cancel", subject_type="alert", subject_id=3)
        raise RuntimeError("the action failed")
    seq = audit_refusal(OPERATOR, "alert.cancel", "alert", 3, "not allowed to cancel")
    assert seq == 1  # the rolled-back event left no trace, the refusal did
    with transaction() as session:
        row = session.execute(text("SELECT outcome, reason FROM audit.events WHERE seq = 1")).one()
    assert tuple(row) == ("refused", "not allowed to cancel")


def test_an_action_whose_event_cannot_be_written_does_not_commit(committed_db) -> None:
    from alerting.models import Operator

    owner = create_engine(committed_db.database_owner_url, poolclass=pool.NullPool)
    with owner.begin() as conn:  # the trail becomes unwritable for the app
        conn.execute(text("REVOKE EXECUTE ON FUNCTION audit.append_event(text, text, bigint, bigint, text, "
                          "text, text, jsonb, text, text, text, text, text) FROM sirena_app"))
    owner.dispose()
    refused = r"could not record operator\.created, so the action was not done"
    with pytest.raises(AuditWriteFailed, match=refused), transaction() as session:
        session.add(Operator(username="mallory", password_hash="x", roles=["admin"]))
        session.flush()
        append(session, actor=OPERATOR, action="operator.created", subject_type="operator")
    with transaction() as session:
        assert session.execute(text("SELECT count(*) FROM operators WHERE username = 'mallory'")).scalar() == 0


def test_append_at_commit_takes_the_lock_only_when_committing(committed_db) -> None:
    import threading

    from audit.trail import append_at_commit

    other: list[int] = []
    with transaction() as session:
        append_at_commit(session, actor=OPERATOR, action="alert.sending_started", subject_type="alert",
                         subject_id=1)
        # While this transaction does its long work, another action can still be audited.
        worker = threading.Thread(target=lambda: other.append(_append_alone("login.ok")))
        worker.start()
        worker.join(timeout=20)
        assert other == [1]
    with transaction() as session:
        rows = session.execute(text("SELECT seq, action FROM audit.events ORDER BY seq")).all()
    assert [tuple(r) for r in rows] == [(1, "login.ok"), (2, "alert.sending_started")]
    from alerting import db as dbmod
    from audit.verify import verify_chain
    assert verify_chain(dbmod.engine(), committed_db).ok


def _append_alone(action: str) -> int:
    with transaction() as session:
        return append(session, actor=OPERATOR, action=action)


def test_append_at_commit_that_cannot_write_fails_the_commit(committed_db) -> None:
    from alerting.models import Operator
    from audit.trail import append_at_commit

    owner = create_engine(committed_db.database_owner_url, poolclass=pool.NullPool)
    with owner.begin() as conn:
        conn.execute(text("REVOKE EXECUTE ON FUNCTION audit.append_event(text, text, bigint, bigint, text, "
                          "text, text, jsonb, text, text, text, text, text) FROM sirena_app"))
    owner.dispose()
    with pytest.raises(AuditWriteFailed), transaction() as session:
        session.add(Operator(username="mallory", password_hash="x", roles=["admin"]))
        append_at_commit(session, actor=OPERATOR, action="operator.created", subject_type="operator")
    with transaction() as session:
        assert session.execute(text("SELECT count(*) FROM operators WHERE username = 'mallory'")).scalar() == 0


def test_append_at_commit_is_dropped_with_a_rollback(committed_db) -> None:
    from audit.trail import append_at_commit

    with pytest.raises(RuntimeError), transaction() as session:
        append_at_commit(session, actor=OPERATOR, action="alert.sending_started")
        raise RuntimeError("the action failed")
    assert _append_alone("login.ok") == 1
