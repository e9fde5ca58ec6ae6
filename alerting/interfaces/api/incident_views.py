"""Incidents over the API: list, open, put an alert in, and the after-action report (JSON, CSV,
HTML). Each handler parses, opens one transaction (the report: its own steps, alerting/interfaces/
web/incident_report.py), calls the service and serializes."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g
from marshmallow import Schema, fields, validate

from alerting.alerts import drafts, incidents, report
from alerting.base.db import transaction
from alerting.interfaces.api import api_bp
from alerting.interfaces.api.framework import operation
from alerting.interfaces.web import incident_report


class IncidentSchema(Schema):
    id = fields.Integer(required=True)
    reference = fields.String(required=True)
    title = fields.String(required=True)
    alerts = fields.Integer(metadata={"description": "how many alerts it holds"})
    opened_by = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    closed_at = fields.DateTime(allow_none=True)


class IncidentCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=4000))


class IncidentAlertSchema(Schema):
    alert = fields.String(required=True, validate=validate.Length(min=1, max=40),
                          metadata={"description": "the alert's reference (A-2026-000042) or id"})


class IncidentAlertsAddedSchema(Schema):
    incident = fields.String(required=True)
    alert_ids = fields.List(fields.Integer(), required=True,
                            metadata={"description": "the alert and its corrections, moved in (none: in it already)"})


class ReportQuerySchema(Schema):
    lang = fields.String(load_default="es", validate=validate.OneOf(["es", "en"]))


class IncidentReportSchema(Schema):
    format = fields.String(required=True, metadata={"description": "sirena-incident-report-v1"})
    incident = fields.Dict(required=True)
    generated_at = fields.String(required=True)
    head = fields.Dict(required=True, metadata={"description": "the audit chain's head when it was made"})
    alerts = fields.List(fields.Dict(), required=True)
    figures = fields.List(fields.Dict(), required=True, metadata={
        "description": "per incident and alert, overall, per carrier and per zone: recipients, sent, delivered, "
                       "failed, cancelled, waiting, answered, non_responders, t50_s/t90_s/t99_s (seconds from "
                       "the alert's start until that share of its recipients had it; null: never) and "
                       "ack_t50_s/ack_t90_s"})
    curves = fields.Dict(required=True)
    replies = fields.Dict(required=True)
    helps = fields.List(fields.Dict(), required=True)
    help_summary = fields.Dict(required=True)
    non_responders = fields.Dict(required=True, metadata={
        "description": "per alert: count, and rows (numbers masked) when the token's operator has "
                       "alerts.non_responders"})
    silent_people = fields.Integer(required=True)
    actions = fields.List(fields.Dict(), required=True)
    zones = fields.List(fields.String(), required=True)
    non_responders_listed = fields.Boolean(required=True)
    verification = fields.Dict(allow_none=True)
    elapsed_s = fields.Float()
    audit_export = fields.Dict(allow_none=True, metadata={
        "description": "the incident's audit events, signed: save the whole document and run "
                       "`sirena audit verify --export FILE`"})


def _row(r: incidents.IncidentRow) -> dict[str, Any]:
    return {"id": r.id, "reference": r.reference, "title": r.title, "alerts": r.alerts, "opened_by": r.opened_by,
            "created_at": r.created_at, "closed_at": r.closed_at}


@operation(api_bp, "GET", "/incidents", summary="The latest incidents", tag="incidents",
           response=IncidentSchema, many=True, scope="read", action="incidents.read")
def list_incidents() -> list[dict[str, Any]]:
    with transaction() as session:
        return [_row(r) for r in incidents.list_incidents(session)]


@operation(api_bp, "POST", "/incidents", summary="Open an incident", tag="incidents", body=IncidentCreateSchema,
           response=IncidentSchema, status=201, scope="alerts:draft", action="incidents.manage",
           description="Alerts join it when composed (incident_id) or later (POST /incidents/{id}/alerts); "
                       "a correction joins its original's incident by itself.")
def open_incident(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with transaction() as session:
        incident = incidents.open_incident(session, body["title"], g.actor, description=body["description"])
        return {"id": incident.id, "reference": incident.reference, "title": incident.title, "alerts": 0,
                "opened_by": g.actor.name, "created_at": incident.created_at, "closed_at": None}, 201


@operation(api_bp, "POST", "/incidents/<int:incident_id>/alerts", summary="Put an alert, with its corrections, "
           "in an incident", tag="incidents", body=IncidentAlertSchema, response=IncidentAlertsAddedSchema,
           scope="alerts:draft", action="incidents.manage")
def add_alert(incident_id: int, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        alert_id = drafts.alert_id_of(session, body["alert"], field="alert")
        moved = incidents.add_to_incident(session, alert_id, incident_id, g.actor)
        return {"incident": incidents.get_incident(session, incident_id).reference, "alert_ids": moved}


def _made(incident_id: int, fmt: str, lang: str = "es") -> incident_report.Made:
    return incident_report.make(incident_id, g.actor, fmt, "api", current_app.config["SIRENA_SETTINGS"], lang=lang)


@operation(api_bp, "GET", "/incidents/<int:incident_id>/report", summary="An incident's after-action report",
           tag="incidents", response=IncidentReportSchema, scope="read", action="incidents.read",
           description="Delivery and answer curves, times to 50/90/99 % delivered per carrier and zone, HELPs and "
                       "how long each waited, non-responders, every operator action, and the incident's audit "
                       "events, signed. Each call is audited (incident.report_exported).")
def incident_report_json(incident_id: int) -> Any:
    return report.as_json(_made(incident_id, "json").report)


@operation(api_bp, "GET", "/incidents/<int:incident_id>/report.csv", summary="An incident's figures as CSV",
           tag="incidents", scope="read", action="incidents.read", produces="text/csv")
def incident_report_csv(incident_id: int) -> Response:
    made = _made(incident_id, "csv")
    return Response(made.body, mimetype="text/csv")


@operation(api_bp, "GET", "/incidents/<int:incident_id>/report.html", summary="An incident's after-action "
           "report as one self-contained HTML page", tag="incidents", query=ReportQuerySchema, scope="read",
           action="incidents.read", produces="text/html")
def incident_report_html(incident_id: int, query: dict[str, Any]) -> Response:
    made = _made(incident_id, "html", query["lang"])
    return Response(made.body, mimetype="text/html")
