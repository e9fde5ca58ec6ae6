"""The database: declarative base, engine binding and the one way to open a transaction.

Entry points (request, CLI command, job) open `transaction()`; services receive the session,
may flush, and never commit, roll back or close it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import DateTime, Enum, MetaData, create_engine, func
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from alerting.settings import Settings

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


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


_sessions = sessionmaker(expire_on_commit=False)
_engine: Engine | None = None
_settings: Settings | None = None


def make_engine(url: str, *, application_name: str = "sirena", pool_size: int = 5) -> Engine:
    """An engine that survives a PostgreSQL restart (pre-ping) and always talks UTC."""
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=10,
        connect_args={"application_name": application_name, "options": "-c timezone=UTC"},
    )


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
