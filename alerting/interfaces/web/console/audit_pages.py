"""Auditor pages: the trail (overall or per alert), chain verification, export. Read-only (an
export is recorded in the trail, like every other access to the whole record)."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from sqlalchemy import text

from alerting.alerts import drafts
from alerting.base.db import engine, transaction
from alerting.base.errors import InvalidInput
from alerting.interfaces.web.security import current_actor, requires
from audit.checkpoints import signing_key
from audit.export import Scope, record_export, write_export
from audit.seal import seal_committed
from audit.verify import verify_chain

bp = Blueprint("audit", __name__, url_prefix="/audit")

PAGE = 200


def _alert_id() -> int | None:
    """The alert the `alert` query names, by id or reference (A-2026-000001); None when absent."""
    raw = request.args.get("alert", "").strip()
    if not raw:
        return None
    with transaction() as db:
        return drafts.alert_id_of(db, raw)


@bp.get("/timeline")
@requires("audit.read")
def timeline() -> str:
    """The trail, newest first, overall or about one alert."""
    alert_id = _alert_id()
    where = ""
    params: dict[str, int | str] = {"limit": PAGE}
    if alert_id is not None:
        where = ("WHERE (subject_type = 'alert' AND subject_id = :a) "
                 "OR (payload ? 'alert_id' AND payload ->> 'alert_id' = :a)")
        params["a"] = str(alert_id)
    with transaction() as db:
        events = db.execute(text(
            f"SELECT seq, at, actor_kind, actor_name, origin_interface, origin_address, action, subject_type, "
            f"subject_id, outcome, reason FROM audit.events {where} ORDER BY seq DESC NULLS FIRST, id DESC "
            "LIMIT :limit"), params).all()
        reference = db.execute(text("SELECT reference FROM alerts WHERE id = :a"), {"a": alert_id}).scalar()
    return render_template("audit/timeline.html", events=events, alert_id=alert_id, reference=reference)


@bp.get("/verify")
@requires("audit.read")
def verify() -> str:
    """Recompute the hash chain and check it against the signed checkpoints."""
    verdict = verify_chain(engine(), current_app.config["SIRENA_SETTINGS"])
    return render_template("audit/verify.html", verdict=verdict.as_dict(), ok=verdict.ok)


@bp.get("/export")
@requires("audit.read")
def export() -> Any:
    """Download the trail (or one alert's part) as signed JSON or CSV; the export itself is audited
    (audit.exported, as `sirena audit export` does) before it is written, so it is in the file too."""
    fmt = request.args.get("format", "json")
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"unknown export format {fmt!r}", fields={"format": "expected csv or json"})
    alert_id = _alert_id()
    scope = Scope(alert_ids=(alert_id,) if alert_id is not None else ())
    key = signing_key(current_app.config["SIRENA_SETTINGS"])
    with transaction() as db:
        record_export(db, current_actor(), scope, fmt, "console download", alert_id=alert_id)
    out = io.StringIO()
    seal_committed(engine())  # only sealed events have their place in the chain, and are exported
    with transaction() as db:
        write_export(db, scope, fmt, out, key=key)
    name = f"sirena-audit-{alert_id or 'all'}.{fmt}"
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    return Response(out.getvalue(), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
