"""`sirena setup`: install and start what is missing, create roles and database, migrate.

Idempotent: each step checks first and acts only when something is missing; a second run reports
"nothing to do". It never stops or reconfigures a PostgreSQL or Redis that is already running.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Engine, make_url

from alerting.base import migrate
from alerting.base.errors import ConfigError, SetupError
from alerting.base.runtime import redis_connection
from alerting.base.settings import Settings
from broadcast import carrier_facts
from broadcast.carriers import load_carriers

Say = Callable[[str], None]


@dataclass
class SetupReport:
    actions: list[str] = field(default_factory=list)

    def did(self, what: str, say: Say) -> None:
        self.actions.append(what)
        say(f"  + {what}")


def run_setup(settings: Settings, say: Say = print, *, database: str | None = None,
              browser: bool = False) -> SetupReport:
    """Bring this machine to a working state for `settings`; raises SetupError saying what to do.

    `browser` also installs Debian's Chromium, which the console's browser tests drive.
    """
    report = SetupReport()
    if browser:
        ensure_chromium(report, say)
    ensure_postgres(settings, report, say)
    ensure_postgis_available(settings, report, say)
    ensure_redis(settings, report, say)
    dbname = database or make_url(settings.database_url).database
    if not dbname:
        raise ConfigError("SIRENA_DATABASE_URL names no database (…/dbname at its end)",
                          variable="SIRENA_DATABASE_URL")
    ensure_database(settings, dbname, report, say)
    ensure_secret_key(settings, report, say)
    migrate_database(settings, dbname, report, say)
    ensure_senders(settings, dbname, report, say)
    return report


def ensure_senders(settings: Settings, dbname: str, report: SetupReport, say: Say) -> None:
    """Write the carriers file's senders to the database, so alerts can be composed (console, API,
    CAP, e-mail) before any gateway worker has run; each worker writes them again at its start.
    No password variable is needed here. Raises ConfigError naming a bad line of the file."""
    from sqlalchemy.orm import Session


    config = load_carriers(settings.carriers_file, None)
    url = make_url(settings.database_url).set(database=dbname)
    engine = create_engine(url, poolclass=pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with Session(engine) as session, session.begin():
            changed = carrier_facts.write(session, config)
    finally:
        engine.dispose()
    if changed:
        report.did(f"senders from {settings.carriers_file.name}: {', '.join(changed)}", say)


# --- packages and services -------------------------------------------------------------------


def _can_apt() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None and Path("/etc/debian_version").exists()


_apt_updated = False


def apt_install(packages: list[str], report: SetupReport, say: Say) -> None:
    """Install Debian packages, or raise SetupError telling a person what to run."""
    global _apt_updated
    if not _can_apt():
        raise SetupError(
            "cannot install " + ", ".join(packages) + " here (needs root on Debian). Install them with: "
            "sudo apt-get update && sudo apt-get install -y " + " ".join(packages)
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env, capture_output=True)
        _apt_updated = True
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-q", *packages], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SetupError(f"apt-get install {' '.join(packages)} failed: {proc.stderr.strip()[-500:]}")
    report.did("installed " + " ".join(packages), say)


def _admin_engine(settings: Settings, dbname: str | None = None) -> Engine:
    url = make_url(settings.database_admin_url)
    if dbname:
        url = url.set(database=dbname)
    return create_engine(url, poolclass=pool.NullPool, connect_args={"connect_timeout": 3})


def _postgres_up(settings: Settings) -> bool:
    try:
        with _admin_engine(settings).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def _pg_major() -> str | None:
    base = Path("/usr/lib/postgresql")
    if not base.exists():
        return None
    versions = sorted((p.name for p in base.iterdir() if (p / "bin" / "postgres").exists()), key=int)
    return versions[-1] if versions else None


def ensure_postgres(settings: Settings, report: SetupReport, say: Say) -> None:
    if _postgres_up(settings):
        return
    if _pg_major() is None:
        apt_install(["postgresql", "postgresql-contrib"], report, say)
    major = _pg_major()
    if shutil.which("pg_ctlcluster") and major:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", major, "main", "start"],
            capture_output=True, check=False,
        )
        report.did(f"started PostgreSQL {major} (cluster main)", say)
    for _ in range(30):
        if _postgres_up(settings):
            return
        time.sleep(0.5)
    raise SetupError(
        f"PostgreSQL is not reachable at {make_url(settings.database_admin_url).render_as_string()}: "
        "start it (pg_ctlcluster --skip-systemctl-redirect 15 main start) or set SIRENA_DATABASE_ADMIN_URL"
    )


def ensure_postgis_available(settings: Settings, report: SetupReport, say: Say) -> None:
    def available() -> bool:
        with _admin_engine(settings).connect() as conn:
            return bool(conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name='postgis'")).scalar())

    if available():
        return
    with _admin_engine(settings).connect() as conn:
        major = str(conn.execute(text("SHOW server_version_num")).scalar())[:2]
    apt_install([f"postgresql-{major}-postgis-3"], report, say)
    if not available():
        raise SetupError(f"PostGIS is still not available to PostgreSQL {major} after installing it")


def _redis_up(url: str) -> bool:
    try:
        return bool(redis_connection(url, timeout_s=1.0).ping())
    except Exception:
        return False


def ensure_redis(settings: Settings, report: SetupReport, say: Say) -> None:
    if _redis_up(settings.redis_url):
        return
    url = make_url(settings.redis_url.replace("redis://", "postgresql://", 1))  # reuse the URL parser
    host, port = url.host or "127.0.0.1", url.port or 6379
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise SetupError(f"Redis at {host}:{port} is not reachable; it is not on this machine, so start it there")
    if shutil.which("redis-server") is None:
        apt_install(["redis-server"], report, say)
    data = Path("/var/lib/redis") if os.geteuid() == 0 else settings.data_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
         "--save", "", "--appendonly", "no", "--dir", str(data)],
        capture_output=True, check=False,
    )
    for _ in range(20):
        if _redis_up(settings.redis_url):
            report.did(f"started Redis on 127.0.0.1:{port}", say)
            return
        time.sleep(0.25)
    raise SetupError(f"Redis did not start on 127.0.0.1:{port}; run: redis-server --port {port} --daemonize yes")


def ensure_chromium(report: SetupReport, say: Say) -> None:
    """Debian's chromium: Playwright's own browser download is not reachable from these machines."""
    if Path("/usr/bin/chromium").exists():
        return
    apt_install(["chromium"], report, say)


# --- roles, database, extension, grants ------------------------------------------------------


def role_names(settings: Settings) -> tuple[str, str]:
    """(owner, app) role names, taken from the two database URLs."""
    owner = make_url(settings.database_owner_url).username or "sirena_owner"
    app = make_url(settings.database_url).username or "sirena_app"
    return owner, app


def ensure_database(settings: Settings, dbname: str, report: SetupReport, say: Say,
                    *, template: str | None = None) -> None:
    """Create the roles, the database (optionally from a template) and PostGIS in it."""
    owner, app = role_names(settings)
    with _admin_engine(settings).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for role in (owner, app):
            if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname=:r"), {"r": role}).scalar():
                conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
                report.did(f"created role {role}", say)
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname=:d"), {"d": dbname}).scalar():
            tmpl = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{dbname}" OWNER "{owner}"{tmpl}'))
            report.did(f"created database {dbname}", say)
    with _admin_engine(settings, dbname).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not conn.execute(text("SELECT 1 FROM pg_extension WHERE extname='postgis'")).scalar():
            conn.execute(text("CREATE EXTENSION postgis"))
            report.did(f"created extension postgis in {dbname}", say)
        conn.execute(text(f'GRANT CONNECT, TEMPORARY ON DATABASE "{dbname}" TO "{app}"'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{app}"'))
        conn.execute(text(
            f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA public '
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{app}"'))
        conn.execute(text(
            f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA public '
            f'GRANT USAGE, SELECT ON SEQUENCES TO "{app}"'))


def ensure_secret_key(settings: Settings, report: SetupReport, say: Say) -> None:
    path = settings.secret_key_file
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48) + "\n")
    report.did(f"generated the secret key in {path} (mode 600)", say)


def migrate_database(settings: Settings, dbname: str, report: SetupReport, say: Say) -> None:
    owner_url = make_url(settings.database_owner_url).set(database=dbname).render_as_string(hide_password=False)
    if migrate.current_heads(owner_url) != migrate.script_heads():
        migrate.upgrade(owner_url)
        report.did(f"migrated {dbname} to {', '.join(sorted(migrate.script_heads()))}", say)
