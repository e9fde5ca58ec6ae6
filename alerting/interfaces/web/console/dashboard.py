"""The dashboard: HELPs waiting for a person (pinned), alerts in progress with live counts, approvals
waiting, carriers."""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select, text

from alerting.alerts import help_desk
from alerting.base.db import transaction
from alerting.base.models import Alert, AlertState
from alerting.interfaces.web.console import carrier_view
from alerting.interfaces.web.console.replies import shown_helps
from alerting.interfaces.web.security import requires
from broadcast import carrier_health, jobs

bp = Blueprint("console", __name__)

IN_PROGRESS = (AlertState.APPROVED, AlertState.SCHEDULED, AlertState.SENDING)


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
    binds, binds_error = carrier_view.bind_rows()
    return render_template("dashboard.html", running=running, counts=counts, pending=pending,
                           desk=desk, help_alert_id=None, carriers=by_carrier,
                           silent=carrier_view.silent_carriers(by_carrier), recent=recent,
                           binds=binds, binds_error=binds_error, degraded=degraded)
