"""Replies in the console: those nobody matched (an unknown number, a number with no alert open, an
unknown keyword), and the HELP desk: HELPs pinned until an operator marks them handled.

The unmatched list comes from broadcast/live.py, numbers by their last 4 digits only; the HELP
desk from alerting/alerts/help_desk.py (full numbers for the roles that read the directory anyway).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from alerting.alerts import help_desk
from alerting.base.db import transaction
from alerting.base.phones import mask_msisdn
from alerting.directory import permissions
from alerting.interfaces.web.i18n import localtime
from alerting.interfaces.web.security import current_actor, current_operator, limiter, requires, safe_next
from broadcast import live

bp = Blueprint("replies", __name__, url_prefix="/replies")

PAGE = 100
ACTION_LIMIT = "60 per minute"


@bp.get("/unmatched")
@requires("replies.read_unmatched")
def unmatched() -> str:
    """The latest unmatched replies, newest first; `before` (a reply id) pages back."""
    raw = request.args.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) <= 18 else None
    with transaction() as db:
        rows = live.unmatched_replies(db, limit=PAGE + 1, before_id=before)
    return render_template("replies/unmatched.html", rows=rows[:PAGE],
                           older=rows[PAGE - 1]["id"] if len(rows) > PAGE else None)


def shown_helps(helps: help_desk.OpenHelps) -> dict[str, Any]:
    """The HELP desk as the panel shows it (alerts/_help_panel.html and js/help_panel.js): the
    number whole for those who may read the directory, else by its last 4 digits."""
    operator = current_operator()
    whole = operator is not None and permissions.allowed(operator.roles, "directory.read")
    return {"total": helps.total, "helps": [
        {"id": h["id"], "alert_id": h["alert_id"], "reference": h["reference"], "name": h["name"] or "",
         "number": h["msisdn"] if whole else mask_msisdn(h["msisdn"]), "text": h["text"] or "",
         "at": localtime(h["created_at"], "%H:%M:%S"), "day": localtime(h["created_at"], "%Y-%m-%d"),
         "alert_url": url_for("alerts.detail", alert_id=h["alert_id"]) if h["alert_id"] else None}
        for h in helps.helps]}


@bp.get("/help.json")
@requires("dashboard.view")
def help_json() -> Any:
    """The HELPs not handled yet, of one alert (`alert`) or all: what the pinned panel refreshes."""
    raw = request.args.get("alert", "")
    alert_id = int(raw) if raw.isdigit() and len(raw) <= 9 else None
    with transaction() as db:
        return jsonify(shown_helps(help_desk.open_helps(db, alert_id=alert_id)))


@bp.post("/<int:reply_id>/handled")
@requires("replies.handle_help")
@limiter.limit(ACTION_LIMIT)
def help_handled(reply_id: int) -> Any:
    """Mark one HELP handled (who and when kept, audited), with an optional note; back to the page."""
    with transaction() as db:
        reply = help_desk.mark_help_handled(db, reply_id, current_actor(), note=request.form.get("note", ""))
        who = mask_msisdn(reply.msisdn)
    flash(_("HELP from %(number)s marked handled.", number=who), "ok")
    return redirect(safe_next(request.form.get("next")) or url_for("console.dashboard"), 303)
