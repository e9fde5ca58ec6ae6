"""The REST API under /api/v1: `api_bp`, registered by the app factory (alerting.interfaces.web.create_app).

The app must hold the Settings in `app.config["SIRENA_SETTINGS"]`; the blueprint is exempt from
CSRF (bearer tokens, no cookies). Operations are declared in the modules imported below.
"""

from __future__ import annotations

from flask import Blueprint

api_bp: Blueprint = Blueprint("api", __name__, url_prefix="/api/v1")  # annotated: read during the import cycle below

# Imported for their @operation registrations (they need api_bp, defined above).
from alerting.interfaces.api import (  # noqa: E402,F401
    alerts,
    cap_views,
    directory,
    health,
    incident_views,
    openapi,
    reply_views,
    schedule_views,
    template_views,
)
from alerting.interfaces.api.health import probes_bp  # noqa: E402

__all__ = ["api_bp", "probes_bp"]
