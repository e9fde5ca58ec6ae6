"""Liveness, readiness and Prometheus metrics (no token: scraped and probed from inside the network)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from alerting.base.db import transaction
from alerting.base.runtime import redis_connection
from alerting.interfaces.api import api_bp
from alerting.interfaces.api.framework import operation
from alerting.interfaces.api.schemas import HealthSchema
from audit.seal import LATE_DO, unsealed_backlog
from broadcast.presence import read_all, routes_up

REGISTRY = CollectorRegistry(auto_describe=True)
API_REQUESTS = Counter("sirena_api_requests", "API requests by endpoint and status",
                       ["endpoint", "status"], registry=REGISTRY)


class _StateCollector(Collector):
    """Alerts by state and deliveries by state, read from Postgres at scrape time (counters, no scans)."""
    def collect(self) -> Iterator[GaugeMetricFamily]:
        alerts = GaugeMetricFamily("sirena_alerts", "Alerts by state", labels=["state"])
        deliveries = GaugeMetricFamily("sirena_deliveries", "Deliveries of open alerts by state",
                                       labels=["state"])
        try:
            with transaction() as session:
                for state, n in session.execute(text("SELECT state, count(*) FROM alerts GROUP BY state")):
                    alerts.add_metric([state], n)
                for state, n in session.execute(text(
                        "SELECT c.state, sum(c.n) FROM alert_counters c JOIN alerts a ON a.id = c.alert_id "
                        "WHERE a.state IN ('sending', 'approved', 'scheduled') GROUP BY c.state")):
                    deliveries.add_metric([state], float(n))
        except Exception:  # a scrape must not fail because Postgres is down; readyz says that
            return
        yield alerts
        yield deliveries


REGISTRY.register(_StateCollector())


@api_bp.after_request
def _count(response: Response) -> Response:
    from flask import request

    API_REQUESTS.labels(request.endpoint or "unknown", str(response.status_code)).inc()
    return response


@operation(api_bp, "GET", "/healthz", summary="Liveness: the process answers", tag="health",
           response=HealthSchema, public=True, errors=())
def healthz() -> dict[str, Any]:
    return {"status": "ok", "checks": {}}


def _check_postgres() -> dict[str, Any]:
    started = time.monotonic()
    with transaction() as session:
        postgis = session.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")).scalar()
    return {"ok": postgis is not None, "postgis": postgis, "ms": round((time.monotonic() - started) * 1000, 1)}


def _check_redis() -> dict[str, Any]:
    settings = current_app.config["SIRENA_SETTINGS"]
    started = time.monotonic()
    conn = redis_connection(settings.redis_url, timeout_s=1.0)
    try:
        conn.ping()
    finally:
        conn.close()
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def _check_binds() -> dict[str, Any]:
    """At least one bind up for every sender, from what the gateway workers publish every few seconds."""
    settings = current_app.config["SIRENA_SETTINGS"]
    conn = redis_connection(settings.redis_url, timeout_s=1.0)
    try:
        routes = routes_up(read_all(conn))
    finally:
        conn.close()
    if not routes:
        return {"ok": False, "why": "no gateway worker is running (start `sirena worker`)"}
    down = sorted(sender for sender, carriers in routes.items() if not carriers)
    if down:
        return {"ok": False, "why": "no bind up for sender(s) " + ", ".join(down), "routes": routes}
    return {"ok": True, "routes": routes}


def _check_audit() -> dict[str, Any]:
    """Audit events waiting for their seal: a warning (not unready) when the oldest is late, since
    alerts still go out; until sealed, a deleted event would leave no trace in the chain."""
    with transaction() as session:
        backlog = unsealed_backlog(session)
    out: dict[str, Any] = {"ok": True, **backlog.as_dict()}
    warning = backlog.warning()
    if warning:
        out["warning"] = f"{warning}. {LATE_DO}"
    return out


@operation(api_bp, "GET", "/readyz", summary="Readiness: PostgreSQL+PostGIS, Redis, a bind up for every sender",
           tag="health", response=HealthSchema, public=True, errors=(503,),
           description="Bind health comes from the gateway workers, which publish it to Redis every 3 s "
                       "(expiring after 15 s): no live gateway, or a sender with no bind up, is not ready. "
                       "`checks.audit` counts audit events not yet sealed into the hash chain and warns "
                       "(`warning`, still ready) when the oldest has waited more than 10 s.")
def readyz() -> tuple[dict[str, Any], int]:
    checks: dict[str, dict[str, Any]] = {}
    for name, check in (("postgres", _check_postgres), ("redis", _check_redis)):
        try:
            checks[name] = check()
        except Exception as exc:
            checks[name] = {"ok": False, "error": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}
    try:
        checks["binds"] = _check_binds()
    except Exception as exc:
        checks["binds"] = {"ok": False, "error": f"cannot read the gateways' presence: {type(exc).__name__}"}
    if checks["postgres"]["ok"]:
        checks["audit"] = _check_audit()
    ready = all(c["ok"] for c in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503


@operation(api_bp, "GET", "/metrics", summary="Prometheus metrics", tag="health", public=True, errors=(),
           produces="text/plain")
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)


# The same three probes at the root, where load balancers and Prometheus look by default.
probes_bp = Blueprint("probes", __name__)
probes_bp.add_url_rule("/healthz", "healthz", lambda: (healthz(), 200))
probes_bp.add_url_rule("/readyz", "readyz", readyz)
probes_bp.add_url_rule("/metrics", "metrics", metrics)
