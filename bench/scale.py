"""Scale benchmark: targeting and fan-out of a national alert over 10,000,000 synthetic contacts.

Runs in a database of its own, `sirena_bench_scale` (dropped and re-created, migrated with the
project's migrations, dropped at the end unless --keep); the user's `sirena` database is never
touched. Contacts (1% opted out, 8% English) and their locations (a home point each, a work point
for 20%) are generated set-based in SQL, one committed chunk of 1,000,000 at a time.

Then, as production does it: the preview of a national zone (a 1,000-vertex outline around
everyone), and the real fan-out job (`broadcast.jobs.fan_out`) called until it says it is done,
each call materializing one chunk and cutting its send batches, exactly as an RQ worker would run
it (the enqueues it asks for are dropped here: no Redis is configured, nothing is sent).

Prints: generation rows/s, preview seconds, time until the first batches are ready, fan-out
deliveries/s, batches cut, and the disk each table took. The last line is one JSON object.

    .venv/bin/python bench/scale.py [--contacts 10000000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import text  # noqa: E402

from alerting.base import db as dbmod  # noqa: E402
from alerting.base import runtime  # noqa: E402
from alerting.base.models import Alert, AlertMode, AlertState, Priority  # noqa: E402
from bench.common import bench_settings, drop_database  # noqa: E402
from geo.targeting import TargetSpec, preview  # noqa: E402
from geo.zones import save_zone  # noqa: E402

DATABASE = "sirena_bench_scale"
CENTER = (-70.65, -33.45)
GENERATE_CHUNK = 1_000_000
TEXT = "ALERTA NACIONAL: sismo mayor. Alejese de la costa hacia zonas altas. Responda ACK 4821."


def generate(n: int) -> dict[str, float]:
    """Contacts and locations in committed chunks; returns seconds for each table and in all."""
    point = """ST_SetSRID(ST_MakePoint(
            CASE WHEN u < 0.7 THEN :cx + 0.08 * sqrt(-2 * ln(1 - r1)) * cos(2 * pi() * r2) ELSE :cx - 0.5 + r1 END,
            CASE WHEN u < 0.7 THEN :cy + 0.07 * sqrt(-2 * ln(1 - r1)) * sin(2 * pi() * r2) ELSE :cy - 0.5 + r2 END),
            4326)"""
    contacts_s = locations_s = 0.0
    for lo in range(1, n + 1, GENERATE_CHUNK):
        hi = min(n, lo + GENERATE_CHUNK - 1)
        with dbmod.transaction() as s:
            t0 = time.perf_counter()
            s.execute(text("""
                INSERT INTO contacts (msisdn, name, language, attributes, opted_out_at)
                SELECT '+569' || lpad(g::text, 8, '0'), '', CASE WHEN random() < 0.08 THEN 'en' ELSE 'es' END,
                       jsonb_build_object('district', 'D' || (g % 40)), CASE WHEN random() < 0.01 THEN now() END
                  FROM generate_series(:lo, :hi) g"""), {"lo": lo, "hi": hi})
            t1 = time.perf_counter()
            s.execute(text(f"""
                INSERT INTO contact_locations (contact_id, label, geom)
                SELECT id, 'home', {point} FROM (SELECT id, random() AS u, random() AS r1, random() AS r2
                                                  FROM contacts WHERE id BETWEEN :lo AND :hi) t"""),
                      {"cx": CENTER[0], "cy": CENTER[1], "lo": lo, "hi": hi})
            s.execute(text(f"""
                INSERT INTO contact_locations (contact_id, label, geom)
                SELECT id, 'work', {point} FROM (SELECT id, random() AS u, random() AS r1, random() AS r2
                                                  FROM contacts WHERE id BETWEEN :lo AND :hi AND id % 5 = 0) t"""),
                      {"cx": CENTER[0], "cy": CENTER[1], "lo": lo, "hi": hi})
            t2 = time.perf_counter()
        contacts_s += t1 - t0
        locations_s += t2 - t1
        print(f"  generated {hi:,} contacts ({contacts_s + locations_s:.0f} s so far)", flush=True)
    return {"contacts_s": contacts_s, "locations_s": locations_s}


def vacuum(settings, *tables: str) -> float:  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine, pool

    started = time.perf_counter()
    owner = create_engine(settings.database_owner_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(text("VACUUM ANALYZE " + ", ".join(tables)))
    owner.dispose()
    return time.perf_counter() - started


def national_zone():  # type: ignore[no-untyped-def]
    """A 1,000-vertex outline around every generated point (they lie within ~0.75° of the centre)."""
    import math

    from shapely.geometry import Polygon

    ring = []
    for k in range(1000):
        a = 2 * math.pi * k / 1000
        r = 1.2 * (1 + 0.05 * math.sin(5 * a))
        ring.append((CENTER[0] + r * math.cos(a), CENTER[1] + r * math.sin(a)))
    return Polygon(ring)


def sizes_mb() -> dict[str, float]:
    with dbmod.transaction() as s:
        rows = s.execute(text("""
            SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND relkind = 'r'
               AND relname IN ('contacts', 'contact_locations', 'deliveries', 'alert_counters')""")).all()
        total = s.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    out = {name: round(size / 2**20, 1) for name, size in rows}
    out["database"] = round(total / 2**20, 1)
    return out


def fan_out_all(alert_id: int) -> dict[str, float]:
    """Run the fan-out job until done; returns timings and counts."""
    from broadcast.jobs import fan_out

    started = time.perf_counter()
    first_s = None
    calls = 0
    while True:
        fan_out(alert_id)
        calls += 1
        with dbmod.transaction() as s:
            done = s.scalar(text("SELECT fanout_done FROM alerts WHERE id = :a"), {"a": alert_id})
        if first_s is None:
            first_s = time.perf_counter() - started
        if done:
            break
        if calls % 10 == 0:
            print(f"  fan-out: {calls} chunks, {time.perf_counter() - started:.0f} s", flush=True)
    total_s = time.perf_counter() - started
    with dbmod.transaction() as s:
        rows = s.scalar(text("SELECT count(*) FROM deliveries WHERE alert_id = :a"), {"a": alert_id})
    return {"first_chunk_s": first_s or 0.0, "fan_out_s": total_s, "chunks": calls, "deliveries": int(rows or 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    args = parser.parse_args()

    settings = bench_settings(DATABASE)
    runtime.use_database(settings, name="sirena-bench-scale")
    runtime.use_redis(None)  # the fan-out's enqueues are dropped: this measures Postgres work only
    try:
        print(f"generating {args.contacts:,} contacts with locations in chunks of {GENERATE_CHUNK:,}", flush=True)
        started = time.perf_counter()
        gen = generate(args.contacts)
        vacuum_s = vacuum(settings, "contacts", "contact_locations")
        generate_s = time.perf_counter() - started
        locations = args.contacts + args.contacts // 5
        print(f"generated in {generate_s:.0f} s: contacts {args.contacts / gen['contacts_s']:,.0f} rows/s, "
              f"locations {locations / gen['locations_s']:,.0f} rows/s, VACUUM ANALYZE {vacuum_s:.0f} s", flush=True)
        with dbmod.transaction() as s:
            save_zone(s, "Pais", national_zone(), "geojson", region="CL")
            alert = Alert(reference="A-BENCH-SCALE", reply_code="4821", mode=AlertMode.LIVE, sender_name="SIRENA",
                          texts={"es": TEXT}, target={"zones": ["Pais"]}, priority=Priority.HIGH,
                          state=AlertState.APPROVED)
            s.add(alert)
            s.flush()
            alert_id = alert.id
        vacuum(settings, "zone_parts", "deliveries")
        spec = TargetSpec(zones=["Pais"])
        t0 = time.perf_counter()
        with dbmod.transaction() as s:
            result = preview(s, spec, text=TEXT)
        preview_s = time.perf_counter() - t0
        print(f"preview: {result.total:,} recipients in {preview_s:.2f} s", flush=True)
        before = sizes_mb()
        fan = fan_out_all(alert_id)
        with dbmod.transaction() as s:
            batches = s.scalar(text("SELECT ceil(count(*) / 500.0) FROM deliveries WHERE alert_id = :a"),
                               {"a": alert_id})
        after = sizes_mb()
        rate = fan["deliveries"] / fan["fan_out_s"] if fan["fan_out_s"] else 0.0
        print(f"fan-out: {fan['deliveries']:,} deliveries in {fan['fan_out_s']:.1f} s ({rate:,.0f} rows/s), "
              f"{fan['chunks']} chunks, first batches ready after {fan['first_chunk_s']:.2f} s, "
              f"{int(batches or 0):,} send batches of 500")
        print(f"disk (MB): before fan-out {before}; after {after}")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(other processes share this machine; the figures are wall-clock)")
        print(json.dumps({
            "bench": "scale", "contacts": args.contacts, "recipients_preview": result.total,
            "generate_s": round(generate_s, 1),
            "contacts_rows_per_s": round(args.contacts / gen["contacts_s"]),
            "locations_rows_per_s": round(locations / gen["locations_s"]),
            "vacuum_s": round(vacuum_s, 1), "preview_s": round(preview_s, 2),
            "first_chunk_s": round(fan["first_chunk_s"], 2), "fan_out_s": round(fan["fan_out_s"], 1),
            "deliveries": fan["deliveries"], "deliveries_per_s": round(rate), "chunks": fan["chunks"],
            "send_batches": int(batches or 0), "disk_mb_before_fan_out": before, "disk_mb_after": after,
            "load_avg": round(os.getloadavg()[0], 1),
        }))
    finally:
        dbmod.engine().dispose()
        if not args.keep:
            drop_database(settings)


if __name__ == "__main__":
    main()
