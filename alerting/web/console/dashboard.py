"""The dashboard: HELPs waiting for a person (pinned), alerts in progress with live counts, approvals
waiting, carriers."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template
from sqlalchemy import select, text

from alerting import help_desk
from alerting.db import transaction
from alerting.models import Alert, AlertState
from alerting.web.console.replies import shown_helps
from alerting.web.security import requires
from broadcast import carrier_health, jobs

bp = Blueprint("console", __name__)

IN_PROGRESS = (AlertState.APPROVED, AlertState.SCHEDULED, AlertState.SENDING)
SILENCE_AFTER = 20  # messages handed to a carrier with not one receipt back


@bp.get("/")
@requires("dashboard.view")
def dashboard() -> str:
    """Alerts in progress with live counts, approvals waiting, carriers, HELP replies."""
    with transaction() as db:
        running = list(db.scalars(select(Alert).where(Alert.state.in_(IN_PROGRESS)).order_by(Alert.id.desc())))
        counts = {a.id: jobs.counts_by_state(db, a.id) for a in running}
        pending = list(db.scalars(select(Alert).where(Alert.state == AlertState.PENDING_APPROVAL)
                                  .order_by(Alert.submitted_at)))
        desk = shown_helps(help_desk.open_helps(db))
        carriers = db.execute(text(
            "SELECT c.carrier, c.state, sum(c.n) FROM alert_counters c JOIN alerts a ON a.id = c.alert_id "
            "WHERE a.state IN ('approved', 'scheduled', 'sending') AND c.carrier <> '' "
            "GROUP BY c.carrier, c.state HAVING sum(c.n) <> 0 ORDER BY 1, 2")).all()
        recent = list(db.scalars(select(Alert).where(Alert.state.not_in(IN_PROGRESS))
                                 .order_by(Alert.id.desc()).limit(10)))
        degraded = carrier_health.degraded_carriers(db)
    by_carrier: dict[str, dict[str, int]] = {}
    for carrier, state, n in carriers:
        by_carrier.setdefault(carrier, {})[state] = int(n)
    binds, binds_error = _binds()
    return render_template("dashboard.html", running=running, counts=counts, pending=pending,
                           desk=desk, help_alert_id=None, carriers=by_carrier, silent=_silent(by_carrier),
                           recent=recent, binds=binds, binds_error=binds_error, degraded=degraded)


def _binds() -> tuple[list[dict[str, Any]], str | None]:
    """Every bind of every live gateway worker: state, breaker, window in use, TPS (published every 3 s)."""
    from alerting.outbox import redis_connection
    from broadcast.presence import gateway_carriers, read_all

    try:
        conn = redis_connection(current_app.config["SIRENA_SETTINGS"].redis_url, timeout_s=1.0)
        try:
            records = read_all(conn)
        finally:
            conn.close()
    except Exception as exc:
        return [], f"Redis unreachable ({type(exc).__name__}): bind health unknown"
    rows = []
    for record in records:
        if record.get("role") != "gateway":
            continue
        for carrier, entry in sorted(gateway_carriers(record).items()):
            for name, bind in sorted((entry.get("binds") or {}).items()):
                rows.append({"gateway": record.get("name"), "carrier": carrier, "bind": name, **bind})
    if not rows:
        return [], "No gateway worker is running: nothing can be sent (start `sirena worker`)."
    return rows, None


def _silent(by_carrier: dict[str, dict[str, int]]) -> set[str]:
    """Carriers that took messages but sent back no receipt at all: an alarm, never a blank (FIELD req. 9).

    Bind states (from the gateways) say a link is up; receipts say the carrier is delivering.
    """
    silent = set()
    for carrier, states in by_carrier.items():
        handed = sum(states.get(s, 0) for s in ("submitted", "delivered", "failed", "expired"))
        if handed >= SILENCE_AFTER and not any(states.get(s, 0) for s in ("delivered", "failed", "expired")):
            silent.add(carrier)
    return silent
