"""CAP over HTTP: import a CAP 1.2 document, export an alert as CAP, and the Atom feed of our alerts."""

from __future__ import annotations

from flask import Response, current_app, g, request

from alerting.base.db import transaction
from alerting.base.errors import InvalidInput, SirenaError
from alerting.base.intake_config import IntakeConfig
from alerting.interfaces.api import api_bp
from alerting.interfaces.api.framework import operation
from alerting.interfaces.api.schemas import CapImportedSchema
from alerting.interfaces.intake import cap_export
from alerting.interfaces.intake.cap_import import import_cap
from alerting.interfaces.intake.review import keep_for_review, record

CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")


def _config() -> IntakeConfig:
    """The app factory sets SIRENA_INTAKE_CONFIG (IntakeConfig.from_env at start-up); else the defaults."""
    return current_app.config.get("SIRENA_INTAKE_CONFIG") or IntakeConfig()


@operation(api_bp, "POST", "/cap", summary="Import a CAP 1.2 alert (becomes an alert pending approval)",
           tag="cap", response=CapImportedSchema, status=201, scope="alerts:draft",
           action="cap.import", raw_body="application/cap+xml",
           description="Validated against the OASIS CAP 1.2 schema; DTDs and entities are refused; a signed "
                       "document must verify against the trusted certificates. Test and Exercise never become "
                       "live. A refused document is kept for review.")
def import_cap_document() -> tuple[dict[str, object], int]:
    data = request.get_data(cache=True)
    who = g.actor.name
    if request.mimetype not in CAP_TYPES:
        raise InvalidInput(f"Content-Type: send the CAP document as {CAP_TYPES[0]}",
                           fields={"Content-Type": f"expected {CAP_TYPES[0]}"})
    try:
        with transaction() as session:
            result = import_cap(session, data, actor=g.actor, config=_config())
            record(session, "cap-http", sender=who, subject="", raw=data,
                   outcome="duplicate" if result.action == "duplicate" else "draft_created", alert_id=result.alert_id)
    except SirenaError as exc:
        keep_for_review("cap-http", sender=who, subject="", raw=data, outcome="refused", reason=exc.message)
        raise
    return result.as_dict(), 200 if result.action == "duplicate" else 201


@operation(api_bp, "GET", "/alerts/<int:alert_id>/cap", summary="An alert as a CAP 1.2 document", tag="cap",
           scope="read", action="alerts.read", produces="application/cap+xml")
def export_cap_document(alert_id: int) -> Response:
    with transaction() as session:
        data = cap_export.export_alert(session, alert_id, _config())
    return Response(data, mimetype="application/cap+xml")


@operation(api_bp, "GET", "/cap/feed", summary="Atom feed of approved alerts, linking their CAP documents",
           tag="cap", scope="read", action="alerts.read", produces="application/atom+xml")
def cap_feed() -> Response:
    with transaction() as session:
        data = cap_export.atom_feed(session, _config(), request.host_url)
    return Response(data, mimetype="application/atom+xml")
