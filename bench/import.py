"""Contact import benchmark: N synthetic rows written to a CSV, imported into a database of its own.

    .venv/bin/python bench/import.py [--rows 1000000] [--reimport] [--keep] [--more-numbers 0.3]

The database is `sirena_bench_import` (created with the setup functions, migrated, dropped at the
start of each run and, unless --keep, at the end); the user's `sirena` database is never touched.
The file mixes number spellings, Spanish headers, attributes, a home location on every row, a work
location and a group on some, 0.5% bad numbers and 0.2% duplicated numbers. `--reimport` imports the
same file a second time (every contact already there: the update path). `--more-numbers SHARE` adds a
`teléfono 2` column, filled on that share of the rows (issue 21). Prints rows/s and the peak
RSS of this process; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.base import db as dbmod
from alerting.base import migrate, runtime
from alerting.base.settings import Settings
from alerting.directory.contacts import import_contacts
from alerting.interfaces.provision import SetupReport, ensure_database
from audit.actor import Actor

DATABASE = "sirena_bench_import"
GROUPS = ["brigadas", "defensa civil", "salud", "bomberos norte", "voluntarios"]
COMUNAS = ["Santiago", "Providencia", "Ñuñoa", "Maipú", "La Florida", "Puente Alto", "Las Condes", "Recoleta"]
ROLES = ["", "", "", "brigadista", "paramédico", "voluntario"]


def generate(path: Path, rows: int, seed: int = 7, more_numbers: float = 0.0) -> int:
    """Write the synthetic CSV; returns its size in bytes."""
    rnd = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["nombre", "teléfono", "idioma", "grupo", "lat", "lon", "lat_trabajo", "lon_trabajo",
                      "comuna", "rol", *(["teléfono 2"] if more_numbers else [])])
        for i in range(rows):
            if rnd.random() < 0.002 and i > 0:
                i = rnd.randrange(i)  # a duplicated number
            national = 940_000_000 + (i * 7919) % 29_000_000  # distinct, all valid Chilean mobiles (940-968)
            spelling = i % 3
            phone = (f"+56{national}" if spelling == 0 else
                     f"{str(national)[0]} {str(national)[1:5]} {str(national)[5:]}" if spelling == 1 else str(national))
            if rnd.random() < 0.005:
                phone = rnd.choice(["12345", "no tiene", "+56 2", "5.6912E+10"])
            lat, lon = -33.45 + rnd.uniform(-0.15, 0.15), -70.65 + rnd.uniform(-0.15, 0.15)
            work = rnd.random() < 0.3
            out.writerow([
                f"Persona {i}", phone, "en" if rnd.random() < 0.05 else "es",
                rnd.choice(GROUPS) if rnd.random() < 0.1 else "",
                f"{lat:.6f}", f"{lon:.6f}",
                f"{lat + 0.01:.6f}" if work else "", f"{lon + 0.01:.6f}" if work else "",
                rnd.choice(COMUNAS), rnd.choice(ROLES),
                # a second phone: distinct, valid mobiles out of the first numbers' range (970-999)
                *([f"+56{970_000_000 + (i * 7919) % 29_000_000}" if rnd.random() < more_numbers else ""]
                  if more_numbers else []),
            ])
    return path.stat().st_size


def bench_settings() -> Settings:
    """Settings pointing at the bench database, created fresh and migrated."""
    env = Settings.from_env()
    admin = create_engine(env.database_admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    admin.dispose()
    ensure_database(env, DATABASE, SetupReport(), lambda _m: None)
    url = lambda u: make_url(u).set(database=DATABASE).render_as_string(hide_password=False)  # noqa: E731
    settings = replace(env, database_url=url(env.database_url), database_owner_url=url(env.database_owner_url))
    migrate.upgrade(settings.database_owner_url)
    return settings


def drop(settings: Settings) -> None:
    admin = create_engine(settings.database_admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    admin.dispose()


def _server_cpu_s(pid: int) -> float | None:
    """CPU seconds used so far by a local PostgreSQL backend (None when /proc cannot tell)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def run_import(path: Path, settings: Settings, label: str) -> tuple[float, dict[str, object]]:
    """Import `path` in one transaction; returns wall seconds (COMMIT included) and the report, with the
    CPU seconds of this process and its workers ("client") and of the PostgreSQL backend ("server")."""
    started, cpu_before = time.perf_counter(), _own_cpu_s()
    with dbmod.transaction() as session:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        server_before = _server_cpu_s(pid)
        report = import_contacts(session, path, settings=settings, group=None, dry_run=False,
                                 actor=Actor.system("bench-import"))
    seconds = time.perf_counter() - started
    server_after = _server_cpu_s(pid)
    result = report.as_dict()
    result["client_cpu_s"] = round(_own_cpu_s() - cpu_before, 1)
    result["server_cpu_s"] = (round(server_after - server_before, 1)
                              if server_before is not None and server_after is not None else None)
    print(f"{label}: {report.rows_read:,} rows in {seconds:.1f} s = {report.rows_read / seconds:,.0f} rows/s "
          f"(inserted {report.inserted:,}, updated {report.updated:,}, unchanged {report.unchanged:,}, "
          f"rejected {report.rejected:,}, duplicates {report.duplicates:,}, locations {report.locations:,}, "
          f"memberships {report.memberships:,}, second numbers {report.numbers:,})", flush=True)
    print("  phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report.phases_s.items())
          + "  (read includes copy)", flush=True)
    print(f"  CPU: {result['client_cpu_s']} s in this process and its workers, {result['server_cpu_s']} s in the "
          f"PostgreSQL backend; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reimport", action="store_true", help="import the same file again (updates)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--more-numbers", type=float, default=0.0,
                        help="share of rows with a second number (a `teléfono 2` column)")
    args = parser.parse_args()

    settings = bench_settings()
    runtime.use_database(settings, name="sirena-bench-import")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contactos.csv"
        settings = replace(settings, data_dir=Path(tmp) / "data")  # the rejects reports go with the file
        started = time.perf_counter()
        size = generate(path, args.rows, more_numbers=args.more_numbers)
        print(f"generated {args.rows:,} rows, {size / 1e6:.0f} MB, in {time.perf_counter() - started:.1f} s",
              flush=True)
        seconds, report = run_import(path, settings, "import")
        result = {"bench": "import", "rows": report["rows_read"], "seconds": round(seconds, 2),
                  "rows_per_s": round(report["rows_read"] / seconds), "inserted": report["inserted"],
                  "rejected": report["rejected"], "duplicates": report["duplicates"],
                  "client_cpu_s": report["client_cpu_s"], "server_cpu_s": report["server_cpu_s"],
                  "load_avg_1m": round(os.getloadavg()[0], 1)}
        if args.reimport:
            again, report2 = run_import(path, settings, "re-import")
            result.update(reimport_seconds=round(again, 2), reimport_rows_per_s=round(report2["rows_read"] / again))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_mb"] = round(peak, 1)
    print(f"peak RSS of this process: {peak:.0f} MB")
    dbmod.engine().dispose()
    if not args.keep:
        drop(settings)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
