"""The connection pool after the server cut a connection: what an operator's next click sees."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from alerting import db as dbmod


@pytest.fixture
def engine(settings):  # type: ignore[no-untyped-def]
    engine = dbmod.make_engine(settings.database_url, application_name="sirena-test-pool", pool_size=1)
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
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE_S", 0.05)
    before = _backend(engine)
    _terminate(before)  # a restart, a failover, a firewall dropping the idle connection
    time.sleep(0.1)
    after = _backend(engine)  # no error reaches the caller
    assert after != before


def test_a_cut_found_at_first_use_renews_the_pool(engine, monkeypatch) -> None:
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE_S", 3600.0)  # never pinged: used a moment ago
    before = _backend(engine)
    _terminate(before)
    with pytest.raises(Exception, match=r"terminat|closed|connection"):
        _backend(engine)  # the statement in flight fails, as one in flight at a restart does
    assert _backend(engine) != before  # and the next one runs on a new connection
