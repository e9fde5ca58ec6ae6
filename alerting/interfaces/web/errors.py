"""The console's error boundary: domain errors become pages, once, as STYLE §5 maps them.

| raised | console |
|---|---|
| NotFound | 404 page |
| InvalidInput | the form again with a message by each field (views declare `on_invalid`), else a 422 page |
| InvalidTransition | flash and back to the page it came from |
| Refused | 403 page; the refusal audited in a fresh transaction (the action's own rolled back) |
| a rate limit (429) | 429 page; audited, the first per client per minute (audit/rate_limits.py) |
| anything else | 500 page with an error id; the traceback in the log |

The API blueprint registers its own handlers, which Flask prefers for errors raised in it.

Every page and flash is in the operator's language: the titles here, the services' English
messages through the catalogue (`translate_message`). The JSON answers to the console's own
fetch calls keep their English `code` and carry the translated message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from alerting.base.errors import InvalidInput, InvalidTransition, NotFound, Refused, SirenaError
from alerting.interfaces.api.problems import handle_http_error
from alerting.interfaces.web.i18n import translate_message
from alerting.interfaces.web.security import SignInRequired, current_actor, safe_next
from audit.rate_limits import audit_rate_limited
from audit.trail import audit_refusal

log = logging.getLogger("sirena.web")
F = TypeVar("F", bound=Callable[..., Any])


def on_invalid(render: Callable[[dict[str, str]], Any]) -> Callable[[F], F]:
    """Declare how a form view shows itself again after InvalidInput: `render(field_errors)`.

    The renderer reads what the operator typed from `request.form`, so nothing typed is lost.
    """
    def decorate(view: F) -> F:
        view._on_invalid = render  # type: ignore[attr-defined]
        return view

    return decorate


# Werkzeug's own texts are English; these say the same in the operator's language.
HTTP_PAGES = {
    400: (lazy_gettext("Bad request"), lazy_gettext("The request could not be understood; nothing was done.")),
    404: (lazy_gettext("Not found"), lazy_gettext("There is no page at this address: check it, or start again from "
                                                  "the dashboard.")),
    405: (lazy_gettext("Method not allowed"), lazy_gettext("This page does not take that kind of request.")),
    413: (lazy_gettext("Too large"), lazy_gettext("What was sent is too large for the console; big imports go "
                                                  "through the command line.")),
    429: (lazy_gettext("Too many requests"), lazy_gettext("Too many requests in a short time: wait a minute and try "
                                                          "again; nothing was done.")),
}


def _page(status: int, code: str, title: str, message: str, **extra: Any) -> Any:
    """The error page (or, to the console's own fetch calls, the API's shape with its English code)."""
    message = translate_message(message)
    if "fields" in extra:
        extra["fields"] = {name: translate_message(reason) for name, reason in extra["fields"].items()}
    if request.is_json:  # the console's own fetch calls get the API's shape
        return jsonify({"code": code, "message": message, "details": extra}), status
    try:
        return render_template("error.html", status=status, title=title, message=message, **extra), status
    except Exception:  # a broken template must not hide the original error
        log.exception("error page could not be rendered")
        return f"{status} {title}: {message}", status


def _subject() -> tuple[str | None, Any]:
    args = request.view_args or {}
    for key in ("alert_id", "operator_id", "token_id", "group_id"):
        if key in args:
            return key.removesuffix("_id"), args[key]
    return None, None


def handle_refused(exc: Refused) -> Any:
    subject_type, subject_id = _subject()
    named_type, named_id = exc.details.get("subject_type"), exc.details.get("subject_id")
    if subject_type is None and isinstance(named_type, str) and isinstance(named_id, int | str):
        subject_type, subject_id = named_type, named_id  # what the service said it refused (a zone, a group)
    audit_refusal(current_actor(), f"console.{request.endpoint or 'unknown'}", subject_type, subject_id,
                  exc.message, payload={"code": exc.code, "method": request.method, "path": request.path})
    return _page(403, "refused", _("Refused"), exc.message)


def handle_not_found(exc: NotFound) -> Any:
    return _page(404, "not_found", _("Not found"), exc.message)


def handle_invalid(exc: InvalidInput) -> Any:
    fields = exc.field_errors
    if exc.details.get("audit_as"):  # a failed check of who someone is (step-up), not just a typo
        subject_type, subject_id = _subject()
        audit_refusal(current_actor(), str(exc.details["audit_as"]), subject_type, subject_id,
                      str(exc.details.get("audit_reason") or exc.message), payload={"fields": fields})
    view = current_app.view_functions.get(request.endpoint or "")
    render = getattr(view, "_on_invalid", None)
    if render is not None:
        flash(translate_message(exc.message), "error")
        body = render(fields or {"form": exc.message})
        return (body, 422) if isinstance(body, str) else body
    return _page(422, "invalid_input", _("Invalid input"), exc.message, fields=fields)


def handle_transition(exc: InvalidTransition) -> Response:
    """Too late for the alert's state (approved by someone else a moment ago, already cancelled): said
    on the page it came from, and audited as a refusal like any privileged action that did not happen."""
    subject_type, subject_id = _subject()
    audit_refusal(current_actor(), f"console.{request.endpoint or 'unknown'}", subject_type, subject_id,
                  exc.message, payload={"code": exc.code, "method": request.method, "path": request.path})
    flash(translate_message(exc.message), "error")
    back = safe_next(request.form.get("back") or _same_site_referrer()) or url_for("console.dashboard")
    return redirect(back, 303)  # type: ignore[return-value]


def _same_site_referrer() -> str | None:
    ref = request.referrer or ""
    host = request.host_url.rstrip("/")
    return ref[len(host):] if ref.startswith(host + "/") else None


def handle_sign_in(_exc: SignInRequired) -> Any:
    if request.method in ("GET", "HEAD"):
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")), 302)
    audit_refusal(current_actor(), f"console.{request.endpoint or 'unknown'}", None, None,
                  "not signed in", payload={"method": request.method, "path": request.path})
    return _page(401, "sign_in_first", _("Sign in first"),
                 _("Your session has ended. Sign in again; nothing was done."))


def handle_csrf(exc: CSRFError) -> Any:
    audit_refusal(current_actor(), f"console.{request.endpoint or 'unknown'}", None, None,
                  f"CSRF check failed: {exc.description}", payload={"method": request.method, "path": request.path})
    return _page(400, "form_expired", _("Form expired"), _("The form was missing its security token or it "
                                                           "expired. Reload the page and try again; nothing was done."))


def handle_http(exc: HTTPException) -> Any:
    if exc.code is not None and exc.code < 400:
        return exc
    if exc.code == 429:  # a refusal like any other: audited (once a minute per client, see audit.rate_limits)
        throttle = current_app.extensions.get("sirena_throttle")
        audit_rate_limited(getattr(throttle, "redis", None), current_actor(),
                           f"console.{request.endpoint or 'unknown'}", f"rate limit: {exc.description}",
                           payload={"method": request.method, "path": request.path})
    if request.path.startswith("/api/"):  # no API route matched: answer in the API's own shape
        return handle_http_error(exc)
    status = exc.code or 500
    title, message = HTTP_PAGES.get(status, (exc.name, exc.description or ""))
    return _page(status, exc.name.lower().replace(" ", "_"), str(title), str(message))


def handle_sirena(exc: SirenaError) -> Any:
    error_id = uuid.uuid4().hex[:12]
    log.error("error %s (%s): %s", error_id, exc.code, exc.message)
    return _page(exc.http_status, "not_done", _("Not done"), exc.message, error_id=error_id)


def handle_unexpected(exc: Exception) -> Any:
    error_id = uuid.uuid4().hex[:12]
    log.exception("unexpected error %s on %s %s", error_id, request.method, request.path, exc_info=exc)
    return _page(500, "internal_error", _("Internal error"), _("Something failed on our side; nothing you did "
                                                              "caused it. Give this id to the on-call team."),
                 error_id=error_id)


def register(app: Flask) -> None:
    """Register the mapping once (STYLE §5)."""
    app.register_error_handler(Refused, handle_refused)
    app.register_error_handler(NotFound, handle_not_found)
    app.register_error_handler(InvalidInput, handle_invalid)
    app.register_error_handler(InvalidTransition, handle_transition)
    app.register_error_handler(SirenaError, handle_sirena)
    app.register_error_handler(SignInRequired, handle_sign_in)
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(Exception, handle_unexpected)
