"""The runtime of one process: its settings, its PostgreSQL engine and its Redis connection.

Each entry point (`sirena …` commands, the web app, a worker, a benchmark) builds it with one call,
`start(settings, name=…)`, and everything else reads it: `alerting.base.db` takes the engine from it,
the outbox its Redis, targeting its opt-out policy, reply processing its vocabulary, webhooks its
secret key. A worker starts it before it takes jobs, so every job it runs sees the same runtime.
`current()` before `start()` is a programming error and says so; `settings()` is None then, for
the few readers that have a built-in default (a library use of the domain without a process).

Tests and tools switch it with `use_database`, `use_redis` or, for a block, `using(...)`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from redis import Redis
from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine

from alerting.base.settings import Settings

# A pooled connection idle longer than this is pinged before use (see make_engine).
PING_AFTER_IDLE_S = 1.0
CONNECT = "connect"  # start(redis=CONNECT): connect to settings.redis_url


@dataclass(frozen=True)
class Runtime:
    """What this process runs with. `redis` None: nothing is queued after commit (the scheduler's
    reconciler queues the work from PostgreSQL)."""

    settings: Settings
    engine: Engine
    redis: Redis | None = None
    redis_prefix: str = ""  # RQ queue names are prefixed with it (benchmarks sharing one Redis)


_current: list[Runtime] = []


def start(settings: Settings, *, name: str = "sirena", redis: Redis | str | None = CONNECT,
          redis_prefix: str = "", pool_size: int = 5) -> Runtime:
    """Build this process's runtime from `settings` and make it current: an engine on the app
    database (`name` is the PostgreSQL application_name, seen in pg_stat_activity) and, unless
    `redis` is None or a connection of the caller's, a Redis client on settings.redis_url. A
    previous runtime's engine is disposed."""
    if redis == CONNECT:
        client: Redis | None = redis_connection(settings.redis_url, timeout_s=settings.redis_timeout_s)
    else:
        client = redis if isinstance(redis, Redis) else None
    runtime = Runtime(settings, make_engine(settings.database_url, application_name=name, pool_size=pool_size),
                      client, redis_prefix)
    stop()
    _current.append(runtime)
    return runtime


def current() -> Runtime:
    if not _current:
        raise RuntimeError("this process has no runtime: its entry point must call alerting.base.runtime.start()")
    return _current[0]


def settings() -> Settings | None:
    """The settings of this process's runtime; None before `start`."""
    return _current[0].settings if _current else None


def stop() -> None:
    """Dispose of the current runtime's engine (its Redis client closes with it)."""
    if _current:
        _current.pop().engine.dispose()


def use_redis(redis: Redis | None, *, prefix: str = "") -> Runtime:
    """The current runtime with another Redis client (a tool whose Redis restarted empty; tests
    that start a Redis of their own); None queues nothing after commit."""
    changed = replace(current(), redis=redis, redis_prefix=prefix)
    _current[:] = [changed]
    return changed


def use_database(settings: Settings, *, name: str = "sirena") -> Runtime:
    """Start a runtime on `settings` keeping the current Redis client (tests and benchmarks that
    move between databases)."""
    keep = _current[0] if _current else None
    return start(settings, name=name, redis=keep.redis if keep else None,
                 redis_prefix=keep.redis_prefix if keep else "")


@contextmanager
def using(**changes: Any) -> Iterator[Runtime]:
    """The current runtime with some fields replaced (`redis=…`, `settings=…`) for a block."""
    before = current()
    changed = replace(before, **changes)
    _current[:] = [changed]
    try:
        yield changed
    finally:
        _current[:] = [before]


def redis_connection(url: str, *, timeout_s: float = 2.0) -> Redis:
    """A Redis client that fails fast: bounded timeouts, no retries (redis-py retries 10× by default)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0),
                          health_check_interval=30)


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
