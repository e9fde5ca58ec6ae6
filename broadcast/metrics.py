"""Prometheus metrics of the worker processes (`sirena worker|scheduler --metrics-port P`).

The web app serves its own at /metrics (alerting/interfaces/api/health.py: `sirena_api_requests`,
`sirena_alerts`, `sirena_deliveries`); these are the names the workers export, all `sirena_`:

| metric | type | labels | source |
|---|---|---|---|
| sirena_submits_total | counter | carrier, bind | submit_sm written (one per part) |
| sirena_submit_responses_total | counter | carrier, bind, result=ok/throttled/error | submit_sm_resp by status |
| sirena_submit_timeouts_total | counter | carrier, bind | no submit_sm_resp in time |
| sirena_deliver_sm_total | counter | carrier, bind | receipts and replies received |
| sirena_window_in_flight / sirena_window_size | gauge | carrier, bind | window occupancy |
| sirena_bind_up | gauge | carrier, bind | 1 when bound |
| sirena_breaker_open | gauge | carrier, bind, state | 1 for the breaker's current state |
| sirena_bind_tps | gauge | carrier, bind | current rate (halved by throttling) |
| sirena_bind_connect_failures_total | counter | carrier, bind | refused or failed binds |
| sirena_possible_duplicates_total | counter | source=pool/reaper | re-sends counted as possible duplicates |
| sirena_queue_depth | gauge | queue | RQ jobs waiting per priority queue |
| sirena_inbound_per_second | gauge | kind=receipt/mo | last minute, from Postgres |
| sirena_receipts_unmatched | gauge | — | receipts kept with no message of ours to match, from Postgres |
| sirena_approval_to_first_submit_seconds | gauge | quantile=0.5/0.9/1 | alerts sent in the last 24 h |
| sirena_reconciler_actions_total | counter | action | reaped, batches_queued, fan_outs_queued, completed, … |
| sirena_reconciler_last_pass_timestamp_seconds | gauge | — | lag = now − this |

Bind figures are read from the pool at scrape time (`pool.health()`): nothing on the hot path.
Scrape-time reads of Redis and Postgres are cheap (LLEN, indexed ranges) and never fail a scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from alerting.base.db import transaction
from alerting.base.outbox import PRIORITY_QUEUES
from broadcast import receipts

log = logging.getLogger("sirena.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
RECONCILER_ACTIONS = Counter("sirena_reconciler_actions", "Reconciler actions (rows or jobs)", ["action"],
                             registry=REGISTRY)
RECONCILER_LAST_PASS = Gauge("sirena_reconciler_last_pass_timestamp_seconds", "Unix time of the last pass",
                             registry=REGISTRY)
RECONCILER_PASS_SECONDS = Gauge("sirena_reconciler_pass_seconds", "Duration of the last pass", registry=REGISTRY)
REAPED_DUPLICATES = Counter("sirena_reaped_possible_duplicates", "Expired leases re-queued (each may re-send)",
                            registry=REGISTRY)


def observe_reconcile(report: Any) -> None:
    """Count one reconciler pass (a `broadcast.reconciler.ReconcileReport`)."""
    reaped = sum(report.reaped.values())
    for action, n in (("reaped", reaped), ("waiting_route_retried", report.waiting_retried),
                      ("fan_outs_queued", len(report.fan_outs_queued)),
                      ("batches_queued", sum(report.batches_queued.values())),
                      ("completed", len(report.completed))):
        if n:
            RECONCILER_ACTIONS.labels(action).inc(n)
    if reaped:
        REAPED_DUPLICATES.inc(reaped)
    RECONCILER_LAST_PASS.set(time.time())
    RECONCILER_PASS_SECONDS.set(report.seconds)


class PoolCollector(Collector):
    """Per-bind figures of this process's carrier pool, read at scrape time."""
    def __init__(self, health: Callable[[], dict[str, Any]]) -> None:
        self.health = health

    def collect(self) -> Iterator[Any]:
        labels = ["carrier", "bind"]
        submits = CounterMetricFamily("sirena_submits", "submit_sm written (one per part)", labels=labels)
        responses = CounterMetricFamily("sirena_submit_responses", "submit_sm_resp by result",
                                        labels=[*labels, "result"])
        timeouts = CounterMetricFamily("sirena_submit_timeouts", "submit_sm without a response in time",
                                       labels=labels)
        delivers = CounterMetricFamily("sirena_deliver_sm", "deliver_sm received (receipts and replies)",
                                       labels=labels)
        failures = CounterMetricFamily("sirena_bind_connect_failures", "Binds refused or failed", labels=labels)
        in_flight = GaugeMetricFamily("sirena_window_in_flight", "submit_sm awaiting a response", labels=labels)
        window = GaugeMetricFamily("sirena_window_size", "Window of the bind", labels=labels)
        up = GaugeMetricFamily("sirena_bind_up", "1 when the bind is bound", labels=labels)
        breaker = GaugeMetricFamily("sirena_breaker_open", "1 for the breaker's current state",
                                    labels=[*labels, "state"])
        tps = GaugeMetricFamily("sirena_bind_tps", "Current submit rate allowed (PDUs/s)", labels=labels)
        duplicates = CounterMetricFamily("sirena_possible_duplicates", "Messages re-sent that may be duplicates",
                                         labels=["source"])
        try:
            health = self.health()
        except Exception:  # a scrape must not fail because the pool is stopping
            return
        for carrier, entry in health.get("carriers", {}).items():
            for bind, b in entry.get("binds", {}).items():
                key = [carrier, bind]
                submits.add_metric(key, b["submitted"])
                errors = max(0, b["failed"])
                ok = max(0, b["responses"] - errors - b["throttled"])
                responses.add_metric([*key, "ok"], ok)
                responses.add_metric([*key, "throttled"], b["throttled"])
                responses.add_metric([*key, "error"], errors)
                timeouts.add_metric(key, b["timeouts"])
                delivers.add_metric(key, b["delivers"])
                failures.add_metric(key, b["connect_failures"])
                in_flight.add_metric(key, b["in_flight"])
                window.add_metric(key, b["window"])
                up.add_metric(key, 1 if b["state"] == "up" else 0)
                for state in ("closed", "half_open", "open"):
                    breaker.add_metric([*key, state], 1 if b["breaker"] == state else 0)
                tps.add_metric(key, b["tps"])
        duplicates.add_metric(["pool"], health.get("possible_duplicates", 0))
        yield from (submits, responses, timeouts, delivers, failures, in_flight, window, up, breaker, tps, duplicates)


class SystemCollector(Collector):
    """Queue depth per priority (Redis), inbound rates and approval→first-submit latency (Postgres)."""
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily("sirena_queue_depth", "RQ jobs waiting per priority queue", labels=["queue"])
        try:
            depths = [(name, self.redis.llen(f"rq:queue:{name}")) for name in PRIORITY_QUEUES]
        except Exception as exc:  # Redis down: `sirena status` says so; the scrape still answers
            log.debug("queue depth unavailable: %s", exc)
            depths = []
        for name, n in depths:
            depth.add_metric([name], n)
        if depths:
            yield depth
        yield from _postgres_families()


def _postgres_families() -> Iterator[Any]:
    from sqlalchemy import text


    inbound = GaugeMetricFamily("sirena_inbound_per_second", "deliver_sm stored per second over the last minute",
                                labels=["kind"])
    unmatched = GaugeMetricFamily("sirena_receipts_unmatched",
                                  "Receipts kept with no message of ours to match (unknown or not yet stored id)")
    latency = GaugeMetricFamily("sirena_approval_to_first_submit_seconds",
                                "Approval (or scheduled time) to first submit, alerts of the last 24 h",
                                labels=["quantile"])
    try:
        with transaction() as session:
            for kind, n in session.execute(text(
                    "SELECT kind, count(*) FROM inbound_messages WHERE received_at > now() - interval '1 minute' "
                    "GROUP BY kind")):
                inbound.add_metric([kind], n / 60.0)
            unmatched.add_metric([], receipts.pending_count(session))
            row = session.execute(text("""
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.9) WITHIN GROUP (ORDER BY s),
                       max(s)
                  FROM (SELECT extract(epoch FROM first_submit_at - greatest(approved_at, coalesce(scheduled_at,
                               approved_at))) AS s
                          FROM alerts WHERE first_submit_at > now() - interval '1 day' AND approved_at IS NOT NULL) t
            """)).one()
    except Exception:  # Postgres down: the scrape still answers with what it has
        return
    yield inbound
    yield unmatched
    if row[0] is not None:
        for quantile, value in zip(("0.5", "0.9", "1"), row, strict=True):
            latency.add_metric([quantile], float(value))
        yield latency


def serve(port: int, *, pool_health: Callable[[], dict[str, Any]] | None = None, redis: Any = None) -> None:
    """Serve this process's metrics on `port` (all interfaces: Prometheus scrapes from another host)."""
    if pool_health is not None:
        REGISTRY.register(PoolCollector(pool_health))
    if redis is not None:
        REGISTRY.register(SystemCollector(redis))
    start_http_server(port, registry=REGISTRY)
    log.info("metrics on :%s/metrics", port)
