"""Zone uploads: a 10 MB / 40,000-zone GeoJSON against the console, the API and `sirena zones import`.

Issue 16: that file, uploaded on the console, ran for over 5 minutes inside one open transaction
(`idle in transaction`) and was abandoned. Now a request holds at most 25 zones, 50,000 vertices
and 5 MB (geo/zone_files.py), checked before any transaction opens, and a big set goes through
`sirena zones import`, which saves it in batches (one transaction each) with progress.

Measured here, in a database of its own (`sirena_bench_zones`, dropped at the end unless --keep):
1. the console's upload form and the API's POST /zones with the whole 40,000-zone file: how long
   until the refusal (and that nothing was saved); the API again with a 4.9 MB / 19,000-zone body
   (refused after parsing, by its count);
2. the largest request allowed (25 zones) on the API: time of the request and of its transaction;
3. `sirena zones import` of --cli-zones zones of the file (a real process), batches of 10: total
   time, zones/s, the longest transaction it reports, and the longest transaction PostgreSQL saw
   (pg_stat_activity sampled every 0.2 s);
4. the old way, every zone of --old-zones in ONE transaction (what the console did), to
   extrapolate to 40,000.
Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, bench_settings, drop_database, env_for
from sqlalchemy import create_engine, pool, text

DATABASE = "sirena_bench_zones"


def squares(n: int, start: int = 0, *, vertices: int = 5) -> dict:
    """n small zones in a grid (a city's blocks), `vertices` positions a ring."""
    features = []
    for i in range(start, start + n):
        x, y = -71.2 + (i % 400) * 0.002, -33.8 + (i // 400) * 0.002
        ring = [[round(x + 0.0008 * math.cos(2 * math.pi * k / (vertices - 1)), 6),
                 round(y + 0.0008 * math.sin(2 * math.pi * k / (vertices - 1)), 6)] for k in range(vertices - 1)]
        features.append({"type": "Feature", "properties": {"name": f"manzana-{i:05d}", "comuna": "Santiago"},
                         "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}})
    return {"type": "FeatureCollection", "features": features}


class XactWatch:
    """The longest open transaction of other backends on the bench database, sampled every 0.2 s."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, poolclass=pool.NullPool)
        self.longest_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.wait(0.2):
                age = conn.execute(text(
                    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0) "
                    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND xact_start IS NOT NULL")).scalar_one()
                conn.rollback()
                self.longest_s = max(self.longest_s, float(age))

    def __enter__(self) -> XactWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.engine.dispose()


def _zones(url: str) -> int:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM zones")).scalar_one()
    engine.dispose()
    return int(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=40_000, help="zones in the big file")
    parser.add_argument("--cli-zones", type=int, default=2_000, help="zones `sirena zones import` saves")
    parser.add_argument("--old-zones", type=int, default=500, help="zones saved the old way, in one transaction")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    import pyotp

    from alerting.base import runtime
    from alerting.base.db import transaction, utcnow
    from alerting.directory.accounts import create_operator, create_token, decrypt_totp
    from alerting.interfaces.web.app import create_app
    from audit.actor import Actor
    from geo.zones import import_geojson

    settings = bench_settings(DATABASE)
    runtime.start(settings, name="bench-zones")
    figures: dict = {"bench": "zone_import", "zones": args.zones}
    tmp = Path(tempfile.mkdtemp(prefix="sirena-zones-"))
    try:
        big = json.dumps(squares(args.zones)).encode()
        (tmp / "manzanas.geojson").write_bytes(big)
        figures["file_mb"] = round(len(big) / 1e6, 1)
        print(f"file: {args.zones:,} zones, {len(big) / 1e6:.1f} MB")

        key = settings.secret_key()
        with transaction() as db:
            new = create_operator(db, "jefa", ["admin"], key, Actor.system("bench"), password="bench password 123")
            new.operator.totp_enrolled_at = utcnow()
            seed = decrypt_totp(new.operator.totp_secret_enc, key)  # type: ignore[arg-type]
            _, bearer = create_token(db, "jefa", ["read", "zones:write"], Actor.system("bench"))
        app = create_app(settings, configure_services=False)

        # 1. The console's upload form, signed in for real.
        console = app.test_client()
        page = console.get("/login").get_data(as_text=True)
        csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
        console.post("/login", data={"csrf_token": csrf, "username": "jefa", "password": "bench password 123"})
        page = console.get("/login/code").get_data(as_text=True)
        csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
        console.post("/login/code", data={"csrf_token": csrf, "code": pyotp.TOTP(seed).now()})
        csrf = console.get("/directory/zones").get_data(as_text=True).split('name="csrf-token" content="')[1]
        csrf = csrf.split('"')[0]
        import io

        with XactWatch(settings.database_url) as watch:
            started = time.monotonic()
            r = console.post("/directory/zones", data={"csrf_token": csrf,
                                                       "file": (io.BytesIO(big), "manzanas.geojson")},
                             content_type="multipart/form-data")
            figures["console_refused_s"] = round(time.monotonic() - started, 3)
        figures["console_status"] = r.status_code
        figures["console_longest_transaction_s"] = round(watch.longest_s, 2)
        print(f"console upload of the whole file: {r.status_code} in {figures['console_refused_s']} s")

        # The API, the whole file, then a body just under 5 MB refused by its count.
        api = app.test_client()
        headers = {"Authorization": f"Bearer {bearer}"}
        started = time.monotonic()
        r = api.post("/api/v1/zones", data=b'{"geojson": ' + big + b"}", content_type="application/json",
                     headers=headers)
        figures["api_refused_s"] = round(time.monotonic() - started, 3)
        figures["api_status"] = r.status_code
        print(f"API POST /zones, whole file: {r.status_code} in {figures['api_refused_s']} s "
              f"({r.get_json()['errors']})")
        under = squares(19_000)
        started = time.monotonic()
        r = api.post("/api/v1/zones", json={"geojson": under}, headers=headers)
        figures["api_19000_refused_s"] = round(time.monotonic() - started, 3)
        print(f"API POST /zones, 19,000 zones in {len(json.dumps(under)) / 1e6:.1f} MB: {r.status_code} in "
              f"{figures['api_19000_refused_s']} s ({r.get_json()['errors']})")
        figures["saved_after_refusals"] = _zones(settings.database_url)

        # 2. The largest request allowed.
        with XactWatch(settings.database_url) as watch:
            started = time.monotonic()
            r = api.post("/api/v1/zones", json={"geojson": squares(25, start=100_000)}, headers=headers)
            figures["api_25_zones_s"] = round(time.monotonic() - started, 2)
        figures["api_25_zones_longest_transaction_s"] = round(watch.longest_s, 2)
        print(f"API POST /zones, 25 zones (the limit): {r.status_code} in {figures['api_25_zones_s']} s, "
              f"longest transaction {watch.longest_s:.2f} s")

        # 3. `sirena zones import`, a real process, in batches.
        part = tmp / "part.geojson"
        part.write_text(json.dumps(squares(args.cli_zones, start=200_000)))
        with XactWatch(settings.database_url) as watch:
            started = time.monotonic()
            done = subprocess.run([str(ROOT / ".venv" / "bin" / "sirena"), "zones", "import", str(part), "--json"],
                                  env=env_for(settings, SIRENA_SECRET_KEY_FILE=str(settings.secret_key_file)),
                                  capture_output=True, text=True, timeout=7200)
            wall = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        out = json.loads(done.stdout.strip().splitlines()[-1])
        figures.update(cli_zones=out["saved"], cli_s=round(wall, 1), cli_zones_per_s=round(out["saved"] / wall, 1),
                       cli_longest_transaction_s=out["longest_transaction_s"],
                       cli_longest_transaction_seen_s=round(watch.longest_s, 2))
        progress = [line for line in done.stderr.splitlines() if "saved" in line]
        print(f"sirena zones import, {out['saved']:,} zones: {wall:.1f} s ({out['saved'] / wall:.1f} zones/s), "
              f"longest transaction {out['longest_transaction_s']} s (PostgreSQL saw {watch.longest_s:.2f} s); "
              f"{len(progress)} progress lines, last: {progress[-1].strip() if progress else '-'}")

        # 4. The old way: every zone in one transaction.
        old = squares(args.old_zones, start=300_000)
        started = time.monotonic()
        with transaction() as db:
            import_geojson(db, old, actor=Actor.system("bench"))
        old_s = time.monotonic() - started
        figures["old_one_transaction_s"] = round(old_s, 1)
        figures["old_zones"] = args.old_zones
        figures["old_40000_extrapolated_min"] = round(old_s / args.old_zones * 40_000 / 60, 1)
        print(f"old way, {args.old_zones} zones in one transaction: {old_s:.1f} s → 40,000 zones ≈ "
              f"{figures['old_40000_extrapolated_min']} min in one transaction")
    finally:
        if not args.keep:
            from alerting.base.db import engine

            engine().dispose()
            drop_database(settings)
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
