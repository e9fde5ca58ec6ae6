"""A throwaway PostgreSQL cluster the fault suite creates, restarts and removes: never the machine's own.

`initdb` into a fresh directory (as the `postgres` OS user: the server refuses to run as root),
started by `pg_ctl` on a free loopback port with its socket in that directory, fsync off (the data
is thrown away; a server crash loses nothing with fsync off, only an OS crash would). Never
`synchronous_commit=off`: a crash would then undo commits the workers were told had happened.
PostGIS comes from the installed package. Roles, database, grants and schema are made by the
project's own set-up functions (`alerting.interfaces.provision`, `alerting.base.migrate`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from alerting.base.settings import Settings
from alerting.interfaces.provision import SetupReport, ensure_database, migrate_database


def _pg_bin() -> Path:
    base = Path("/usr/lib/postgresql")
    versions = sorted((p for p in base.iterdir() if (p / "bin" / "pg_ctl").exists()), key=lambda p: int(p.name))
    if not versions:
        raise RuntimeError("PostgreSQL server binaries are not installed (/usr/lib/postgresql/*/bin)")
    return versions[-1] / "bin"


class ThrowawayPostgres:
    """One private cluster on `port`; `restart(mode)` is the fault, `remove()` deletes everything."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = _pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="sirena-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        user = pwd.getpwnam("postgres")
        self._uid, self._gid = user.pw_uid, user.pw_gid
        os.chown(self.root, self._uid, self._gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
                  "--locale", "C.UTF-8")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*as_postgres, str(self.bin / tool), *args], capture_output=True, text=True,
                              check=check, timeout=120)

    def _ctl(self, action: str, *extra: str) -> float:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        started = time.monotonic()
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60",
                  action, *extra)
        return time.monotonic() - started

    def start(self) -> float:
        return self._ctl("start")

    def restart(self, mode: str = "immediate") -> float:
        """Restart now; `immediate` is a crash (no checkpoint, every connection cut). Returns seconds."""
        return self._ctl("restart", "-m", mode)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def settings_for(self, base: Settings, dbname: str = "sirena_faults") -> Settings:
        """`base` pointed at this cluster: roles, database, PostGIS and schema made as `sirena setup` does."""

        def moved(url: str, database: str) -> str:
            return make_url(url).set(host="127.0.0.1", port=self.port, database=database).render_as_string(
                hide_password=False)

        settings = replace(base, database_url=moved(base.database_url, dbname),
                           database_owner_url=moved(base.database_owner_url, dbname),
                           database_admin_url=moved(base.database_admin_url, "postgres"))
        ensure_database(settings, dbname, SetupReport(), lambda _m: None)
        migrate_database(settings, dbname, SetupReport(), lambda _m: None)
        return settings

    def ping(self) -> bool:
        engine = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres",
                               poolclass=pool.NullPool, connect_args={"connect_timeout": 1})
        try:
            with engine.connect() as conn:
                return conn.execute(text("SELECT 1")).scalar() == 1
        except Exception:
            return False
        finally:
            engine.dispose()
