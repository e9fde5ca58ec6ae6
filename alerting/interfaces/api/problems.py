"""RFC 9457 problem details: the one JSON shape of every API error, and the error boundary.

Domain errors map as STYLE.md §5 says (NotFound 404, InvalidInput 422, InvalidTransition 409,
Refused 403); a refusal is audited here in a fresh transaction, because the action's own
transaction has rolled back; so is a rate-limit refusal (429), the first per token per minute.
Anything unexpected is a 500 with an `error_id` found in the log.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, current_app, g, json, request
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from alerting.base.errors import InvalidTransition, Refused, SirenaError
from alerting.base.runtime import redis_connection
from audit.actor import Actor
from audit.rate_limits import audit_rate_limited
from audit.trail import audit_refusal

log = logging.getLogger("sirena.api")

PROBLEM_TYPE = "/api/v1/problems/"
CONTENT_TYPE = "application/problem+json"


class Unauthorized(SirenaError):
    """No valid bearer token: missing, unknown, expired, revoked, or its operator is disabled."""

    code = "unauthorized"
    http_status = 401


class BadRequest(SirenaError):
    """A request the API refuses to read at all (a token in the query string)."""

    code = "bad_request"
    http_status = 400


class TooManyRequests(SirenaError):
    code = "rate_limited"
    http_status = 429


class FieldError(Schema):
    field = fields.String(required=True, metadata={"description": "the field, as a dotted path"})
    reason = fields.String(required=True)


class ProblemSchema(Schema):
    """application/problem+json (RFC 9457) with Sirena's `code` and per-field `errors`."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String(required=True)
    instance = fields.String()
    errors = fields.List(fields.Nested(FieldError))
    error_id = fields.String()


def problem(status: int, code: str, detail: str, *, title: str | None = None,
            field_errors: dict[str, str] | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code, "title": title or code.replace("_", " "), "status": status,
        "detail": detail, "code": code, "instance": request.path,
    }
    if field_errors:
        body["errors"] = [{"field": str(k), "reason": str(v)} for k, v in field_errors.items()]
    body.update(extra)
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=CONTENT_TYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sirena"'
    return response


def _field_errors(exc: SirenaError) -> dict[str, str]:
    found = exc.details.get("fields")
    if isinstance(found, dict):
        return {str(k): str(v) for k, v in found.items()}
    return {}


def _subject(exc: SirenaError) -> tuple[str | None, int | str | None]:
    """What a refusal was about: the alert, or the subject the service named (a group, a zone)."""
    alert_id = exc.details.get("alert_id")
    if isinstance(alert_id, int | str):
        return "alert", alert_id
    subject_type, subject_id = exc.details.get("subject_type"), exc.details.get("subject_id")
    if isinstance(subject_type, str) and isinstance(subject_id, int | str):
        return subject_type, subject_id
    return None, None


def handle_sirena_error(exc: SirenaError) -> Response:
    actor: Actor | None = g.get("actor")
    # A refused action is audited; so is one too late for the alert's state (a second approver
    # answered 409 because the first just approved): every attempt at a privileged action is in the trail.
    if isinstance(exc, Refused | Unauthorized | InvalidTransition):
        who = actor or Actor(kind="anonymous", name="", interface="api", address=request.remote_addr,
                             user_agent=request.user_agent.string or None)
        subject_type, subject = _subject(exc)
        audit_refusal(who, f"api.{request.endpoint or 'unknown'}", subject_type, subject, exc.message,
                      payload={"method": request.method, "path": request.path, "code": exc.code})
    if isinstance(exc, TooManyRequests):
        audit_rate_limited(redis_of(current_app), actor or Actor(kind="anonymous", name="", interface="api",
                                                                 address=request.remote_addr),
                           f"api.{request.endpoint or 'unknown'}", exc.message,
                           payload={"method": request.method, "path": request.path, "code": exc.code})
    if exc.http_status >= 500:
        error_id = uuid.uuid4().hex[:12]
        log.error("api error %s on %s %s: %s", error_id, request.method, request.path, exc.message)
        return problem(exc.http_status, exc.code, exc.message, error_id=error_id)
    response = problem(exc.http_status, exc.code, exc.message, field_errors=_field_errors(exc))
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.details.get("retry_after_s", 60))
    return response


def handle_http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    return problem(status, (exc.name or "error").lower().replace(" ", "_"), exc.description or exc.name or "")


def handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return handle_http_error(exc)
    error_id = uuid.uuid4().hex[:12]
    log.exception("unexpected api error %s on %s %s", error_id, request.method, request.path)
    return problem(500, "internal", f"internal error (error id {error_id}); see the log", error_id=error_id)


def redis_of(app: Flask) -> Any:
    """The API's Redis connection (rate windows), or None without settings."""
    ext = app.extensions.setdefault("sirena_api", {})
    if "redis" not in ext:
        settings = current_app.config.get("SIRENA_SETTINGS")
        if settings is None:
            ext["redis"] = None
        else:
            ext["redis"] = redis_connection(settings.redis_url, timeout_s=0.5)
    return ext["redis"]
