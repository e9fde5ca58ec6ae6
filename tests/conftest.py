"""Test fixtures: real PostgreSQL+PostGIS and real Redis, isolated per test.

- Each pytest-xdist worker gets its own database cloned from a migrated template
  (`sirena_test_tpl_<digest of the migrations>`, so checkouts with different migrations never
  fight over one) and its own Redis db number.
- `db`: a session inside an outer transaction rolled back after the test; code under test that
  opens `transaction()` joins it through savepoints, so commits inside the code still work.
- `committed_db`: a fresh database of its own (for tests that span processes), dropped afterwards.
- `redis_db`: the worker's Redis db, flushed before each test; `run_jobs()` runs queued RQ jobs
  in-process (burst) against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from alerting.base import db as dbmod
from alerting.base import migrate, outbox
from alerting.base.settings import Settings
from alerting.interfaces.provision import SetupReport, ensure_database, ensure_postgis_available, ensure_postgres

pytest_plugins = ["tests.faults.summary"]  # the fault suite's summary table, in the xdist controller too
_LOCK_KEY = 727274  # advisory lock serializing template builds across xdist workers


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def _run_id() -> str:
    """Distinct per pytest run (shared by its xdist workers), so concurrent runs never collide."""
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"p{os.getpid()}"
    return uid[:8].lower()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this test process's own (no persistence), so runs and workers never share one."""
    import shutil
    import subprocess
    import time

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `sirena setup` (or `make test`) first")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir), "--maxmemory-policy", "noeviction"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            if outbox.redis_connection(url, timeout_s=0.5).ping():
                break
        except Exception:
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(5)


def _migrations_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(migrate.MIGRATIONS.rglob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    # Models shape the template too (create_all is never used, but a stale template hides bugs).
    return digest.hexdigest()[:16]


def _url_for(settings: Settings, url: str, dbname: str) -> str:
    return make_url(url).set(database=dbname).render_as_string(hide_password=False)


def _admin(settings: Settings):  # type: ignore[no-untyped-def]
    return create_engine(settings.database_admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")


def _drop_database(settings: Settings, name: str) -> None:
    engine = _admin(settings)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@contextmanager
def upgraded_database(base_settings: Settings, settings: Settings, suffix: str, before: str,
                      seed: Callable[[Any], None], **overrides: Any) -> Iterator[Settings]:
    """A database of its own migrated to `before`, seeded by `seed(connection)` as the app role,
    then upgraded to the head and configured as this process's database; dropped afterwards."""
    name = f"sirena_test_{_run_id()}_{_worker()}_{suffix}"
    _drop_database(base_settings, name)
    ensure_database(base_settings, name, SetupReport(), lambda _m: None)
    own = replace(base_settings, database_url=_url_for(base_settings, base_settings.database_url, name),
                  database_owner_url=_url_for(base_settings, base_settings.database_owner_url, name), **overrides)
    try:
        migrate.upgrade(own.database_owner_url, before)
        app = create_engine(own.database_url, poolclass=pool.NullPool)
        with app.begin() as conn:
            seed(conn)
        app.dispose()
        migrate.upgrade(own.database_owner_url)
        dbmod.configure_db(own, application_name=f"sirena-test-{suffix}")
        yield own
    finally:
        dbmod.engine().dispose()
        _drop_database(base_settings, name)
        dbmod.configure_db(settings, application_name=f"sirena-test-{_worker()}")


def _template_name() -> str:
    return f"sirena_test_tpl_{_migrations_digest()}"


def _build_template(settings: Settings) -> str:
    """The migrated template for this checkout's migrations (built once); returns its name."""
    say = lambda _m: None  # noqa: E731
    name = _template_name()
    engine = _admin(settings)
    with engine.connect() as conn:
        done = conn.execute(
            text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname=:d"),
            {"d": name},
        ).scalar()
        if done == "migrated":
            engine.dispose()
            return name
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # a build cut short
    ensure_database(settings, name, SetupReport(), say)
    migrate.upgrade(_url_for(settings, settings.database_owner_url, name))
    with engine.connect() as conn:
        conn.execute(text(f"COMMENT ON DATABASE \"{name}\" IS 'migrated'"))
    engine.dispose()
    return name


def clone_database(settings: Settings, name: str) -> Settings:
    """A fresh database `name` from the migrated template; returns settings pointing at it."""
    engine = _admin(settings)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
        try:
            template = _build_template(settings)
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            owner = make_url(settings.database_owner_url).username
            conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{owner}" TEMPLATE "{template}"'))
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
    engine.dispose()
    # Grants are per database: re-apply what setup does (idempotent).
    ensure_database(settings, name, SetupReport(), lambda _m: None)
    return replace(
        settings,
        database_url=_url_for(settings, settings.database_url, name),
        database_owner_url=_url_for(settings, settings.database_owner_url, name),
    )


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory, private_redis: str) -> Settings:
    """Settings from the environment, with test-only secret key, checkpoints and a private Redis."""
    env = Settings.from_env()
    tmp = tmp_path_factory.mktemp("sirena")
    key = tmp / "secret_key"
    key.write_text("test-secret-key-" + "x" * 40)
    redis_url = private_redis
    return replace(
        env,
        secret_key_file=key,
        audit_checkpoint_dir=tmp / "checkpoints",
        data_dir=tmp / "data",
        redis_url=redis_url,
    )


@pytest.fixture(scope="session")
def settings(base_settings: Settings) -> Iterator[Settings]:
    """Settings pointing at this worker's own test database (created from the template)."""
    report = SetupReport()
    ensure_postgres(base_settings, report, lambda _m: None)
    ensure_postgis_available(base_settings, report, lambda _m: None)
    name = f"sirena_test_{_run_id()}_{_worker()}"
    worker_settings = clone_database(base_settings, name)
    dbmod.configure_db(worker_settings, application_name=f"sirena-test-{_worker()}")
    yield worker_settings
    dbmod.engine().dispose()
    _drop_database(base_settings, name)


@pytest.fixture
def db(settings: Settings) -> Iterator[Session]:
    """A session in a transaction that is rolled back after the test."""
    connection = dbmod.engine().connect()
    outer = connection.begin()
    dbmod.bind_sessions(connection, join_transaction_mode="create_savepoint")
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        if outer.is_active:
            outer.rollback()
        connection.close()
        dbmod.bind_sessions(dbmod.engine(), join_transaction_mode="conditional_savepoint")


_counter = {"n": 0}


@pytest.fixture
def committed_db(base_settings: Settings, settings: Settings) -> Iterator[Settings]:
    """A database of its own, committed for real (for tests that start other processes)."""
    _counter["n"] += 1
    name = f"sirena_test_{_run_id()}_{_worker()}_c{_counter['n']}"
    own = clone_database(base_settings, name)
    dbmod.configure_db(own, application_name="sirena-test-committed")
    try:
        yield own
    finally:
        dbmod.engine().dispose()
        _drop_database(base_settings, name)
        dbmod.configure_db(settings, application_name=f"sirena-test-{_worker()}")


@pytest.fixture
def redis_db(settings: Settings) -> Iterator[object]:
    """This worker's Redis db, flushed; the outbox enqueues into it."""
    conn = outbox.redis_connection(settings.redis_url)
    conn.flushdb()
    outbox.configure_outbox(conn)
    try:
        yield conn
    finally:
        outbox.configure_outbox(None)
        conn.flushdb()


@pytest.fixture
def run_jobs(redis_db: object):  # type: ignore[no-untyped-def]
    """Run every queued job in-process, highest priority first, until the queues are empty."""
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    def run(queues: tuple[str, ...] = outbox.PRIORITY_QUEUES) -> int:
        qs = [Queue(name, connection=redis_db, serializer=JSONSerializer) for name in queues]
        worker = SimpleWorker(qs, connection=redis_db, serializer=JSONSerializer)
        # No pubsub channel (it only carries `rq` stop commands, which no test sends): with redis-py
        # 8, stopping its thread at the end of a burst could wait out its 60 s poll.
        worker.subscribe = lambda: None  # type: ignore[method-assign]
        worker.work(burst=True, with_scheduler=False)
        return worker.successful_job_count

    return run


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def factories(db: Session):  # type: ignore[no-untyped-def]
    """The factories module, bound to this test's session."""
    from tests import factories as f

    for factory_cls in f.ALL:
        factory_cls._meta.sqlalchemy_session = db
    return f


# --- the carrier side: the project's simulator and an in-process gateway ---------------------

SIM_PASSWORDS = {"alpha": "alpha-pw", "beta": "beta-pw"}  # SMPP allows 8 characters


def carriers_toml(ports: dict[str, int], *, binds: int = 2, window: int = 50, tps: int = 20000,
                  test: bool = True, extra: str = "") -> str:
    """A carriers file for the simulator's alpha and beta, in the shape of the demo's."""
    parts = ["""
[senders.SIRENA-SC]
kind = "short"
address = "4242"

[senders.BOMBEROS]
kind = "shared"
address = "5555"
keyword = "BOMBEROS"
"""]
    for name, port in ports.items():
        parts.append(f"""
[carriers.{name}]
host = "127.0.0.1"
port = {port}
system_id = "{name}"
password_env = "SIM_{name.upper()}_PASSWORD"
binds = {binds}
tps = {tps}
window = {window}
response_timeout_s = 3
breaker_cooldown_s = 1
reconnect_max_s = 2
test = {"true" if test else "false"}
senders = ["SIRENA-SC"{', "BOMBEROS"' if name == "alpha" else ""}]
""")
    return "\n".join(parts) + extra


def sim_env() -> dict[str, str]:
    return {f"SIM_{k.upper()}_PASSWORD": v for k, v in SIM_PASSWORDS.items()}


@pytest.fixture
def simulator():  # type: ignore[no-untyped-def]
    """Two simulated carriers, alpha and beta, on free ports; stopped after the test."""
    from smsc_sim import CarrierConfig, SimConfig, Simulator

    sim = Simulator(SimConfig(carriers=[
        CarrierConfig(name=name, port=0, system_id=name, password=pw) for name, pw in SIM_PASSWORDS.items()
    ]))
    sim.start_in_thread()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def gateway(committed_db, redis_db, simulator):  # type: ignore[no-untyped-def]
    """An in-process gateway (pool bound to the simulator, raw inbound stored) on a committed DB."""
    from broadcast.carriers import parse_carriers
    from broadcast.gateway import Gateway, sync_senders
    from broadcast.inbound import InboundStore

    config = parse_carriers(carriers_toml(simulator.ports()), sim_env())
    sync_senders(config)
    inbound = InboundStore()
    gw = Gateway(config, name="gw-test", on_deliver=inbound, flash_lane=False)  # jobs run by hand (run_jobs)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
        inbound.close()


# --- the `sirena` command as a user runs it: its own process, settings from the environment ------


def cli_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The environment a `sirena` process needs to work on `settings`' database and Redis."""
    return {**os.environ, "SIRENA_DATABASE_URL": settings.database_url,
            "SIRENA_DATABASE_OWNER_URL": settings.database_owner_url, "SIRENA_REDIS_URL": settings.redis_url,
            "SIRENA_SECRET_KEY_FILE": str(settings.secret_key_file), "SIRENA_DATA_DIR": str(data_dir)}


def run_sirena(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from alerting.interfaces.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def last_json_line(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object a `--json` command prints last; the command must have succeeded."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def worker_process(committed_db, redis_db, simulator, tmp_path):  # type: ignore[no-untyped-def]
    """start() → (cluster, proc): a real `sirena worker` process bound to the simulator's alpha and
    beta, on a committed database of its own, once it listens (every carrier up or its error
    published). Ask for it before `db` (or what uses `db`: the web client), so the test's session
    joins the database the worker uses. Every process is stopped afterwards."""
    from tests.cluster import Cluster

    cluster = Cluster.with_carriers(committed_db, carriers_toml(simulator.ports()), tmp_path)

    def start(**env: str):  # type: ignore[no-untyped-def]
        cluster.env.update(env)  # settings of this worker beyond the cluster's (SIRENA_ONCALL_GROUP=…)
        proc = cluster.worker()
        cluster.wait_listening(redis_db, proc)
        return cluster, proc

    try:
        yield start
    finally:
        cluster.stop()
