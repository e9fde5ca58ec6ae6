"""Targeting benchmark: 1,000,000 contacts around a city, a 1,000-vertex zone holding ~30%, two groups.

Runs in a database of its own, `sirena_bench_targeting` (dropped and re-created each run, migrated
with the project's migrations, dropped at the end unless --keep); the user's `sirena` database is
never touched. Contacts and locations are generated set-based in SQL (generate_series).

Prints: preview time, materialization time (rows written, chunk by chunk with a commit each, as
the fan-out job does), time until the first chunk is committed, and the same count computed in
Python with shapely as the baseline. --explain prints EXPLAIN (ANALYZE, BUFFERS) of the preview
and of the first chunk's INSERT. The last line is one JSON object.

    .venv/bin/python bench/targeting.py [--contacts 1000000] [--chunk 100000] [--lanes 2] [--explain] [--keep] [--reuse]

Materialization runs the fan-out job itself (broadcast.jobs.fan_out): the first chunk, then
--lanes runs at once until the alert's fan-out is done; "PostgreSQL CPU" is that of every
PostgreSQL process (both lanes' backends, the WAL writer).

Measured 2026-11-28 on the 2-core machine, quiet, fresh data: preview 0.36-0.45 s, materialize
1.88-2.39 s, first chunk 0.05 s (the figures and what dominates: README's table).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import shapely  # noqa: E402
from shapely.geometry import Polygon  # noqa: E402
from sqlalchemy import create_engine, event, pool, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session as OrmSession  # noqa: E402

from alerting.base import db as dbmod  # noqa: E402
from alerting.base import runtime  # noqa: E402
from alerting.base.models import Alert, AlertMode  # noqa: E402
from alerting.base.settings import Settings  # noqa: E402
from broadcast import jobs  # noqa: E402
from geo.targeting import (  # noqa: E402
    STATEMENT_SETTINGS,
    TargetSpec,
    contact_id_ranges,
    materialize_chunk,
    next_contact_range,
    preview,
)
from geo.zones import save_zone  # noqa: E402

DATABASE = "sirena_bench_targeting"
CENTER = (-70.65, -33.45)  # Santiago
TEXT = "ALERTA: incendio forestal cerca de su domicilio. Evacúe hacia el sur. Responda ACK 4821."


def own_database() -> Settings:
    """A fresh, migrated database of the benchmark's own (never the user's `sirena`)."""
    from common import bench_settings

    return bench_settings(DATABASE)


def reused_database() -> Settings:
    base = Settings.from_env()
    owner = make_url(base.database_owner_url).set(database=DATABASE).render_as_string(hide_password=False)
    app = make_url(base.database_url).set(database=DATABASE).render_as_string(hide_password=False)
    from alerting.base import migrate

    migrate.upgrade(owner)  # the kept data may predate a migration
    return replace(base, database_url=app, database_owner_url=owner)


def drop_database(settings: Settings) -> None:
    admin = create_engine(settings.database_admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    admin.dispose()


def vacuum(settings: Settings, *tables: str) -> None:
    """VACUUM ANALYZE as the tables' owner (the app role may not)."""
    owner = create_engine(settings.database_owner_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(text("VACUUM ANALYZE " + ", ".join(tables)))
    owner.dispose()


def generate(settings: Settings, n: int) -> float:
    """Contacts (1% opted out, 8% English), a home point each and a work point for 20%, set-based."""
    started = time.perf_counter()
    with dbmod.transaction() as s:
        s.execute(text("SELECT setseed(0.42)"))
        s.execute(text("""
            INSERT INTO contacts (msisdn, name, language, attributes, opted_out_at)
            SELECT '+569' || lpad(g::text, 8, '0'), '',
                   CASE WHEN random() < 0.08 THEN 'en' ELSE 'es' END,
                   jsonb_build_object(
                       'role', CASE WHEN r < 0.03 THEN 'salud' WHEN r < 0.06 THEN 'brigadista'
                                    WHEN r < 0.08 THEN 'defensa_civil' ELSE 'vecino' END,
                       'district', 'D' || (g % 40)),
                   CASE WHEN random() < 0.01 THEN now() END
              FROM (SELECT g, random() AS r FROM generate_series(1, :n) g) t ORDER BY g"""), {"n": n})
        # 70% of people in a dense core (normal, sd ~8 km), 30% spread over the surroundings (1°×1°).
        point = """ST_SetSRID(ST_MakePoint(
                CASE WHEN u < 0.7 THEN :cx + 0.08 * sqrt(-2 * ln(1 - r1)) * cos(2 * pi() * r2)
                     ELSE :cx - 0.5 + r1 END,
                CASE WHEN u < 0.7 THEN :cy + 0.07 * sqrt(-2 * ln(1 - r1)) * sin(2 * pi() * r2)
                     ELSE :cy - 0.5 + r2 END), 4326)"""
        s.execute(text(f"""
            INSERT INTO contact_locations (contact_id, label, geom)
            SELECT id, 'home', {point}
              FROM (SELECT id, random() AS u, random() AS r1, random() AS r2 FROM contacts) t"""),
                  {"cx": CENTER[0], "cy": CENTER[1]})
        s.execute(text(f"""
            INSERT INTO contact_locations (contact_id, label, geom)
            SELECT id, 'work', {point}
              FROM (SELECT id, random() AS u, random() AS r1, random() AS r2 FROM contacts WHERE id % 5 = 0) t"""),
                  {"cx": CENTER[0], "cy": CENTER[1]})
    vacuum(settings, "contacts", "contact_locations")
    return time.perf_counter() - started


def fetch_points() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(contact_id, lon, lat, is_home) of every location, as numpy arrays."""
    raw = dbmod.engine().raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT contact_id, ST_X(geom), ST_Y(geom), label = 'home' FROM contact_locations")
        rows = cur.fetchall()
    finally:
        raw.close()
    ids, xs, ys, home = (np.array(col) for col in zip(*rows, strict=True))
    return ids, xs.astype(float), ys.astype(float), home.astype(bool)


def outline(radius: float, vertices: int = 1000) -> Polygon:
    ring = []
    for k in range(vertices):
        a = 2 * math.pi * k / vertices
        r = radius * (1 + 0.25 * math.sin(5 * a) + 0.08 * math.sin(17 * a))
        ring.append((CENTER[0] + r * math.cos(a) * 1.15, CENTER[1] + r * math.sin(a)))
    return Polygon(ring)


def zone_holding(share: float, xs: np.ndarray, ys: np.ndarray) -> Polygon:
    """A 1,000-vertex outline around the centre holding `share` of the points (bisection on its radius)."""
    lo, hi = 0.01, 0.6
    for _ in range(25):
        mid = (lo + hi) / 2
        inside = shapely.intersects_xy(outline(mid), xs, ys).mean()
        lo, hi = (mid, hi) if inside < share else (lo, mid)
    return outline((lo + hi) / 2)


def capture_statements() -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    @event.listens_for(dbmod.engine(), "before_cursor_execute")
    def _keep(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append((statement, parameters))

    return seen


def explain(statement: str, parameters: Any) -> str:
    raw = dbmod.engine().raw_connection()
    try:
        cur = raw.cursor()
        for setting in STATEMENT_SETTINGS:  # as geo.targeting sets them for its statements
            cur.execute(f"SET {setting}")
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        plan = "\n".join(re.sub(r"'([0-9A-F]{200,})'", lambda m: f"'<EWKB, {len(m[1]) // 2} bytes>'", r[0])
                         for r in cur.fetchall())
        raw.rollback()
        return plan
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    # The fan-out job (broadcast.jobs) writes a small first chunk, then bigger ones.
    parser.add_argument("--first-chunk", type=int, default=jobs.FIRST_CHUNK_CONTACTS,
                        help="contacts in the first chunk (broadcast.jobs.FIRST_CHUNK_CONTACTS)")
    parser.add_argument("--chunk", type=int, default=jobs.CHUNK_CONTACTS,
                        help="contacts per later chunk (broadcast.jobs.CHUNK_CONTACTS)")
    parser.add_argument("--lanes", type=int, default=jobs.FAN_OUT_LANES,
                        help="chunks written at once (broadcast.jobs.FAN_OUT_LANES)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of preview and a chunk")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse the data a --keep run left (no generation)")
    args = parser.parse_args()

    settings = reused_database() if args.reuse else own_database()
    runtime.use_database(settings, name="sirena-bench-targeting")
    try:
        if args.reuse:
            with dbmod.transaction() as s:
                s.execute(text("DELETE FROM deliveries"))
                s.execute(text("DELETE FROM alerts"))
                s.execute(text("DELETE FROM groups"))
                s.execute(text("DELETE FROM zones"))
            # The deleted rows would otherwise stay in every index each run writes to (autovacuum
            # may be off), and each --reuse run would write more slowly than the one before.
            vacuum(settings, "deliveries", "alert_counters", "alerts", "groups", "group_members", "zones",
                   "zone_cells", "zone_parts")
        else:
            generated_s = generate(settings, args.contacts)
            print(f"generated {args.contacts:,} contacts with locations in {generated_s:.1f} s")
        ids, xs, ys, home = fetch_points()
        zone = zone_holding(0.30, xs[home], ys[home])
        with dbmod.transaction() as s:
            save_zone(s, "Bench zone", zone, "geojson", region="CL")
            s.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) VALUES "
                           "('brigadas', 'static', '', false), ('salud', 'dynamic', '', false)"))
            s.execute(text("UPDATE groups SET criterion = CAST(:c AS jsonb) WHERE name = 'salud'"),
                      {"c": json.dumps({"attr": "role", "eq": "salud"})})
            s.execute(text("INSERT INTO group_members (group_id, contact_id) SELECT g.id, c FROM groups g, "
                           "generate_series(7, :n, 50) c WHERE g.name = 'brigadas'"), {"n": args.contacts})
            alert = Alert(reference="A-BENCH-1", reply_code="4821", mode=AlertMode.LIVE, sender_name="SIRENA",
                          texts={"es": TEXT}, target={})
            s.add(alert)
            s.flush()
            alert_id = alert.id
        vacuum(settings, "zone_parts", "zone_cells", "group_members", "groups", "deliveries")
        spec = TargetSpec(zones=["Bench zone"], groups=["brigadas", "salud"])
        print(f"zone: 1,000 vertices, {shapely.intersects_xy(zone, xs[home], ys[home]).mean():.1%} of homes inside")

        statements = capture_statements()
        times, cpus = [], []
        for _ in range(5):
            with dbmod.transaction() as s:
                t0, c0 = time.perf_counter(), postgres_cpu_s()
                result = preview(s, spec, text=TEXT)
                times.append(time.perf_counter() - t0)
                cpus.append(postgres_cpu_s() - c0)
        preview_statement = max(statements, key=lambda st: len(st[0]))
        preview_s = statistics.median(times)
        preview_cpu_s = statistics.median(cpus)
        print(f"preview: {result.total:,} recipients in {preview_s:.3f} s (median of 5; best {min(times):.3f} s), "
              f"PostgreSQL CPU {preview_cpu_s:.3f} s (runs: " + ", ".join(f"{t:.3f}" for t in times) + ")")
        print(f"  by zone {result.by_zone}; by group {result.by_group}")
        print(f"  by language {result.by_language}; opted out left out {result.opted_out_excluded:,}; "
              f"SMS {result.sms['total_sms']:,} ({result.sms['parts']} part(s) each)")

        statements.clear()
        chunk_plan = ""
        if args.explain:  # before the timed run, so the INSERT really inserts (rolled back)
            with dbmod.engine().connect() as conn:
                outer = conn.begin()
                probe = OrmSession(bind=conn)
                materialize_chunk(probe, alert_id, spec, *next_contact_range(probe, 0, args.first_chunk))
                outer.rollback()
            chunk_insert = next(st for st in statements if "INSERT INTO deliveries" in st[0])
            chunk_plan = explain(*chunk_insert)
            statements.clear()
        # The fan-out job itself (broadcast.jobs.fan_out), as a gateway worker runs it: the first
        # chunk, then FAN_OUT_LANES runs at once, each writing a chunk and running again until the
        # alert's fan-out is done (RQ's queue is left out: no Redis here, so nothing is queued).
        jobs.FIRST_CHUNK_CONTACTS, jobs.CHUNK_CONTACTS, jobs.FAN_OUT_LANES = args.first_chunk, args.chunk, args.lanes
        with dbmod.transaction() as s:
            s.execute(text("UPDATE alerts SET state = 'approved', approved_at = now(), target = CAST(:t AS jsonb) "
                           "WHERE id = :a"), {"t": json.dumps(spec.to_json()), "a": alert_id})
        cpu0 = postgres_cpu_s()
        started = time.perf_counter()
        jobs.fan_out(alert_id)
        first_chunk_s = time.perf_counter() - started
        first_chunk_cpu_s = postgres_cpu_s() - cpu0

        failures: list[BaseException] = []

        def lane() -> None:
            try:
                while not fan_out_done(alert_id):
                    jobs.fan_out(alert_id)
            except BaseException as exc:
                failures.append(exc)
                raise

        lanes = [threading.Thread(target=lane) for _ in range(jobs.FAN_OUT_LANES)]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join()
        if failures:
            raise RuntimeError("a fan-out lane failed") from failures[0]
        materialize_cpu_s = postgres_cpu_s() - cpu0
        with dbmod.transaction() as s:
            rows = s.execute(text("SELECT count(*) FROM deliveries WHERE alert_id = :a"), {"a": alert_id}).scalar_one()
            chunks = 1 + len(contact_id_ranges(s, args.chunk)) if rows else 0
        materialize_s = time.perf_counter() - started
        print(f"materialize: {rows:,} deliveries in {materialize_s:.3f} s, about {chunks} chunks (first "
              f"{args.first_chunk:,} contacts, then {args.chunk:,}, {jobs.FAN_OUT_LANES} at a time); first chunk "
              "committed after "
              f"{first_chunk_s:.3f} s (PostgreSQL CPU {first_chunk_cpu_s:.3f} s); PostgreSQL CPU "
              f"{materialize_cpu_s:.3f} s in all")

        t0 = time.perf_counter()
        in_zone = shapely.intersects_xy(zone, xs, ys)
        zone_contacts = np.unique(ids[in_zone])
        shapely_s = time.perf_counter() - t0
        located = result.by_zone[0]["located"]
        expected = expected_recipients(zone_contacts)
        counts_agree = bool(located == len(zone_contacts) and rows == result.total == expected)
        print(f"shapely.intersects_xy baseline: {len(zone_contacts):,} contacts in the zone in {shapely_s:.3f} s "
              f"(SQL: {located:,}); recipients by numpy {expected:,}; agree: {counts_agree}")

        if args.explain:
            print("\n--- EXPLAIN ANALYZE: preview (for a large directory: one of its two contact id halves) ---\n"
                  + explain(*preview_statement))
            print("\n--- EXPLAIN ANALYZE: first chunk INSERT (rolled back) ---\n" + chunk_plan)
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(other processes share this machine; the figures are wall-clock)")
        print(json.dumps({
            "bench": "targeting", "contacts": args.contacts, "recipients": rows,
            "preview_s": round(preview_s, 3), "materialize_s": round(materialize_s, 3),
            "first_chunk_s": round(first_chunk_s or 0.0, 3), "shapely_s": round(shapely_s, 3),
            "counts_agree": counts_agree, "preview_cpu_s": round(preview_cpu_s, 3),
            "materialize_cpu_s": round(materialize_cpu_s, 3), "load_avg": round(os.getloadavg()[0], 1),
        }))
    finally:
        dbmod.engine().dispose()
        if not args.keep and not args.reuse:
            drop_database(settings)


def fan_out_done(alert_id: int) -> bool:
    with dbmod.transaction() as s:
        return bool(s.execute(text("SELECT fanout_done FROM alerts WHERE id = :a"), {"a": alert_id}).scalar_one())


def postgres_cpu_s() -> float:
    """CPU seconds used so far by every PostgreSQL process (the backends of both lanes, WAL writer…)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] in ("postgres", "postmaster") and proc.info["cpu_times"]:
            total += proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return total


def expected_recipients(zone_contacts: np.ndarray) -> int:
    """Zone ∪ brigadas ∪ role=salud, minus opted out, computed outside the targeting SQL."""
    raw = dbmod.engine().raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT id, attributes->>'role' = 'salud', opted_out_at IS NOT NULL FROM contacts")
        cids, salud, opted = (np.array(c) for c in zip(*cur.fetchall(), strict=True))
        cur.execute("SELECT contact_id FROM group_members gm JOIN groups g ON g.id = gm.group_id "
                    "WHERE g.name = 'brigadas'")
        brigadas = np.array([r[0] for r in cur.fetchall()])
    finally:
        raw.close()
    wanted = np.isin(cids, zone_contacts) | np.isin(cids, brigadas) | salud.astype(bool)
    return int((wanted & ~opted.astype(bool)).sum())


if __name__ == "__main__":
    main()
