"""The template library over the API: list, read, history, write, submit, approve, reject, retire.

Each handler parses, opens one transaction, calls one service of alerting/alerts/templates.py
(where the two-person rule lives) and serializes. An alert starts from an approved template with
`template` and `template_values` on POST /alerts (alerting/interfaces/api/alerts.py).
"""

from __future__ import annotations

from typing import Any

from flask import g

from alerting.alerts import templates
from alerting.base.db import transaction
from alerting.base.models import TemplateState
from alerting.interfaces.api import api_bp
from alerting.interfaces.api.framework import operation
from alerting.interfaces.api.template_schemas import (
    TemplateApproveSchema,
    TemplateHistorySchema,
    TemplateListQuerySchema,
    TemplateListSchema,
    TemplateReasonSchema,
    TemplateSchema,
    TemplateWriteSchema,
)


def _spec(body: dict[str, Any]) -> templates.TemplateSpec:
    return templates.TemplateSpec(name=body["name"], titles=body["titles"], texts=body["texts"],
                                  placeholders=list(body.get("placeholders") or []),
                                  priority_hint=body.get("priority_hint"), mode_hint=body.get("mode_hint"))


@operation(api_bp, "GET", "/templates", summary="Message templates, by name", tag="templates",
           query=TemplateListQuerySchema, response=TemplateListSchema, scope="read", action="templates.read",
           description="state=approved lists those an alert can start from.")
def list_templates(query: dict[str, Any]) -> dict[str, Any]:
    states = {TemplateState(query["state"])} if query.get("state") else None
    with transaction() as session:
        return {"items": [templates.summary(session, t) for t in templates.list_templates(session, states=states)]}


@operation(api_bp, "GET", "/templates/<ref>", summary="A template (by name or id)", tag="templates",
           response=TemplateSchema, scope="read", action="templates.read")
def get_template(ref: str) -> dict[str, Any]:
    with transaction() as session:
        return templates.summary(session, templates.get_template(session, ref))


@operation(api_bp, "GET", "/templates/<ref>/history", summary="Every version of a template, newest first",
           tag="templates", response=TemplateHistorySchema, scope="read", action="templates.read")
def template_history(ref: str) -> dict[str, Any]:
    with transaction() as session:
        items = [{"version": h.version, "content_hash": h.content_hash, "written_by": h.written_by,
                  "written_at": h.written_at, "approved_at": h.approved_at, "approvers": h.approvers,
                  **h.spec.material()} for h in templates.history(session, ref)]
    return {"items": items}


@operation(api_bp, "POST", "/templates", summary="Write a template (a draft)", tag="templates",
           body=TemplateWriteSchema, response=TemplateSchema, status=201, scope="alerts:draft",
           action="templates.write",
           description="Declared placeholders are written {name} in the texts; contact placeholders need a "
                       "default ({nombre|vecino}) as in any alert text. It needs submit and two approvals by "
                       "operators who did not write it.")
def create_template(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with transaction() as session:
        return templates.summary(session, templates.create_template(session, _spec(body), g.actor)), 201


@operation(api_bp, "PUT", "/templates/<ref>", summary="Save a new version of a template", tag="templates",
           body=TemplateWriteSchema, response=TemplateSchema, scope="alerts:draft", action="templates.write",
           description="The whole template as it should read. Any change makes a new version, back to draft, "
                       "its approvals void; the editor becomes an author (never its approver).")
def update_template(ref: str, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        return templates.summary(session, templates.update_template(session, ref, _spec(body), g.actor))


@operation(api_bp, "POST", "/templates/<ref>/submit", summary="Submit a template for its two approvals",
           tag="templates", response=TemplateSchema, scope="alerts:draft", action="templates.write")
def submit_template(ref: str) -> dict[str, Any]:
    with transaction() as session:
        return templates.summary(session, templates.submit_template(session, ref, g.actor))


@operation(api_bp, "POST", "/templates/<ref>/approve", summary="Approve a template (two-person rule)",
           tag="templates", body=TemplateApproveSchema, response=TemplateSchema, scope="alerts:approve",
           action="templates.approve",
           description="Refused (403, audited) to its authors, to a second approval by the same operator, and "
                       "when seen_hash is not the current approval_hash. Two approvals approve it.")
def approve_template(ref: str, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        return templates.summary(session, templates.approve_template(session, ref, g.actor,
                                                                     seen_hash=body["seen_hash"]))


@operation(api_bp, "POST", "/templates/<ref>/reject", summary="Send a pending template back with a reason",
           tag="templates", body=TemplateReasonSchema, response=TemplateSchema, scope="alerts:approve",
           action="templates.approve")
def reject_template(ref: str, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        return templates.summary(session, templates.reject_template(session, ref, g.actor, body["reason"]))


@operation(api_bp, "POST", "/templates/<ref>/retire", summary="Stop offering a template", tag="templates",
           body=TemplateReasonSchema, response=TemplateSchema, scope="alerts:draft", action="templates.write")
def retire_template(ref: str, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        return templates.summary(session, templates.retire_template(session, ref, g.actor, body["reason"]))
