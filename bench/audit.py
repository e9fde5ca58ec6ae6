"""Audit trail benchmark: appends/s under concurrent writers, and verify speed over 1,000,000 events.

    .venv/bin/python bench/audit.py [--writers 8] [--appends 2000] [--events 1000000] [--keep]

Runs in a database of its own, `sirena_bench_audit` (created with the setup functions, migrated,
dropped at the start and, unless --keep, at the end); the user's `sirena` database is never touched.

1. appends: `--writers` processes, each appending `--appends` events as the application role, one
   transaction per event, while a sealer links them into the chain every `--seal-every` seconds
   (the scheduler's pass). Twice: through audit.trail.append_alone (the trail's own path: a pooled
   connection, no ORM session, as every refusal is written) → `appends_per_s`; and through
   audit.trail.append in an ORM session per event (a privileged action that does nothing else, so
   the session's own cost is counted too) → `appends_per_s_in_session`. Then the session path
   with threads of one process, and with synchronous_commit=off (the CPU ceiling). Beside them,
   the serial commit rate of one connection (the WAL flush rate, which bounded the old design, in
   which appends were serialized up to COMMIT). Then the rest is sealed, timed (events/s).
2. fill: the trail is extended to `--events` events in ONE set-based SQL statement (a recursive CTE
   that hashes and links them with the same audit.content_hash() and link the database uses).
3. verify: audit.verify.verify_chain over the whole trail, as `sirena audit verify` does, with a
   checkpoint written first; reports events/s, CPU per event (client, and server when local) and
   this process's peak RSS.

Targets (issue 8): >= 2,000 appends/s with 8 writers, >= 200,000 verified events/s.
The last line is one JSON object {"bench": "audit", ...}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, pool, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.base import db as dbmod
from alerting.base import (
    migrate,
    runtime,
)
from alerting.base.settings import Settings
from alerting.interfaces.provision import SetupReport, ensure_database
from audit.actor import Actor
from audit.checkpoints import write_checkpoint
from audit.seal import SEAL_LOCK_KEY, seal_committed
from audit.trail import append, append_alone
from audit.verify import verify_chain

DATABASE = "sirena_bench_audit"

# Extends the chain from its head to :target events in one statement. Payloads, actors and
# actions vary so the rows look like a year of an agency's trail (about 250 bytes each).
FILL_SQL = """
SELECT pg_advisory_xact_lock(%(lock)s);
INSERT INTO audit.events (seq, at, actor_kind, actor_name, actor_operator_id, actor_token_id, action,
  subject_type, subject_id, payload, origin_address, origin_user_agent, origin_interface, outcome, reason,
  content_hash, prev_hash, hash)
WITH RECURSIVE gen AS (
  SELECT coalesce(max(e.seq), 0) AS seq, clock_timestamp() AS at, NULL::text AS kind, NULL::text AS name,
         NULL::bigint AS op, NULL::text AS action, NULL::text AS subject_id, NULL::jsonb AS payload,
         NULL::text AS addr, NULL::text AS iface, NULL::text AS outcome, NULL::text AS reason,
         NULL::bytea AS content, NULL::bytea AS prev,
         coalesce((SELECT hash FROM audit.events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1),
                  '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea) AS hash
  FROM audit.events e
  UNION ALL
  SELECT n.seq, n.at, n.kind, n.name, n.op, n.action, n.subject_id, n.payload, n.addr, n.iface, n.outcome,
         n.reason, c.content, g.hash, sha256(g.hash || c.content || int8send(n.seq))
  FROM gen g
  CROSS JOIN LATERAL (
    SELECT g.seq + 1 AS seq,
           g.at + interval '31 ms' AS at,
           CASE WHEN g.seq %% 10 = 0 THEN 'system' ELSE 'operator' END AS kind,
           CASE WHEN g.seq %% 10 = 0 THEN 'fan-out' ELSE 'operador' || (g.seq %% 40) END AS name,
           CASE WHEN g.seq %% 10 = 0 THEN NULL ELSE g.seq %% 40 END AS op,
           (ARRAY['alert.composed', 'alert.submitted', 'alert.approved', 'alert.sending_started',
                  'alert.completed', 'login.ok', 'zone.edited', 'contacts.imported'])[1 + g.seq %% 8] AS action,
           ((g.seq + 1) %% 5000)::text AS subject_id,
           jsonb_build_object('alert_id', (g.seq + 1) %% 5000, 'counts', jsonb_build_object(
                              'delivered', g.seq %% 997, 'failed', g.seq %% 13),
                              'note', 'evento de prueba ' || g.seq) AS payload,
           '10.0.' || (g.seq %% 250) || '.' || (g.seq %% 200) AS addr,
           (ARRAY['console', 'api', 'cli', 'cap'])[1 + g.seq %% 4] AS iface,
           CASE WHEN g.seq %% 50 = 0 THEN 'refused' ELSE 'done' END AS outcome,
           CASE WHEN g.seq %% 50 = 0 THEN 'the composer cannot approve' END AS reason
  ) n
  CROSS JOIN LATERAL (
    SELECT audit.content_hash(n.at, n.kind, n.name, n.op, NULL, n.action, 'alert', n.subject_id, n.payload,
                              n.addr, 'Mozilla/5.0 (bench)', n.iface, n.outcome, n.reason) AS content
  ) c
  WHERE g.seq < %(target)s
)
SELECT seq, at, kind, name, op, NULL, action, 'alert', subject_id, payload, addr, 'Mozilla/5.0 (bench)', iface,
       outcome, reason, content, prev, hash
FROM gen
WHERE prev IS NOT NULL;
"""


def bench_settings(checkpoints: Path) -> Settings:
    """Settings for a fresh, migrated bench database, with checkpoints in a temporary directory."""
    env = Settings.from_env()
    drop(env)
    ensure_database(env, DATABASE, SetupReport(), lambda _m: None)
    owner = make_url(env.database_owner_url).set(database=DATABASE).render_as_string(hide_password=False)
    migrate.upgrade(owner)
    app = make_url(env.database_url).set(database=DATABASE).render_as_string(hide_password=False)
    return replace(env, database_url=app, database_owner_url=owner, audit_checkpoint_dir=checkpoints)


def drop(env: Settings) -> None:
    admin = create_engine(env.database_admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    admin.dispose()


def bench_appends(writers: int, per_writer: int) -> tuple[float, int]:
    """(appends/s, errors) for `writers` threads appending `per_writer` events each, through the
    session factory (bound by the caller), one transaction per event."""
    errors: list[BaseException] = []
    start = threading.Barrier(writers + 1)

    def writer(n: int) -> None:
        actor = Actor(kind="operator", name=f"bench-{n}", operator_id=n, interface="api", address="127.0.0.1")
        start.wait()
        try:
            for i in range(per_writer):
                with dbmod.transaction() as session:
                    append(session, actor=actor, action="alert.edited", subject_type="alert", subject_id=i % 100,
                           payload={"before": {"title": f"t{i}"}, "after": {"title": f"t{i + 1}"}})
        except BaseException as exc:  # counted and printed below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for exc in errors[:3]:
        print(f"append error: {exc!r}", file=sys.stderr)
    return (writers * per_writer - len(errors)) / elapsed, len(errors)


def _process_writer(url: str, n: int, per_writer: int, fsync: bool, alone: bool, ready: Any, go: Any,
                    done: Any) -> None:
    """One writer process: its own engine and connection, as a web or job worker has."""
    # A spawned process starts with no runtime (alerting.base.runtime): one of its own, no Redis.
    runtime.start(replace(Settings.from_env(), database_url=url), name=f"sirena-bench-audit-{n}", redis=None,
                  pool_size=1)
    engine = _app_engine(url, pool_size=1, fsync=fsync)
    dbmod.bind_sessions(engine)
    actor = Actor(kind="operator", name=f"bench-{n}", operator_id=n, interface="api", address="127.0.0.1")
    with dbmod.transaction() as session:  # connect before the clock starts
        backend = _Cpu(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
    ready.put(n)
    go.wait()
    own, server = _Cpu(os.getpid()), backend.now()
    own_start = own.now()
    errors = 0
    for i in range(per_writer):
        payload = {"before": {"title": f"t{i}"}, "after": {"title": f"t{i + 1}"}}
        try:
            if alone:
                append_alone(actor, "alert.edited", "alert", i % 100, payload=payload)
            else:
                with dbmod.transaction() as session:
                    append(session, actor=actor, action="alert.edited", subject_type="alert", subject_id=i % 100,
                           payload=payload)
        except Exception as exc:
            errors += 1
            print(f"append error: {exc!r}", file=sys.stderr)
    done.put((errors, own.now() - own_start, backend.now() - server))
    engine.dispose()


def _app_engine(url: str, *, pool_size: int, fsync: bool) -> Any:
    """The application's engine (alerting.base.runtime.make_engine: its pool and pings); fsync=False adds
    synchronous_commit=off on every connection (the CPU ceiling, not a durable configuration)."""
    engine = runtime.make_engine(url, application_name="sirena-bench-audit", pool_size=pool_size)
    if not fsync:
        event.listen(engine, "connect", lambda conn, _rec: _sync_off(conn))
    return engine


def _sync_off(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off")


class _Cpu:
    """CPU seconds of a process of this machine (a writer, or its PostgreSQL backend)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)

    def now(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)


class Sealer:
    """Seals every `every_s` seconds while the writers run, as the scheduler's pass does; records
    how many it sealed and the longest seal."""

    def __init__(self, url: str, every_s: float) -> None:
        self.engine = create_engine(url, poolclass=pool.NullPool,
                                    connect_args={"application_name": "sirena-bench-audit-sealer"})
        self.every_s = every_s
        self.sealed = 0
        self.longest_s = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.wait(self.every_s):
            t0 = time.perf_counter()
            self.sealed += seal_committed(self.engine)
            self.longest_s = max(self.longest_s, time.perf_counter() - t0)

    def __enter__(self) -> Sealer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()


def appends_in_processes(settings: Settings, writers: int, per_writer: int, *, alone: bool,
                         fsync: bool = True) -> tuple[float, int, float, float]:
    """(appends/s, errors, client and server CPU µs per append) with one process per writer: no GIL
    shared between writers. CPU per append does not depend on what else the machine runs."""
    ctx = multiprocessing.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_process_writer,
                         args=(settings.database_url, n, per_writer, fsync, alone, ready, go, done))
             for n in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    t0 = time.perf_counter()
    go.set()
    reports = [done.get(timeout=3600) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    errors = sum(r[0] for r in reports)
    total = writers * per_writer
    return ((total - errors) / elapsed, errors, sum(r[1] for r in reports) / total * 1e6,
            sum(r[2] for r in reports) / total * 1e6)


def serial_commit_ceiling(settings: Settings, n: int = 500) -> float:
    """Commits/s of one connection committing a one-row INSERT at a time: the WAL flush rate, which
    bounds any design whose appends are serialized up to COMMIT (ours: the lock is held to COMMIT)."""
    engine = create_engine(settings.database_owner_url, poolclass=pool.NullPool)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS bench_commits (x int)")
        raw.commit()
        t0 = time.perf_counter()
        for i in range(n):
            cur.execute("INSERT INTO bench_commits VALUES (%s)", (i,))
            raw.commit()
        return n / (time.perf_counter() - t0)
    finally:
        raw.close()
        engine.dispose()


def appends_with(settings: Settings, writers: int, per_writer: int, *, fsync: bool) -> tuple[float, int]:
    """bench_appends on a pool of `writers` connections; fsync=False sets synchronous_commit=off
    (the CPU ceiling of the append path, not a durable configuration)."""
    # A pooled connection per writer: overflow connections would be closed and reopened each time.
    engine = _app_engine(settings.database_url, pool_size=max(5, writers), fsync=fsync)
    dbmod.bind_sessions(engine)
    try:
        return bench_appends(writers, per_writer)
    finally:
        engine.dispose()


def fill(settings: Settings, target: int) -> float:
    """Extend the chain to `target` events in one statement (as the owner); returns seconds."""
    engine = create_engine(settings.database_owner_url, poolclass=pool.NullPool)
    t0 = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(FILL_SQL, {"lock": SEAL_LOCK_KEY, "target": target})
        raw.commit()
    finally:
        raw.close()
    engine.dispose()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--appends", type=int, default=2000, help="appends per writer")
    parser.add_argument("--events", type=int, default=1_000_000, help="trail size for the verify run")
    parser.add_argument("--workers", type=int, default=None, help="verify processes (default: up to 4, per CPU)")
    parser.add_argument("--seal-every", type=float, default=2.0,
                        help="seconds between seals while appending (the scheduler's pass interval)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--reuse", action="store_true", help="only verify the database a --keep run left")
    args = parser.parse_args()

    figures: dict[str, object] = {"bench": "audit", "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        settings = reuse_settings(Path(tmp)) if args.reuse else bench_settings(Path(tmp))
        runtime.start(settings, name="sirena-bench-audit", redis=None)
        try:
            if not args.reuse:
                ceiling = serial_commit_ceiling(settings)
                print(f"serial commits (WAL flush rate, the ceiling of a serialized append): {ceiling:,.0f}/s")
                with Sealer(settings.database_url, args.seal_every) as sealer:
                    rate, errors, client_us, server_us = appends_in_processes(
                        settings, args.writers, args.appends, alone=True)
                    in_session, session_errors, session_client_us, session_server_us = appends_in_processes(
                        settings, args.writers, args.appends, alone=False)
                cpus = os.cpu_count() or 1
                append_ceiling = cpus * 1e6 / (client_us + server_us)
                print(f"appends (trail alone, append_alone): {args.writers} writer processes x {args.appends}: "
                      f"{rate:,.0f} appends/s, {errors} errors; CPU per append: client {client_us:.0f} µs, "
                      f"server {server_us:.0f} µs → {append_ceiling:,.0f}/s if this machine's {cpus} CPUs were free")
                print(f"appends (ORM session per event, append): {in_session:,.0f} appends/s, {session_errors} "
                      f"errors; CPU per append: client {session_client_us:.0f} µs (session, append), "
                      f"server {session_server_us:.0f} µs")
                print(f"meanwhile sealed {sealer.sealed:,} every {args.seal_every:g} s, "
                      f"longest seal {sealer.longest_s:.2f} s")
                threads, _ = appends_with(settings, args.writers, args.appends // 4, fsync=True)
                print(f"appends: {args.writers} writer threads in one process: {threads:,.0f} appends/s")
                nosync, _ = appends_with(settings, args.writers, args.appends // 4, fsync=False)
                print(f"appends with synchronous_commit=off (CPU ceiling, not durable): {nosync:,.0f}/s")
                seal_engine = create_engine(settings.database_url, poolclass=pool.NullPool)
                t0 = time.perf_counter()
                backlog = seal_committed(seal_engine)
                seal_s = time.perf_counter() - t0
                seal_engine.dispose()
                print(f"seal: {backlog:,} events left unsealed by the thread runs, sealed in {seal_s:.2f} s "
                      f"({backlog / seal_s:,.0f} events/s)")
                fill_s = fill(settings, args.events)
                print(f"fill: chain extended to {args.events:,} events in one statement in {fill_s:.1f} s")
                figures.update(writers=args.writers, appends=args.writers * args.appends,
                               appends_per_s=round(rate, 1), append_errors=errors,
                               appends_per_s_in_session=round(in_session, 1), append_errors_in_session=session_errors,
                               append_in_session_client_us=round(session_client_us),
                               append_in_session_server_us=round(session_server_us),
                               appends_per_s_threads=round(threads, 1),
                               serial_commits_per_s=round(ceiling, 1), appends_per_s_sync_off=round(nosync, 1),
                               append_client_us=round(client_us), append_server_us=round(server_us),
                               appends_per_s_cpu_bound=round(append_ceiling),
                               sealed_during_appends=sealer.sealed, longest_seal_s=round(sealer.longest_s, 3),
                               seal_backlog=backlog, seal_events_per_s=round(backlog / seal_s),
                               fill_s=round(fill_s, 2))
            engine = runtime.make_engine(settings.database_url, application_name="sirena-bench-audit")
            write_checkpoint(engine, settings)
            cpu_before = _cpu_s()
            verdict = verify_chain(engine, settings, workers=args.workers)
            cpu = _cpu_s() - cpu_before
            engine.dispose()
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            per_s = verdict.count / verdict.elapsed_s
            print(f"verify: {verdict.count:,} events in {verdict.elapsed_s:.2f} s = {per_s:,.0f} events/s "
                  f"({verdict.workers} processes, rechecked {verdict.rechecked}), ok={verdict.ok}, "
                  f"peak RSS of this process {rss_mb:.0f} MB")
            server = verdict.server_cpu_s
            client_us = cpu / max(1, verdict.count) * 1e6
            server_us = server / max(1, verdict.count) * 1e6 if server is not None else None
            # Wall time on a busy machine says little; CPU per event does not depend on the neighbours.
            # Bound by all CPUs shared, and by each worker's slower side (client and its backend pipeline).
            projected = min((os.cpu_count() or 1) * 1e6 / (client_us + server_us),
                            verdict.workers * 1e6 / max(client_us, server_us)) if server_us else None
            print(f"verify CPU per event: client {client_us:.2f} µs (incl. worker start-up), server "
                  + (f"{server_us:.2f} µs → {projected:,.0f} events/s if this machine's {os.cpu_count()} CPUs "
                     "were free" if server_us is not None else "unknown (database not local)"))
            figures.update(verify_client_us_per_event=round(client_us, 2),
                           verify_server_us_per_event=round(server_us, 2) if server_us is not None else None,
                           verify_events_per_s_cpu_bound=round(projected) if projected else None)
            if not verdict.ok:
                print(f"verify problem: {verdict.first}", file=sys.stderr)
            figures.update(verify_events=verdict.count, verify_s=round(verdict.elapsed_s, 3),
                           verify_events_per_s=round(per_s), verify_workers=verdict.workers,
                           verify_client_cpu_s=round(cpu, 2), verify_ok=verdict.ok, peak_rss_mb=round(rss_mb, 1),
                           targets={"appends_per_s": 2000, "verify_events_per_s": 200000})
            print(json.dumps(figures))
        finally:
            if not args.keep:
                drop(settings)


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def reuse_settings(checkpoints: Path) -> Settings:
    env = Settings.from_env()
    app = make_url(env.database_url).set(database=DATABASE).render_as_string(hide_password=False)
    owner = make_url(env.database_owner_url).set(database=DATABASE).render_as_string(hide_password=False)
    return replace(env, database_url=app, database_owner_url=owner, audit_checkpoint_dir=checkpoints)


if __name__ == "__main__":
    main()
