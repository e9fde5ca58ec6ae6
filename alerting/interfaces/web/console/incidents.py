"""Incidents in the console: the list, opening one, putting alerts in (from the incident's page or
the alert's), closing, and the after-action report: the page, and its HTML, CSV and JSON files."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from alerting.alerts import drafts, incidents, report
from alerting.base.db import engine, transaction
from alerting.base.errors import InvalidInput
from alerting.directory import permissions
from alerting.interfaces.web import incident_report
from alerting.interfaces.web.errors import on_invalid
from alerting.interfaces.web.i18n import language
from alerting.interfaces.web.security import current_actor, limiter, requires
from audit.seal import seal_committed

bp = Blueprint("incidents", __name__)

ACTION_LIMIT = "30 per minute"


def _index(errors: dict[str, str]) -> str:
    with transaction() as db:
        rows = incidents.list_incidents(db)
    return render_template("incidents/index.html", incidents=rows, errors=errors)


@bp.get("/incidents")
@requires("incidents.read")
def index() -> str:
    """The latest incidents, and the form to open one."""
    return _index({})


@bp.post("/incidents")
@requires("incidents.manage")
@on_invalid(_index)
@limiter.limit(ACTION_LIMIT)
def open_incident() -> Any:
    """Open an incident (audited); its page comes next, to put alerts in."""
    with transaction() as db:
        incident = incidents.open_incident(db, request.form.get("title", ""), current_actor(),
                                           description=request.form.get("description", ""))
    flash(_("Incident %(reference)s opened.", reference=incident.reference), "ok")
    return redirect(url_for("incidents.report_page", incident_id=incident.id), 303)


def _page(incident_id: int, errors: dict[str, str]) -> str:
    # The latest actions get their place in the chain; if a sealer is busy, the page does not wait
    # for it: events still unsealed show last, with no number.
    seal_committed(engine(), wait=False)
    actor = current_actor()
    with transaction() as db:
        rep = report.build_report(db, incident_id,
                                  list_non_responders=permissions.allowed(actor.roles, "alerts.non_responders"),
                                  unsealed=True)
    return render_template("incidents/report.html", r=rep, errors=errors, fmt_s=incident_report.seconds,
                           chart_data=incident_report.chart_data(rep))


def _page_again(errors: dict[str, str]) -> str:
    return _page((request.view_args or {})["incident_id"], errors)


@bp.get("/incidents/<int:incident_id>")
@requires("incidents.read")
def report_page(incident_id: int) -> str:
    """The after-action report, as it stands now; its files carry the signed trail too."""
    return _page(incident_id, {})


@bp.get("/incidents/<int:incident_id>/report")
@requires("incidents.read")
def report_file(incident_id: int) -> Response:
    """The report as a file (`format`: html, the default, csv or json), audited before it is made
    (incident.report_exported)."""
    fmt = incident_report.check_format(request.args.get("format", "html"))
    made = incident_report.make(incident_id, current_actor(), fmt, "console download",
                                current_app.config["SIRENA_SETTINGS"], lang=language())
    return Response(made.body, mimetype=made.media_type.split(";")[0],
                    headers={"Content-Disposition": f'attachment; filename="{made.file_name}"'})


@bp.post("/incidents/<int:incident_id>/alerts")
@requires("incidents.manage")
@on_invalid(_page_again)
@limiter.limit(ACTION_LIMIT)
def add_alert(incident_id: int) -> Any:
    """Put an alert (by reference or id), with its corrections, in the incident."""
    with transaction() as db:
        alert_id = drafts.alert_id_of(db, request.form.get("alert", ""), field="alert")
        moved = incidents.add_to_incident(db, alert_id, incident_id, current_actor())
    flash(_("%(n)s alert(s) added to the incident.", n=len(moved)), "ok")
    return redirect(url_for("incidents.report_page", incident_id=incident_id), 303)


@bp.post("/alerts/<int:alert_id>/incident")
@requires("incidents.manage")
@limiter.limit(ACTION_LIMIT)
def add_from_alert(alert_id: int) -> Any:
    """From the alert's page: put it, with its corrections, in the incident chosen."""
    with transaction() as db:
        incident_id = incidents.incident_id_of(db, request.form.get("incident", ""))
        incidents.add_to_incident(db, alert_id, incident_id, current_actor())
        reference = incidents.get_incident(db, incident_id).reference
    flash(_("Added to incident %(reference)s.", reference=reference), "ok")
    return redirect(url_for("alerts.detail", alert_id=alert_id), 303)


@bp.post("/incidents/<int:incident_id>/alerts/<int:alert_id>/remove")
@requires("incidents.manage")
@limiter.limit(ACTION_LIMIT)
def remove_alert(incident_id: int, alert_id: int) -> Any:
    """Take an alert, with its corrections, out of the incident (it was put in the wrong one)."""
    with transaction() as db:
        incident = incidents.get_incident(db, incident_id)
        alert = drafts.get_alert(db, alert_id)
        if alert.incident_id != incident.id:
            raise InvalidInput(f"alert: {alert.reference} is not in incident {incident.reference}",
                               fields={"alert": "not in this incident"})
        removed = incidents.remove_from_incident(db, alert_id, current_actor())
    flash(_("%(n)s alert(s) taken out of the incident.", n=len(removed)), "ok")
    return redirect(url_for("incidents.report_page", incident_id=incident_id), 303)


@bp.post("/incidents/<int:incident_id>/close")
@requires("incidents.manage")
@limiter.limit(ACTION_LIMIT)
def close(incident_id: int) -> Any:
    """Close the incident (or reopen it, with `reopen`)."""
    reopen = bool(request.form.get("reopen"))
    with transaction() as db:
        incident = incidents.close_incident(db, incident_id, current_actor(), reopen=reopen)
    flash(_("Incident %(reference)s reopened.", reference=incident.reference) if reopen
          else _("Incident %(reference)s closed.", reference=incident.reference), "ok")
    return redirect(url_for("incidents.report_page", incident_id=incident_id), 303)
