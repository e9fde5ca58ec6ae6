"""After-action report benchmark: how long an incident's report takes on a big alert.

    .venv/bin/python bench/report.py [--recipients 100000] [--keep]

Runs in a database of its own, `sirena_bench_report` (created, migrated, dropped at the start and,
unless --keep, at the end). One set-based statement per table writes an incident whose alert
reached `--recipients` people (spread over two carriers; a quarter of them live in the alert's zone,
a 100-vertex polygon): 97 % delivered over the first 10 minutes (times spread like a real send), 2 %
failed, 1 % still waiting; 30 % answered (ACK, a few HELPs) over an hour; and its correction to the
same people; then ANALYZE, as autovacuum would have by the time a report is made (--stale: not,
as right after a send). Then the report is built the way `sirena report incident` builds it (the figures, per
carrier and zone, the curves, HELPs, non-responders listed, the actions), and its JSON written.

Prints the time of each part and the whole; the last line is one JSON object {"bench": "report", ...}.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from common import bench_settings, drop_database  # type: ignore[import-not-found]
from sqlalchemy import text

from alerting.alerts import incidents, report, report_figures
from alerting.base import runtime
from alerting.base.db import transaction
from alerting.base.models import Operator
from audit.actor import Actor
from geo.zones import import_geojson

DATABASE = "sirena_bench_report"


def _polygon(vertices: int = 100) -> dict[str, Any]:
    ring = [[-70.65 + 0.05 * math.cos(2 * math.pi * i / vertices), -33.45 + 0.05 * math.sin(2 * math.pi * i / vertices)]
            for i in range(vertices)]
    return {"type": "Feature", "properties": {"name": "Centro"}, "geometry": {"type": "Polygon",
                                                                            "coordinates": [[*ring, ring[0]]]}}


def seed(n: int) -> int:
    """The incident (returns its id): contacts, locations, alert, correction, deliveries, replies."""
    system = Actor.system("bench")
    with transaction() as s:
        import_geojson(s, _polygon(), actor=system)
        zone_id = s.execute(text("SELECT id FROM zones WHERE name = 'Centro'")).scalar_one()
        s.execute(text("""
            INSERT INTO contacts (msisdn, name, language, attributes)
            SELECT '+569' || lpad(g::text, 8, '0'), 'Persona ' || g, 'es', '{}' FROM generate_series(1, :n) g"""),
                  {"n": n})
        # a quarter inside the zone (near its centre), the rest far away
        s.execute(text("""
            INSERT INTO contact_locations (contact_id, label, geom)
            SELECT id, 'home', CASE WHEN id % 4 = 0
                THEN ST_SetSRID(ST_MakePoint(-70.65 + (random() - 0.5) * 0.05, -33.45 + (random() - 0.5) * 0.05), 4326)
                ELSE ST_SetSRID(ST_MakePoint(-71.5 + random(), -30 + random()), 4326) END
              FROM contacts"""))
        operator = Operator(username="bench", password_hash="x", roles=["composer"])
        s.add(operator)
        s.flush()
        op = operator.id
        alerts = []
        for kind, offset, ref in (("alert", 0, "A-2026-900001"), ("correction", 900, "A-2026-900002")):
            alerts.append(s.execute(text("""
                INSERT INTO alerts (reference, reply_code, kind, mode, priority, state, title, sender_name, texts,
                                    target, resolved, composed_by_id, approved_by_id, origin, created_at,
                                    approved_at, sending_at, completed_at, updated_at, required_approvals,
                                    fanout_done)
                VALUES (:ref, '4821', :kind, 'live', 'flash', 'completed', 'bench', 'SIRENA-SC',
                        '{"es": "Evacuar"}', CAST(:target AS jsonb), CAST(:resolved AS jsonb), :op, :op, 'cli',
                        now() - interval '2 hours' + make_interval(secs => :off),
                        now() - interval '2 hours' + make_interval(secs => :off),
                        now() - interval '2 hours' + make_interval(secs => :off), now(), now(), 1, true)
                RETURNING id"""), {"ref": ref, "kind": kind, "off": offset, "op": op,
                                   "target": json.dumps({"zones": ["Centro"]} if kind == "alert" else {}),
                                   "resolved": json.dumps({"zones": [{"name": "Centro", "version": 1,
                                                                      "zone_id": zone_id}]})}).scalar_one())
        s.execute(text("UPDATE alerts SET corrects_alert_id = :a WHERE id = :b"), {"a": alerts[0], "b": alerts[1]})
        for alert_id in alerts:
            s.execute(text("""
                INSERT INTO deliveries (alert_id, contact_id, msisdn, language, state, carrier, attempts,
                                        possible_duplicates, parts_delivered, queued_at, updated_at, submitted_at,
                                        delivered_at)
                SELECT a.id, c.id, c.msisdn, 'es',
                       CASE WHEN c.id % 100 < 97 THEN 'delivered' WHEN c.id % 100 < 99 THEN 'failed' ELSE 'queued' END,
                       CASE WHEN c.id % 3 = 0 THEN 'beta' ELSE 'alpha' END, 1, 0, 0, a.approved_at, now(),
                       a.approved_at,
                       CASE WHEN c.id % 100 < 97
                            THEN a.approved_at + make_interval(secs => 600 * power(random(), 2)) END
                  FROM contacts c, alerts a WHERE a.id = :a"""), {"a": alert_id})
        s.execute(text("""
            INSERT INTO inbound_messages (kind, carrier, source_addr, destination_addr, text, processed_at, outcome)
            SELECT 'mo', 'alpha', substr(d.msisdn, 2), '4242', 'ACK 4821', now(), 'matched'
              FROM deliveries d WHERE d.alert_id = :a AND d.id % 10 < 3"""), {"a": alerts[0]})
        s.execute(text("""
            INSERT INTO replies (inbound_id, delivery_id, alert_id, contact_id, msisdn, meaning, text, created_at)
            SELECT m.id, d.id, d.alert_id, d.contact_id, d.msisdn,
                   CASE WHEN d.id % 1000 = 0 THEN 'help' ELSE 'ack' END, m.text,
                   (SELECT approved_at FROM alerts WHERE id = :a) + make_interval(secs => 3600 * power(random(), 3))
              FROM inbound_messages m JOIN deliveries d ON d.alert_id = :a AND substr(d.msisdn, 2) = m.source_addr"""),
                  {"a": alerts[0]})
        incident = incidents.open_incident(s, "Bench", system)
        incidents.add_to_incident(s, alerts[0], incident.id, system)
        return incident.id


def analyze() -> None:
    """What autovacuum does some minutes after a send: statistics that know the alert's rows."""
    with transaction() as s:
        for table in ("contacts", "contact_locations", "alerts", "deliveries", "replies", "inbound_messages"):
            s.execute(text(f"ANALYZE {table}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--stale", action="store_true",
                        help="do not ANALYZE after seeding: a report made right after the send")
    args = parser.parse_args()
    settings = bench_settings(DATABASE)
    runtime.start(settings, name="sirena-bench-report", redis=None)
    try:
        started = time.perf_counter()
        incident_id = seed(args.recipients)
        if not args.stale:
            analyze()
        seeded_s = time.perf_counter() - started
        print(f"seeded {args.recipients:,} recipients × 2 alerts in {seeded_s:.1f} s")
        timings: dict[str, float] = {}
        with transaction() as s:
            ids = [a.id for a in incidents.incident_alerts(s, incident_id)]
            t = time.perf_counter()
            report_figures.by_alert_and_carrier(s, ids)
            timings["figures"] = round(time.perf_counter() - t, 3)
        with transaction() as s:
            t = time.perf_counter()
            rep = report.build_report(s, incident_id, list_non_responders=True)
            timings["report"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        body = json.dumps(report.as_json(rep))
        timings["json"] = round(time.perf_counter() - t, 3)
        whole = rep.figure(None) or {}
        print(f"report of {args.recipients:,} recipients × 2 alerts: {timings['report']:.2f} s "
              f"(figures alone {timings['figures']:.2f} s), JSON {len(body) / 1e6:.1f} MB in {timings['json']:.2f} s; "
              f"t50 {whole.get('t50_s')} s, t90 {whole.get('t90_s')} s, t99 {whole.get('t99_s')}")
        print(json.dumps({"bench": "report", "recipients": args.recipients, "alerts": len(rep.alerts),
                          "statistics": "stale" if args.stale else "analyzed",
                          "seconds": timings, "json_bytes": len(body)}))
    finally:
        if not args.keep:
            drop_database(settings)


if __name__ == "__main__":
    main()
