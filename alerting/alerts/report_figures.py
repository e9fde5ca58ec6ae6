"""The figures of an after-action report, in SQL over deliveries, replies and receipts.

Every figure is a set-based statement over all the incident's deliveries at once (a
1,000,000-recipient alert is one scan, never a query per row). For each delivery:

- `t_del`: seconds from its alert's start (approval, or the scheduled time of a scheduled send) to
  the delivery the carrier's receipt reports (its "done date", in whole seconds, so a delivery in
  the second the alert started counts 0 s, never less); +Infinity if it was never delivered (failed, expired, cancelled,
  still waiting). "Time to 50 % delivered" is then `percentile_disc(0.5)` over t_del of ALL the
  recipients: the moment half of the people had it. When fewer than half ever had it, that
  percentile is +Infinity, reported as None ("never").
- `t_ans`: seconds from the same start to the recipient's first answer (ACK, NO, HELP, a poll
  answer, a number confirmed: models.messages.ANSWERED); the ACK times are percentiles over the
  recipients handed to a carrier (`sent`) of alerts that ask for an answer (`asks`: not corrections
  or cancellation notices), the same people the non-responders are counted among.

One statement gives the figures per alert and carrier, per alert, per carrier and for the whole
incident (GROUPING SETS); the incident's percentiles pool every delivery of its alerts, each timed
from its own alert's start. Zones are the zones the incident's alerts were sent to (at the
versions they were sent to), a recipient counting in a zone when one of their located points is
in it (geo.reach, the targeting's own SQL). The curves are cumulative counts per time bucket (a
window sum), at most MAX_POINTS buckets per series.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Integer,
    String,
    column,
    literal,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from alerting.base.models.messages import ANSWERED
from geo.reach import ZoneRef, zone_hits_everywhere

MAX_POINTS = 200
STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
DELIVERED_PERCENTS = (50, 90, 99)
ANSWERED_PERCENTS = (50, 90)

# When an alert started: its approval, or the time a scheduled send was due.
START = "CASE WHEN a.scheduled_at > a.approved_at THEN a.scheduled_at ELSE a.approved_at END"

_BASE = f"""
SELECT d.id, d.alert_id, d.contact_id, d.msisdn, coalesce(d.carrier, '') AS carrier, d.state,
       d.state IN ('submitted', 'delivered', 'failed', 'expired') AS sent, t.asks,
       CASE WHEN d.state = 'delivered'
            THEN greatest(0, extract(epoch FROM coalesce(d.delivered_at, d.updated_at) - t.t0))::float8
            ELSE 'Infinity'::float8 END AS t_del,
       CASE WHEN fa.at IS NULL THEN 'Infinity'::float8  -- (greatest() would take a NULL for 0)
            ELSE greatest(0, extract(epoch FROM fa.at - t.t0))::float8 END AS t_ans
  FROM (SELECT a.id, {START} AS t0, a.kind = 'alert' AS asks
          FROM alerts a WHERE a.id = ANY(:ids) AND a.approved_at IS NOT NULL) t
  JOIN deliveries d ON d.alert_id = t.id AND d.alert_id = ANY(:ids)  -- its own index condition: see _fast
  LEFT JOIN (SELECT delivery_id, min(created_at) AS at FROM replies
              WHERE alert_id = ANY(:ids) AND delivery_id IS NOT NULL AND meaning = ANY(:answered)
              GROUP BY delivery_id) fa ON fa.delivery_id = d.id
"""

_AGGREGATES = (
    ("count(*)", "recipients"),
    ("count(*) FILTER (WHERE d.sent)", "sent"),
    ("count(*) FILTER (WHERE d.state = 'delivered')", "delivered"),
    ("count(*) FILTER (WHERE d.state IN ('failed', 'expired'))", "failed"),
    ("count(*) FILTER (WHERE d.state = 'cancelled')", "cancelled"),
    ("count(*) FILTER (WHERE d.state IN ('queued', 'submitting', 'waiting_route'))", "waiting"),
    ("count(*) FILTER (WHERE d.sent AND d.asks)", "asked"),
    ("count(*) FILTER (WHERE d.sent AND d.asks AND d.t_ans < 'Infinity')", "answered"),
    ("percentile_disc(ARRAY[0.5, 0.9, 0.99]::float8[]) WITHIN GROUP (ORDER BY d.t_del)", "t_del"),
    ("percentile_disc(ARRAY[0.5, 0.9]::float8[]) WITHIN GROUP (ORDER BY d.t_ans) FILTER (WHERE d.sent AND d.asks)",
     "t_ans"),
    ("max(d.t_del) FILTER (WHERE d.t_del < 'Infinity')", "last_delivered_s"),
    ("max(d.t_ans) FILTER (WHERE d.asks AND d.t_ans < 'Infinity')", "last_answered_s"),
)
_SELECT_AGGREGATES = ",\n       ".join(f"{expr} AS {name}" for expr, name in _AGGREGATES)

_BY_ALERT_AND_CARRIER = f"""
WITH d AS ({_BASE})
SELECT grouping(d.alert_id) AS all_alerts, grouping(d.carrier) AS all_carriers, d.alert_id, d.carrier,
       {_SELECT_AGGREGATES}
  FROM d
 GROUP BY GROUPING SETS ((d.alert_id, d.carrier), (d.alert_id), (d.carrier), ())
"""

# People who were sent one of the incident's alerts (not corrections) and answered none of them.
_SILENT_PEOPLE = f"""
WITH d AS ({_BASE})
SELECT count(*) FROM (SELECT d.msisdn FROM d WHERE d.sent AND d.alert_id = ANY(:asked)
                       GROUP BY d.msisdn HAVING bool_and(d.t_ans = 'Infinity')) silent
"""

# Counted by plain hash aggregates (one pass each over the deliveries), then summed over carriers and
# cumulated over the few buckets: GROUPING SETS here sorted every delivery twice (5.3 s → 1.x s on
# 2,000,000 deliveries, bench/report.py).
_CURVES = f"""
WITH d AS MATERIALIZED ({_BASE}),
     s AS (SELECT * FROM unnest(CAST(:step_ids AS integer[]), CAST(:step_del AS float8[]),
                                CAST(:step_ans AS float8[])) AS s(alert_id, step_del, step_ans)),
     delivered AS (SELECT d.alert_id, d.carrier, ceil(d.t_del / s.step_del)::integer AS bucket, count(*) AS n
                     FROM d JOIN s ON s.alert_id = d.alert_id WHERE d.t_del < 'Infinity' GROUP BY 1, 2, 3),
     answered AS (SELECT d.alert_id, ceil(d.t_ans / s.step_ans)::integer AS bucket, count(*) AS n
                    FROM d JOIN s ON s.alert_id = d.alert_id WHERE d.asks AND d.t_ans < 'Infinity' GROUP BY 1, 2),
     counted AS (SELECT 'delivered' AS series, alert_id, carrier, 0 AS all_carriers, bucket, n FROM delivered
                 UNION ALL
                 SELECT 'delivered', alert_id, '', 1, bucket, sum(n) FROM delivered GROUP BY alert_id, bucket
                 UNION ALL
                 SELECT 'answered', alert_id, '', 1, bucket, n FROM answered)
SELECT series, alert_id, carrier, all_carriers, bucket,
       sum(n) OVER (PARTITION BY series, alert_id, carrier, all_carriers ORDER BY bucket) AS cumulative
  FROM counted
 ORDER BY series, alert_id, all_carriers DESC, carrier, bucket
"""


@contextmanager
def _fast(session: Session) -> Iterator[None]:
    """Room to sort a million recipients in memory; no JIT (it costs more than it saves here); no
    nested loop. Right after a send the planner's statistics know nothing of the alert's rows (a
    fresh alert, autovacuum not yet round) and it took the deliveries and first answers for a few
    rows each and joined them by a nested loop: 200,000 deliveries × 30,000 answers, 111 s on
    bench/report.py. Hash joins do it in well under a second whatever the estimates say; the
    deliveries are found by their alert_id index either way, and the zones' per-range scans
    (geo.reach, LATERAL) stay nested loops, the only way they can run."""
    session.execute(text("SET LOCAL work_mem = '128MB'"))
    session.execute(text("SET LOCAL jit = off"))
    session.execute(text("SET LOCAL enable_nestloop = off"))
    try:
        yield
    finally:
        session.execute(text("SET LOCAL enable_nestloop = on"))  # the rest of the transaction as it was


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 3) if math.isfinite(value) else None


def _figures(row: Any) -> dict[str, Any]:
    """A result row's counts and times: t50_s…t99_s delivered, ack_t50_s/ack_t90_s answered
    (None: that share was never reached), non-responders (asked, sent and never answered; None,
    like the answer times, where nobody was asked: a correction's rows)."""
    t_del, t_ans = list(row["t_del"] or [None] * 3), list(row["t_ans"] or [None] * 2)
    out: dict[str, Any] = {name: int(row[name] or 0) for name in ("recipients", "sent", "delivered", "failed",
                                                                  "cancelled", "waiting", "asked", "answered")}
    out["non_responders"] = out["asked"] - out["answered"] if out["asked"] else None
    out.update({f"t{p}_s": _finite(v) for p, v in zip(DELIVERED_PERCENTS, t_del, strict=True)})
    out.update({f"ack_t{p}_s": _finite(v) for p, v in zip(ANSWERED_PERCENTS, t_ans, strict=True)})
    out["last_delivered_s"] = _finite(row["last_delivered_s"])
    out["last_answered_s"] = _finite(row["last_answered_s"])
    return out


def _params(ids: Sequence[int]) -> dict[str, Any]:
    return {"ids": list(ids), "answered": list(ANSWERED)}


def by_alert_and_carrier(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Figures rows: {"alert_id": id or None (the incident), "carrier": name or None (all), …}."""
    with _fast(session):
        rows = session.execute(text(_BY_ALERT_AND_CARRIER), _params(ids)).mappings().all()
    return [{"alert_id": None if r["all_alerts"] else int(r["alert_id"]),
             "carrier": None if r["all_carriers"] else r["carrier"], **_figures(r)} for r in rows]


def silent_people(session: Session, ids: Sequence[int], asked: Sequence[int]) -> int:
    """How many people were sent one of the `asked` alerts and answered none of them."""
    if not asked:
        return 0
    with _fast(session):
        return int(session.execute(text(_SILENT_PEOPLE), {**_params(ids), "asked": list(asked)}).scalar_one())


def by_zone(session: Session, ids: Sequence[int], zones: Sequence[ZoneRef]) -> list[dict[str, Any]]:
    """Figures rows per zone (`zone_no`: the index in `zones`), per alert and for the incident
    (`alert_id` None), of the recipients with a located point in the zone."""
    if not zones or not ids:
        return []
    base = text(_BASE).bindparams(**_params(ids)).columns(
        column("id", BigInteger), column("alert_id", Integer), column("contact_id", BigInteger),
        column("msisdn", String), column("carrier", String), column("state", String), column("sent", Boolean),
        column("asks", Boolean),
        column("t_del", Float), column("t_ans", Float)).subquery("d")
    hits = [zone_hits_everywhere(zone, None).subquery(f"zone_{n}") for n, zone in enumerate(zones)]
    located = union_all(*(select(literal(n, Integer).label("zone_no"), h.c.contact_id) for n, h in enumerate(hits)))
    members = located.subquery("located")
    zm = select(members.c.zone_no, members.c.contact_id).distinct().subquery("zm")
    statement = (
        select(zm.c.zone_no, base.c.alert_id, literal_column("grouping(d.alert_id)").label("all_alerts"),
               *(literal_column(expr).label(name) for expr, name in _AGGREGATES))
        .select_from(base.join(zm, zm.c.contact_id == base.c.contact_id))
        .group_by(text("GROUPING SETS ((zm.zone_no, d.alert_id), (zm.zone_no))"))
    )
    with _fast(session):
        rows = session.execute(statement).mappings().all()
    return [{"zone_no": int(r["zone_no"]), "alert_id": None if r["all_alerts"] else int(r["alert_id"]),
             **_figures(r)} for r in rows]


def step_for(span_s: float | None) -> float:
    """The bucket width that draws a span of time in at most MAX_POINTS buckets, a round number."""
    span = max(float(span_s or 0.0), 0.1)
    for step in STEPS_S:
        if span / step <= MAX_POINTS:
            return float(step)
    return math.ceil(span / MAX_POINTS)


@dataclass
class Curves:
    """One alert's cumulative curves: [seconds since its start, count] points, a point per bucket
    where the count grew (the count holds until the next point)."""

    step_delivered_s: float
    step_answered_s: float
    delivered: list[list[float]]
    answered: list[list[float]]
    delivered_by_carrier: dict[str, list[list[float]]]


def curves(session: Session, ids: Sequence[int], spans: dict[int, tuple[float | None, float | None]]
           ) -> dict[int, Curves]:
    """Each alert's delivery curve (all carriers and per carrier) and answer curve. `spans` gives
    per alert the last delivery and last answer (seconds since its start), which fix the buckets."""
    steps = {a: (step_for(spans.get(a, (None, None))[0]), step_for(spans.get(a, (None, None))[1])) for a in ids}
    out = {a: Curves(steps[a][0], steps[a][1], [], [], {}) for a in ids}
    if not ids:
        return out
    with _fast(session):
        rows = session.execute(text(_CURVES), {**_params(ids), "step_ids": list(steps),
                                               "step_del": [s[0] for s in steps.values()],
                                               "step_ans": [s[1] for s in steps.values()]}).all()
    for series, alert_id, carrier, all_carriers, bucket, cumulative in rows:
        c = out[int(alert_id)]
        if series == "answered":
            points, step = c.answered, c.step_answered_s
        elif all_carriers:
            points, step = c.delivered, c.step_delivered_s
        else:
            points, step = c.delivered_by_carrier.setdefault(carrier or "-", []), c.step_delivered_s
        points.append([round(bucket * step, 3), int(cumulative)])
    for c in out.values():
        for points in (c.delivered, c.answered, *c.delivered_by_carrier.values()):
            if points and points[0][0] > 0:
                points.insert(0, [0.0, 0])
    return out


def aligned(series: dict[str, list[list[float]]], *, offsets: dict[str, float] | None = None) -> dict[str, Any]:
    """Step curves on one time axis, as a chart library draws them: the union of their times, and
    each series' count at each time (the last count so far; None before the series starts).
    `offsets` shifts a series' times (an alert's start on the incident's clock)."""
    shifted = {name: [(round(x + (offsets or {}).get(name, 0.0), 3), y) for x, y in points]
               for name, points in series.items()}
    xs = sorted({x for points in shifted.values() for x, _ in points})
    out: dict[str, list[int | None]] = {}
    for name, points in shifted.items():
        values: list[int | None] = []
        i, last = 0, None
        for x in xs:
            while i < len(points) and points[i][0] <= x:
                last = int(points[i][1])
                i += 1
            values.append(last)
        out[name] = values
    return {"x": xs, "series": out}
