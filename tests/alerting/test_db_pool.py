"""The connection pool after the server cut a connection: what an operator's next click sees."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from alerting.base import db as dbmod
from alerting.base import runtime


@pytest.fixture
def engine(settings):  # type: ignore[no-untyped-def]
    engine = runtime.make_engine(settings.database_url, application_name="sirena-test-pool", pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def _backend(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    with dbmod.engine().connect() as conn:  # as the app role: it may end its own role's backends
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()


def test_a_connection_cut_while_idle_is_replaced_before_use(engine, monkeypatch) -> None:
    monkeypatch.setattr(runtime, "PING_AFTER_IDLE_S", 0.05)
    before = _backend(engine)
    _terminate(before)  # a restart, a failover, a firewall dropping the idle connection
    time.sleep(0.1)
    after = _backend(engine)  # no error reaches the caller
    assert after != before


def test_a_cut_found_at_first_use_renews_the_pool(engine, monkeypatch) -> None:
    monkeypatch.setattr(runtime, "PING_AFTER_IDLE_S", 3600.0)  # never pinged: used a moment ago
    before = _backend(engine)
    _terminate(before)
    with pytest.raises(Exception, match=r"terminat|closed|connection"):
        _backend(engine)  # the statement in flight fails, as one in flight at a restart does
    assert _backend(engine) != before  # and the next one runs on a new connection


def test_a_deadlock_victim_runs_again_and_both_transactions_land(committed_db):
    """Two transactions lock two rows in opposite orders: PostgreSQL aborts one; retrying_transaction
    runs it again from the start, and both land."""
    import threading

    from tests.cluster import seed_group

    seed_group(2)
    with dbmod.transaction() as s:
        first, second = s.execute(text("SELECT id FROM contacts ORDER BY id LIMIT 2")).scalars().all()
    both_hold_one = threading.Barrier(2)
    attempts: list[str] = []

    def lock_in_order(name: str, ids: tuple[int, int]):  # type: ignore[no-untyped-def]
        def work(session):  # type: ignore[no-untyped-def]
            attempts.append(name)
            session.execute(text("UPDATE contacts SET name = :n WHERE id = :i"), {"n": name, "i": ids[0]})
            if attempts.count(name) == 1:
                both_hold_one.wait(timeout=10)
            session.execute(text("UPDATE contacts SET name = :n WHERE id = :i"), {"n": name, "i": ids[1]})
            return name
        return work

    results: list[str] = []
    threads = [threading.Thread(target=lambda n=n, ids=ids: results.append(
                   dbmod.retrying_transaction(lock_in_order(n, ids), what=n)))
               for n, ids in (("a", (first, second)), ("b", (second, first)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == ["a", "b"]
    assert len(attempts) == 3  # one of them was the deadlock's victim and ran twice
    with dbmod.transaction() as s:
        names = set(s.execute(text("SELECT name FROM contacts WHERE id IN (:a, :b)"),
                              {"a": first, "b": second}).scalars())
    assert len(names) == 1 and names <= {"a", "b"}  # the last to commit wrote both rows
