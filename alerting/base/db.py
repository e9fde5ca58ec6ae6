"""The database: declarative base, engine binding and the one way to open a transaction.

Entry points (request, CLI command, job) open `transaction()`; services receive the session,
may flush, and never commit, roll back or close it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Enum, MetaData, create_engine, event, exc, func
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from alerting.base.settings import Settings

log = logging.getLogger("sirena.db")
T = TypeVar("T")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rowcount(result: Result[Any]) -> int:
    """The number of rows an UPDATE, INSERT or DELETE touched.

    `Session.execute` is typed as returning a `Result`, but for a DML statement it is a `CursorResult`,
    the only kind that carries `rowcount`; anything else here is a programming error.
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"rowcount asked of a {type(result).__name__}, not the result of an UPDATE/INSERT/DELETE")
    return result.rowcount


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


_sessions = sessionmaker(expire_on_commit=False)
_engine: Engine | None = None
_settings: Settings | None = None


# A pooled connection idle longer than this is pinged before use (PING_AFTER_IDLE_S).
PING_AFTER_IDLE_S = 1.0


def make_engine(url: str, *, application_name: str = "sirena", pool_size: int = 5) -> Engine:
    """An engine that survives a PostgreSQL restart and always talks UTC.

    A connection that sat in the pool for PING_AFTER_IDLE_S or more is pinged before it is handed
    out (as SQLAlchemy's pre-ping does, which pings every time): a restart, a failover or a
    network cut while it was idle is found there, and the whole pool is renewed. One handed back
    less than a second ago was just used successfully; pinging it again cost a round trip in
    every transaction of a busy worker (~9% of a gateway's samples). If the server went away in
    that second, the first statement fails as a disconnect (as a transaction in flight at a
    restart always could), SQLAlchemy renews the pool, and the caller's retry proceeds.
    """
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=10,
        connect_args={"application_name": application_name, "options": "-c timezone=UTC"},
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info["sirena_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("sirena_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as err:
            if engine.dialect.is_disconnect(err, dbapi_connection, None):
                # Like pre-ping: every connection older than now is renewed, this one at once.
                raise exc.InvalidatePoolError(str(err)) from err
            raise


def configure_db(settings: Settings, *, application_name: str = "sirena") -> Engine:
    """Bind the session factory to the app database. Called once at process start."""
    global _engine, _settings
    if _engine is not None:
        _engine.dispose()
    _settings = settings
    _engine = make_engine(settings.database_url, application_name=application_name)
    _sessions.configure(bind=_engine)
    return _engine


def configured_settings() -> Settings | None:
    """The settings this process's database was configured with (None before configure_db)."""
    return _settings


def engine() -> Engine:
    if _engine is None:
        raise RuntimeError("configure_db(settings) was not called")
    return _engine


def bind_sessions(bind: object, **options: object) -> None:
    """Rebind the session factory (tests bind it to one connection inside a transaction)."""
    _sessions.configure(bind=bind, **options)


def session_bind() -> object:
    """What the session factory is bound to: the engine, or in tests one connection."""
    return _sessions.kw.get("bind")


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with _sessions.begin() as session:
        yield session


# deadlock_detected, serialization_failure: PostgreSQL aborted the transaction to let another
# finish; running it again from the start is correct.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def retrying_transaction(work: Callable[[Session], T], *, attempts: int = 4, what: str = "transaction") -> T:
    """work(session) in a transaction(), run again (up to `attempts` times in all, after a short
    random pause) when PostgreSQL picks it as a deadlock victim. `work` must be safe to repeat
    from the start: everything it wrote was rolled back."""
    for attempt in range(1, attempts + 1):
        try:
            with transaction() as session:
                return work(session)
        except Exception as error:
            # Wrapped by SQLAlchemy (error.orig), or raised by a raw DBAPI cursor as it is.
            cause = getattr(error, "orig", None) or error
            if getattr(cause, "pgcode", None) not in RETRYABLE_SQLSTATES or attempt == attempts:
                raise
            log.warning("%s: %s (attempt %d of %d), running it again", what,
                        (str(cause).splitlines() or ["?"])[0], attempt, attempts)
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")


def enum_type(enum_cls: type) -> Enum:
    """Store a StrEnum as its value in a VARCHAR with a CHECK constraint (easy to extend by migration)."""
    return Enum(
        enum_cls,
        native_enum=False,
        length=24,
        create_constraint=True,
        name=enum_cls.__name__.lower(),
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )
