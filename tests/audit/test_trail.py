"""Appending to the audit trail: what is stored, how it is sealed into the chain, and what the app
role may do."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from alerting.base.db import transaction
from audit import chain
from audit.actor import Actor
from audit.seal import seal_events
from audit.trail import AuditWriteFailed, append, audit_refusal

OPERATOR = Actor(kind="operator", name="ana", operator_id=7, interface="console",
                 address="10.1.2.3", user_agent="Firefox/120")


def _row(db: Session, event_id: int) -> dict:
    return dict(db.execute(text("SELECT * FROM audit.events WHERE id = :i"), {"i": event_id}).mappings().one())


def test_append_stores_the_event_with_its_content_hash_and_returns_its_id(db: Session) -> None:
    event_id = append(db, actor=OPERATOR, action="alert.approved", subject_type="alert", subject_id=42,
                      payload={"before": {"state": "pending_approval"}, "after": {"state": "approved"}})
    row = _row(db, event_id)
    assert row["actor_kind"] == "operator" and row["actor_name"] == "ana" and row["actor_operator_id"] == 7
    assert row["action"] == "alert.approved"
    assert (row["subject_type"], row["subject_id"]) == ("alert", "42")
    assert row["payload"]["after"] == {"state": "approved"}
    assert (row["origin_address"], row["origin_user_agent"], row["origin_interface"]) == (
        "10.1.2.3", "Firefox/120", "console")
    assert row["outcome"] == "done" and row["reason"] is None
    # Not in the chain until sealed; its content is hashed already.
    assert row["seq"] is None and row["hash"] is None and len(row["content_hash"]) == 32


def _canonical_rows(db: Session, *event_ids: int) -> list:
    return db.execute(text(f"SELECT {chain.SELECT_CANONICAL_COLUMNS_TEXT} FROM audit.events "
                           "WHERE id = ANY(:ids) ORDER BY seq"), {"ids": list(event_ids)}).all()


def test_sealed_events_link_and_python_recomputes_the_sql_hashes(db: Session) -> None:
    first = append(db, actor=OPERATOR, action="zone.created", subject_type="zone", subject_id="z1",
                   payload={"name": "Valparaíso\nnorte", "vertices": 12, "ratio": 0.5, "ok": True, "n": None})
    second = append(db, actor=Actor.system("escalator"), action="alert.escalated",
                    payload={"to": ["a", "b"], "odd": "tab\t back\\slash \x01 \x0b \b \f \r"},
                    reason="dos\nlíneas \\N")
    assert seal_events(db) == 2
    rows = _canonical_rows(db, first, second)
    assert [int(r[0]) for r in rows] == [1, 2]  # sealed in id order
    for row in rows:
        values, content, prev_hash, stored = row[:-3], bytes(row[-3]), bytes(row[-2]), bytes(row[-1])
        assert chain.recompute(values, prev_hash, version=2) == (content, stored)
    assert bytes(rows[0][-2]) == chain.GENESIS
    assert bytes(rows[1][-2]) == bytes(rows[0][-1])


def test_event_time_is_hashed_in_utc_whatever_the_session_time_zone(db: Session) -> None:
    db.execute(text("SET LOCAL timezone = 'America/Santiago'"))
    event_id = append(db, actor=OPERATOR, action="settings.changed")
    seal_events(db)
    row = db.execute(text(f"SELECT at AS at_local, {chain.SELECT_CANONICAL_COLUMNS_TEXT} FROM audit.events "
                          "WHERE id = :i"), {"i": event_id}).one()
    assert row.at_local.utcoffset().total_seconds() != 0  # the session sees Santiago time
    assert chain.format_at(row[0]) == row[2]
    assert chain.recompute(row[1:-3], bytes(row[-2]), version=2) == (bytes(row[-3]), bytes(row[-1]))


def test_refused_outcome_keeps_the_reason(db: Session) -> None:
    event_id = append(db, actor=OPERATOR, action="alert.approve", subject_type="alert", subject_id=9,
                      outcome="refused", reason="the composer cannot approve")
    row = _row(db, event_id)
    assert (row["outcome"], row["reason"]) == ("refused", "the composer cannot approve")


def test_nul_characters_are_replaced_not_fatal(db: Session) -> None:
    actor = Actor(kind="operator", name="x", user_agent="evil\x00agent")
    event_id = append(db, actor=actor, action="login.failed", payload={"user\x00": "a\x00b"})
    row = _row(db, event_id)
    assert row["origin_user_agent"] == "evil\ufffdagent"
    assert row["payload"] == {"user\ufffd": "a\ufffdb"}


def test_unserializable_payload_fails_the_append(db: Session) -> None:
    with pytest.raises(AuditWriteFailed, match="payload is not JSON"):
        append(db, actor=OPERATOR, action="contacts.imported", payload={"x": object()})


def test_bad_outcome_is_a_programming_error(db: Session) -> None:
    with pytest.raises(ValueError):
        append(db, actor=OPERATOR, action="x", outcome="maybe")


def test_an_action_in_repeatable_read_is_audited_but_sealing_there_is_refused(committed_db) -> None:
    engine = create_engine(committed_db.database_url, poolclass=pool.NullPool,
                           isolation_level="REPEATABLE READ")
    with Session(engine) as session:
        append(session, actor=OPERATOR, action="alert.approved")
        session.commit()
    # A sealer's snapshot would predate its lock there: a stale head, a forked chain.
    with Session(engine) as session, pytest.raises(DBAPIError, match="needs a READ COMMITTED transaction"):
        seal_events(session)
    engine.dispose()
    from alerting.base import db as dbmod
    from audit.verify import verify_chain
    verdict = verify_chain(dbmod.engine(), committed_db)
    assert verdict.ok and verdict.count == 1


def test_app_role_cannot_change_or_insert_events_directly(db: Session) -> None:
    unsealed = append(db, actor=OPERATOR, action="token.created")
    for statement in (
        "UPDATE audit.events SET action = 'x' WHERE id = :i",
        "UPDATE audit.events SET seq = 1, prev_hash = content_hash, hash = content_hash WHERE id = :i",
        "DELETE FROM audit.events WHERE id = :i",
        "TRUNCATE audit.events",
        "INSERT INTO audit.events OVERRIDING SYSTEM VALUE SELECT * FROM audit.events WHERE id = :i",
        "ALTER TABLE audit.events DISABLE TRIGGER ALL",
    ):
        with pytest.raises(DBAPIError, match=r"permission denied|must be owner"), db.begin_nested():
            db.execute(text(statement), {"i": unsealed})


def test_owner_is_stopped_by_the_triggers_sealed_or_not(committed_db) -> None:
    with transaction() as session:
        sealed = append(session, actor=OPERATOR, action="token.created")
        seal_events(session)
        unsealed = append(session, actor=OPERATOR, action="token.revoked")
    engine = create_engine(committed_db.database_owner_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        for event_id in (sealed, unsealed):
            for statement, op in (("UPDATE audit.events SET action = 'x' WHERE id = :i", "UPDATE"),
                                  ("DELETE FROM audit.events WHERE id = :i", "DELETE"),
                                  ("TRUNCATE audit.events", "TRUNCATE")):
                with pytest.raises(DBAPIError, match=f"append-only: {op} refused"), conn.begin():
                    conn.execute(text(statement), {"i": event_id})
        # The one UPDATE let through is a seal, once: a sealed event cannot be moved or re-linked,
        # and sealing cannot change the content.
        for statement, event_id in (
            ("UPDATE audit.events SET seq = 7 WHERE id = :i", sealed),
            ("UPDATE audit.events SET prev_hash = hash WHERE id = :i", sealed),
            ("UPDATE audit.events SET seq = 2, prev_hash = content_hash, hash = content_hash, action = 'x' "
             "WHERE id = :i", unsealed),
        ):
            with pytest.raises(DBAPIError, match="append-only: UPDATE refused"), conn.begin():
                conn.execute(text(statement), {"i": event_id})
    engine.dispose()


def test_audit_refusal_commits_on_its_own(committed_db) -> None:
    with pytest.raises(RuntimeError), transaction() as session:
        append(session, actor=OPERATOR, action="alert.cancel", subject_type="alert", subject_id=3)
        raise RuntimeError("the action failed")
    event_id = audit_refusal(OPERATOR, "alert.cancel", "alert", 3, "not allowed to cancel")
    with transaction() as session:
        assert seal_events(session) == 1  # the rolled-back event left no trace, the refusal did
        row = session.execute(text("SELECT id, outcome, reason FROM audit.events WHERE seq = 1")).one()
    assert tuple(row) == (event_id, "refused", "not allowed to cancel")


def test_an_action_whose_event_cannot_be_written_does_not_commit(committed_db) -> None:
    from alerting.base.models import Operator

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


def test_append_at_commit_writes_the_event_when_committing(committed_db) -> None:
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
        seal_events(session)
        rows = session.execute(text("SELECT seq, action FROM audit.events ORDER BY seq")).all()
    assert [tuple(r) for r in rows] == [(1, "login.ok"), (2, "alert.sending_started")]
    from alerting.base import db as dbmod
    from audit.verify import verify_chain
    assert verify_chain(dbmod.engine(), committed_db).ok


def _append_alone(action: str) -> int:
    with transaction() as session:
        return append(session, actor=OPERATOR, action=action)


def test_append_at_commit_that_cannot_write_fails_the_commit(committed_db) -> None:
    from alerting.base.models import Operator
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
