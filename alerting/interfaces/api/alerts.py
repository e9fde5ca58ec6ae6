"""Alerts over the API: draft, submit, approve, reject, cancel, read with live counts, list deliveries and replies.

Each handler parses, opens one transaction, calls one lifecycle service and serializes: the
two-person rule and every other rule live in alerting/alerts/lifecycle.py, not here.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.alerts import corrections, drafts, lifecycle, template_use
from alerting.base.db import transaction
from alerting.base.errors import InvalidInput
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import Alert, AlertKind, AlertMode, AlertState, Delivery, DeliveryState, Priority, Reply
from alerting.base.settings import Settings
from alerting.directory.senders import sender_keyword
from alerting.interfaces.api import api_bp
from alerting.interfaces.api.framework import operation
from alerting.interfaces.api.schemas import (
    AlertCreateSchema,
    AlertListQuerySchema,
    AlertPageSchema,
    AlertSchema,
    ApproveSchema,
    CorrectionProposalSchema,
    CorrectionSchema,
    DeliveryPageSchema,
    DeliveryQuerySchema,
    PageQuerySchema,
    ReasonSchema,
    ReplyPageSchema,
)
from broadcast.jobs import counts_by_carrier, counts_by_state


def _settings() -> Settings:
    return current_app.config["SIRENA_SETTINGS"]


def _intake_config() -> IntakeConfig:
    return current_app.config.get("SIRENA_INTAKE_CONFIG") or IntakeConfig()


def alert_view(session: Session, alert: Alert) -> dict[str, Any]:
    """An alert as the API shows it, with live counts from the trigger-kept counters."""
    return {
        "id": alert.id, "reference": alert.reference, "kind": alert.kind.value, "mode": alert.mode.value,
        "priority": alert.priority.value, "state": alert.state.value, "title": alert.title,
        "sender": alert.sender_name, "reply_keyword": sender_keyword(session, alert.sender_name),
        "texts": alert.texts, "target": alert.target, "reply_code": alert.reply_code,
        "origin": alert.origin, "approval_hash": alert.approval_hash, "scheduled_at": alert.scheduled_at,
        "created_at": alert.created_at, "corrects_alert_id": alert.corrects_alert_id, "reason": alert.reason,
        "incident_id": alert.incident_id,
        "required_approvals": alert.required_approvals, "submitted_recipients": alert.submitted_recipients,
        "template": {"id": alert.template_id, "version": alert.template_version, "values": alert.template_values}
        if alert.template_id is not None else None,
        "counts": counts_by_state(session, alert.id), "counts_by_carrier": counts_by_carrier(session, alert.id),
    }


def parse_cursor(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 19:
        raise InvalidInput("cursor: not a cursor this API gave out", fields={"cursor": "invalid"})
    return int(raw)


@operation(api_bp, "POST", "/alerts", summary="Compose a draft alert", tag="alerts", body=AlertCreateSchema,
           response=AlertSchema, status=201, scope="alerts:draft", action="alerts.compose",
           description="Always a draft: it needs submit and a different operator's approve. "
                       "Send an Idempotency-Key header: a retried request returns the same alert.")
def create_alert(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    key = g.get("idempotency_key")
    with transaction() as session:  # the approved template's words, filled (alerting/alerts/template_use.py)
        use = template_use.use_template(session, body["template"], body.get("template_values")) \
            if body.get("template") else None
    if use is None and not body.get("texts"):
        raise InvalidInput("texts: required (or start from a template)", fields={"texts": "required, or a template"})
    draft = drafts.AlertDraft(
        texts=body.get("texts") or (use.texts if use else {}), mode=AlertMode(body["mode"]),
        sender_name=body["sender"], priority=Priority(body.get("priority") or (use and use.priority_hint) or "normal"),
        title=body["title"] or (use.title() if use else ""), target=_target(body.get("target") or {}),
        scheduled_at=body.get("scheduled_at"), ack_deadline_s=body.get("ack_deadline_s"),
        poll_options=body.get("poll_options"), origin="api", incident_id=body.get("incident_id"),
        idempotency_key=f"api:{g.actor.token_id}:{key}" if key else None,
        template_id=use.template_id if use else None, template_version=use.version if use else None,
        template_values=use.values if use else None,
    )
    with transaction() as session:
        alert = lifecycle.compose(session, draft, g.actor, quiet_override_reason=body.get("quiet_override_reason"))
        return alert_view(session, alert), 201


def _target(target: dict[str, Any]) -> dict[str, Any]:
    """Keep only what was given, so the stored target reads like the request."""
    return {k: v for k, v in target.items() if v not in (None, [], {})}


@operation(api_bp, "GET", "/alerts/<int:alert_id>", summary="An alert with live counts", tag="alerts",
           response=AlertSchema, scope="read", action="alerts.read")
def get_alert(alert_id: int) -> dict[str, Any]:
    with transaction() as session:
        return alert_view(session, drafts.get_alert(session, alert_id))


@operation(api_bp, "POST", "/alerts/<int:alert_id>/submit", summary="Submit a draft for approval", tag="alerts",
           response=AlertSchema, scope="alerts:submit", action="alerts.submit")
def submit_alert(alert_id: int) -> dict[str, Any]:
    with transaction() as session:
        return alert_view(session, lifecycle.submit(session, alert_id, g.actor))


@operation(api_bp, "POST", "/alerts/<int:alert_id>/approve", summary="Approve (two-person rule)", tag="alerts",
           body=ApproveSchema, response=AlertSchema, scope="alerts:approve", action="alerts.approve",
           description="Refused (403, audited) when the token's operator composed the alert.")
def approve_alert(alert_id: int, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        alert = lifecycle.approve(session, alert_id, g.actor, seen_hash=body.get("seen_hash"),
                                          override_reason=body.get("override_reason"))
        return alert_view(session, alert)


@operation(api_bp, "POST", "/alerts/<int:alert_id>/correct", summary="Fire the pre-approved correction now",
           tag="alerts", body=CorrectionSchema, response=AlertSchema, status=201, scope="alerts:approve",
           action="alerts.correct",
           description="One operator with the approver or admin role, no second approval: the alert's approval "
                       "armed this text. Unsent deliveries of the original are purged; the correction goes at flash "
                       "priority to everyone who got the original or was queued to. Returns the correction. A "
                       "different text is refused here (403, audited): propose it with POST "
                       "/alerts/{id}/corrections.")
def correct_alert(alert_id: int, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with transaction() as session:
        return alert_view(session, corrections.fire_correction(session, alert_id, g.actor, body.get("text"))), 201


@operation(api_bp, "POST", "/alerts/<int:alert_id>/cancel-notice", summary="Fire the pre-approved cancellation notice",
           tag="alerts", body=CorrectionSchema, response=AlertSchema, status=201, scope="alerts:approve",
           action="alerts.correct",
           description="Like correct, with the pre-approved cancellation text (\"this alert no longer applies\").")
def cancel_notice(alert_id: int, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with transaction() as session:
        return alert_view(session, corrections.fire_cancel_notice(session, alert_id, g.actor, body.get("text"))), 201


@operation(api_bp, "POST", "/alerts/<int:alert_id>/corrections", summary="Propose a correction with another text",
           tag="alerts", body=CorrectionProposalSchema, response=AlertSchema, status=201, scope="alerts:draft",
           action="alerts.propose_correction",
           description="A correction (or cancellation notice) alert PENDING APPROVAL: flash priority, the same "
                       "audience as the original (everyone who got it or was queued to), the text marked as a "
                       "correction of it. It needs the approvals of a flash alert of that mode "
                       "(POST /alerts/{new id}/approve by other operators); once approved the original's unsent "
                       "deliveries are purged and it is superseded. The operator needs the composer, approver "
                       "or admin role.")
def propose_correction(alert_id: int, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    kind = AlertKind.CANCEL if body["kind"] == "cancel" else AlertKind.CORRECTION
    with transaction() as session:
        return alert_view(session, corrections.propose_correction(session, alert_id, body["text"], g.actor,
                                                                   kind=kind)), 201


@operation(api_bp, "POST", "/alerts/<int:alert_id>/reject", summary="Reject with a reason", tag="alerts",
           body=ReasonSchema, response=AlertSchema, scope="alerts:approve", action="alerts.reject")
def reject_alert(alert_id: int, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        return alert_view(session, lifecycle.reject(session, alert_id, g.actor, body["reason"]))


@operation(api_bp, "POST", "/alerts/<int:alert_id>/cancel", summary="Cancel (unsent deliveries stop)",
           tag="alerts", body=ReasonSchema, response=AlertSchema, scope="alerts:cancel", action="alerts.cancel")
def cancel_alert(alert_id: int, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        return alert_view(session, lifecycle.cancel(session, alert_id, g.actor, body["reason"]))


@operation(api_bp, "GET", "/alerts/<int:alert_id>/deliveries", summary="Deliveries, by id, cursor-paginated",
           tag="alerts", query=DeliveryQuerySchema, response=DeliveryPageSchema, scope="read", action="alerts.read")
def list_deliveries(alert_id: int, query: dict[str, Any]) -> dict[str, Any]:
    after, limit = parse_cursor(query.get("cursor")), query["limit"]
    with transaction() as session:
        drafts.get_alert(session, alert_id)
        stmt = select(Delivery).where(Delivery.alert_id == alert_id, Delivery.id > after)
        if query.get("state"):
            stmt = stmt.where(Delivery.state == DeliveryState(query["state"]))
        rows = list(session.scalars(stmt.order_by(Delivery.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{"id": d.id, "msisdn": d.msisdn, "contact_id": d.contact_id, "number_position": d.number_position or 1,
              "previous_delivery_id": d.previous_delivery_id, "state": d.state.value, "language": d.language,
              "carrier": d.carrier,
              "parts": d.parts, "attempts": d.attempts, "error_code": d.error_code,
              "submitted_at": d.submitted_at, "delivered_at": d.delivered_at, "updated_at": d.updated_at}
             for d in rows]
    return {"items": items, "next_cursor": str(rows[-1].id) if more else None}


@operation(api_bp, "GET", "/alerts/<int:alert_id>/replies", summary="Replies to an alert, cursor-paginated",
           tag="alerts", query=PageQuerySchema, response=ReplyPageSchema, scope="read", action="alerts.read")
def list_replies(alert_id: int, query: dict[str, Any]) -> dict[str, Any]:
    after, limit = parse_cursor(query.get("cursor")), query["limit"]
    with transaction() as session:
        drafts.get_alert(session, alert_id)
        rows = list(session.scalars(select(Reply).where(Reply.alert_id == alert_id, Reply.id > after)
                                    .order_by(Reply.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{"id": r.id, "msisdn": r.msisdn, "meaning": r.meaning.value, "poll_answer": r.poll_answer,
              "text": r.text, "delivery_id": r.delivery_id, "created_at": r.created_at} for r in rows]
    return {"items": items, "next_cursor": str(rows[-1].id) if more else None}


@operation(api_bp, "GET", "/alerts", summary="Alerts, newest first, cursor-paginated (e.g. state=scheduled)",
           tag="alerts", query=AlertListQuerySchema, response=AlertPageSchema, scope="read", action="alerts.read")
def list_alerts(query: dict[str, Any]) -> dict[str, Any]:
    before, limit = parse_cursor(query.get("cursor")), query["limit"]
    with transaction() as session:
        stmt = select(Alert)
        if before:
            stmt = stmt.where(Alert.id < before)
        if query.get("state"):
            stmt = stmt.where(Alert.state == AlertState(query["state"]))
        rows = list(session.scalars(stmt.order_by(Alert.id.desc()).limit(limit + 1)))
        more = len(rows) > limit
        items = [alert_view(session, a) for a in rows[:limit]]
    return {"items": items, "next_cursor": str(items[-1]["id"]) if more else None}
