"""The database: declarative base and the one way to open a transaction (on the engine of this
process's runtime, alerting/base/runtime.py).

Entry points (request, CLI command, job) open `transaction()`; services receive the session,
may flush, and never commit, roll back or close it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Enum, MetaData, func
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from alerting.base import runtime

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
_bind: list[object] = []  # tests bind sessions to one connection inside a transaction


def engine() -> Engine:
    """This process's engine (alerting/base/runtime.py)."""
    return runtime.current().engine


def bind_sessions(bind: object | None, **options: object) -> None:
    """Bind the session factory to `bind` (tests: one connection inside a transaction); None goes
    back to the runtime's engine."""
    _bind[:] = [bind] if bind is not None and bind is not engine() else []
    _sessions.configure(**options)


def session_bind() -> object:
    """What sessions are bound to: the runtime's engine, or in tests one connection."""
    return _bind[0] if _bind else engine()


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with _sessions(bind=session_bind()) as session, session.begin():
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


def pg_array(items: Iterable[object]) -> str:
    """A list as the text of one PostgreSQL array constant, for `CAST(:x AS <type>[])` / `%s::<type>[]`.

    psycopg2 sends a Python list as `ARRAY[v1, v2, …]`: one expression per element that PostgreSQL
    parses, analyses and folds at every statement (4,000 of them for a batch of 450 receipts: most
    of a 1.7 ms plan), and adapts each element in Python first. One quoted constant is read by the
    array type's own parser. Elements: None (NULL), bool, int, float, str, bytes (bytea) and
    datetime (ISO 8601, with its offset for a timestamptz); text is quoted, so any string survives.
    """
    values: list[Any] = items if isinstance(items, list) else list(items)
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if not kinds - {int}:  # the common columns first, without a call per element
        body = ",".join(["NULL" if i is None else str(i) for i in values])
    elif kinds == {str}:
        body = ",".join(["NULL" if s is None else '"' + s + '"' if '"' not in s and "\\" not in s
                         else _quoted(s) for s in values])
    elif kinds == {datetime}:
        body = ",".join(["NULL" if d is None else '"' + d.isoformat() + '"' for d in values])
    elif kinds == {bytes}:
        body = ",".join(["NULL" if b is None else '"\\\\x' + b.hex() + '"' for b in values])
    elif kinds == {bool}:
        body = ",".join(["NULL" if b is None else "t" if b else "f" for b in values])
    else:
        body = ",".join([_array_element(i) for i in values])
    return "{" + body + "}"


def _array_element(item: object) -> str:
    if item is None:
        return "NULL"
    if isinstance(item, bool):
        return "t" if item else "f"
    if isinstance(item, int):
        return str(int(item))  # an IntEnum's str() is its name
    if isinstance(item, float):
        return repr(float(item))
    if isinstance(item, bytes | bytearray | memoryview):
        return '"\\\\x' + bytes(item).hex() + '"'
    if isinstance(item, datetime):
        return '"' + item.isoformat() + '"'
    if isinstance(item, str):
        return _quoted(item)
    raise TypeError(f"pg_array: no array text for {type(item).__name__}")


def _quoted(text: str) -> str:
    """An array element's text, double-quoted, with its quotes and backslashes escaped."""
    if '"' not in text and "\\" not in text:
        return '"' + text + '"'
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
