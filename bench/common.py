"""What the benchmarks share: a database of their own, child processes, CPU and memory sampling."""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerting.base import migrate  # noqa: E402
from alerting.base.settings import Settings  # noqa: E402
from alerting.interfaces.provision import SetupReport, ensure_database  # noqa: E402


def bench_settings(database: str, *, redis_db: int = 14) -> Settings:
    """Settings for a fresh, migrated database `database` (dropped first) and its own Redis db."""
    base = Settings.from_env()
    admin = create_engine(base.database_admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    admin.dispose()
    ensure_database(base, database, SetupReport(), lambda _m: None)
    owner = make_url(base.database_owner_url).set(database=database).render_as_string(hide_password=False)
    migrate.upgrade(owner)
    app = make_url(base.database_url).set(database=database).render_as_string(hide_password=False)
    redis = base.redis_url.rsplit("/", 1)[0] + f"/{redis_db}"
    return replace(base, database_url=app, database_owner_url=owner, redis_url=redis)


def drop_database(settings: Settings) -> None:
    admin = create_engine(settings.database_admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(settings.database_url).database}" WITH (FORCE)'))
    admin.dispose()


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"SIRENA_DATABASE_URL": settings.database_url,
                "SIRENA_DATABASE_OWNER_URL": settings.database_owner_url,
                "SIRENA_REDIS_URL": settings.redis_url,
                "SIRENA_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")})
    env.update(extra)
    return env


_children: list[subprocess.Popen[bytes]] = []


def _cleanup(*_: object) -> None:
    stop(*_children, timeout_s=3)
    if _:
        raise SystemExit(143)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _cleanup)


def sirena(*args: str, env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """A `sirena` command as a child process, stopped when the benchmark exits however it exits."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "sirena"), *args], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    _children.append(proc)
    return proc


def private_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server of the benchmark's own on a free port (no persistence): no other benchmark or
    test run on the machine can flush or read its queues. Returns the process and its URL."""
    import shutil
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _children.append(proc)
    url = f"redis://127.0.0.1:{port}/0"
    from redis import Redis

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if Redis.from_url(url, socket_timeout=0.5).ping():
                return proc, url
        except Exception:
            time.sleep(0.05)
    raise RuntimeError("the private redis-server did not start")


def start_simulator(config: Path, env: dict[str, str], log_file: Path | None = None,
                    *, timeout_s: float = 15.0) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """`sirena smsc-sim --config FILE` as a child; returns it and its ports once it listens."""
    proc, listening = start_simulator_listening(config, env, log_file, timeout_s=timeout_s)
    return proc, listening["ports"]


def start_simulator_listening(config: Path, env: dict[str, str], log_file: Path | None = None,
                              *, timeout_s: float = 15.0) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """As start_simulator; returns the simulator's whole "listening" line (ports, control_port)."""
    args = [str(ROOT / ".venv" / "bin" / "sirena"), "smsc-sim", "--config", str(config), "--no-records"]
    if log_file:
        args += ["--log", str(log_file)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    _children.append(proc)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if data.get("smsc_sim") == "listening":
            return proc, data
    proc.kill()
    raise RuntimeError("the simulator did not start")


def stop(*procs: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Sampler:
    """Samples peak RSS of named processes (and their children) every `period_s`."""

    procs: dict[str, int]
    period_s: float = 0.2
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.procs.items():
                try:
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak_rss_mb[name] = round(max(self.peak_rss_mb.get(name, 0.0), rss), 1)
            self._stop.wait(self.period_s)

    def close(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.peak_rss_mb


class ProcessCpu:
    """CPU seconds (user + system) of named processes between start() and stop(), plus the PostgreSQL
    backends serving `database` (found in pg_stat_activity while the run goes on: autovacuum
    workers and every pooled connection of the workers, the scheduler and the benchmark itself).

    A backend's CPU is read at each sample, so one that exits between samples loses at most one
    period's worth. PostgreSQL's shared background processes (WAL writer, checkpointer, background
    writer) serve every database on the machine: reported apart as `postgres-shared`, never summed
    into the processes' total.
    """

    def __init__(self, procs: dict[str, int], database_url: str | None = None, period_s: float = 0.25) -> None:
        self.procs = dict(procs)
        self._url = database_url
        self._period_s = period_s
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._owner: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _cpu(pid: int) -> float | None:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return None
        return t.user + t.system

    def _note(self, pid: int, owner: str) -> None:
        cpu = self._cpu(pid)
        if cpu is None:
            return
        if pid not in self._first:
            # A backend that appeared during the run started at ~0 CPU; one there before counts from now.
            self._first[pid] = 0.0 if self._started else cpu
            self._owner[pid] = owner
        self._last[pid] = cpu

    def _backends(self) -> dict[int, str]:
        if self._conn is None:
            return {}
        with self._conn.cursor() as cur:
            cur.execute("SELECT pid, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                        "(datname = current_database() OR backend_type IN "
                        "('walwriter', 'checkpointer', 'background writer'))")
            return {pid: ("postgres" if kind in ("client backend", "autovacuum worker", "parallel worker")
                          else "postgres-shared") for pid, kind in cur.fetchall()}

    def start(self) -> ProcessCpu:
        import psycopg2

        self._conn = None
        if self._url:
            self._conn = psycopg2.connect(self._url.replace("postgresql+psycopg2://", "postgresql://"))
            self._conn.autocommit = True
        self._started = False
        for pid, name in self._all():
            self._note(pid, name)
        self._started = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _all(self) -> list[tuple[int, str]]:
        return [(pid, name) for name, pid in self.procs.items()] + list(self._backends().items())

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            for pid, name in self._all():
                self._note(pid, name)

    def stop(self) -> dict[str, float]:
        """Seconds of CPU per name (the PostgreSQL backends summed as `postgres`)."""
        for pid, name in self._all():
            self._note(pid, name)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._conn is not None:
            self._conn.close()
        out: dict[str, float] = {}
        for pid, first in self._first.items():
            name = self._owner[pid]
            out[name] = out.get(name, 0.0) + max(0.0, self._last[pid] - first)
        return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total
