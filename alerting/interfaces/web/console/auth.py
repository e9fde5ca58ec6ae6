"""Sign-in (password, then TOTP or first-time enrolment with a QR code), sign-out, password change."""

from __future__ import annotations

import io
import time
from typing import Any

import pyotp
import segno
from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from alerting.base.db import transaction
from alerting.base.models import Operator
from alerting.directory import accounts
from alerting.directory.accounts import decrypt_totp, revoke_operator_sessions
from alerting.interfaces.web import signin
from alerting.interfaces.web.errors import on_invalid
from alerting.interfaces.web.security import current_actor, current_operator, limiter, public, requires, safe_next
from audit import trail

bp = Blueprint("auth", __name__)

SIGN_IN_LIMIT = "20 per minute;200 per hour"  # per address, on top of the per-account lockout
PAGE_LIMIT = "120 per minute"


def _throttle() -> signin.Throttle:
    return current_app.extensions["sirena_throttle"]


def _address() -> str:
    return request.remote_addr or "unknown"


def _pending() -> dict[str, Any] | None:
    pending = session.get("pending")
    if not pending or signin.pending_expired(float(pending.get("at", 0))):
        return None
    return pending


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(SIGN_IN_LIMIT, methods=["POST"])
@limiter.limit(PAGE_LIMIT, methods=["GET"])  # each visit stores a CSRF token server-side: bound the rows
def login() -> Any:
    """Sign-in step 1: the password (generic failure message, lockout, audited)."""
    if current_operator() is not None and request.method == "GET":
        return redirect(url_for("console.dashboard"))
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        expired = getattr(session, "expired", False)
        return render_template("auth/login.html", next=next_url, expired=expired)
    username = request.form.get("username", "")
    with transaction() as db:
        result = signin.check_password(db, _throttle(), username, request.form.get("password", ""),
                                       address=_address(), user_agent=request.user_agent.string)
    if not result.ok:
        return render_template("auth/login.html", next=next_url, error=result.message, username=username), 401
    session.restart_anonymous()  # type: ignore[attr-defined]
    session["pending"] = {"op": result.operator_id, "step": result.next_step, "at": time.time(),
                          "next": next_url}
    return redirect(url_for("auth.code"), 303)


@bp.route("/login/code", methods=["GET", "POST"])
@public
@limiter.limit(SIGN_IN_LIMIT, methods=["POST"])
def code() -> Any:
    """Sign-in step 2: a single-use TOTP code, or the first enrolment; a new session id on success."""
    pending = _pending()
    if pending is None:
        flash(_("Sign in again: the password step expired."), "error")
        return redirect(url_for("auth.login"), 303)
    enrolling = pending["step"] == "enrol"
    if request.method == "GET":
        return _render_code(pending)
    settings = current_app.config["SIRENA_SETTINGS"]
    with transaction() as db:
        result = signin.check_code(db, _throttle(), int(pending["op"]), request.form.get("code", ""),
                                   settings.secret_key(), enrolling=enrolling, address=_address(),
                                   user_agent=request.user_agent.string)
    if not result.ok:
        if result.locked_for_s:
            session.pop("pending", None)
        return _render_code(pending, error=result.message), 401
    next_url = pending.get("next")
    session.sign_in(int(pending["op"]))  # type: ignore[attr-defined]  # a new session id (ASVS 3.2.1)
    return redirect(next_url or url_for("console.dashboard"), 303)


def _render_code(pending: dict[str, Any], error: str | None = None) -> str:
    manual_key = None
    if pending["step"] == "enrol":
        with transaction() as db:
            operator = db.get(Operator, int(pending["op"]))
            if operator is not None and operator.totp_secret_enc is not None:
                manual_key = decrypt_totp(operator.totp_secret_enc, current_app.config["SIRENA_SETTINGS"].secret_key())
    return render_template("auth/code.html", enrolling=pending["step"] == "enrol", manual_key=manual_key,
                           error=error)


@bp.get("/login/enrol.svg")
@public
def enrol_qr() -> Response:
    """The enrolment QR code as SVG, drawn server-side; only during a first sign-in's code step."""
    pending = _pending()
    if pending is None or pending["step"] != "enrol":
        return Response("no enrolment in progress", status=404, mimetype="text/plain")
    with transaction() as db:
        operator = db.get(Operator, int(pending["op"]))
        if operator is None or operator.totp_secret_enc is None:
            return Response("no enrolment in progress", status=404, mimetype="text/plain")
        seed = decrypt_totp(operator.totp_secret_enc, current_app.config["SIRENA_SETTINGS"].secret_key())
        uri = pyotp.TOTP(seed).provisioning_uri(name=operator.username, issuer_name="Sirena")
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False)
    return Response(out.getvalue(), mimetype="image/svg+xml")


@bp.post("/logout")
@requires("account.own")
def logout() -> Any:
    """Sign out: the session row is revoked, so a copied cookie stops working."""
    with transaction() as db:
        trail.append(db, actor=current_actor(), action="operator.signed_out", subject_type="operator",
                     subject_id=current_operator().id)  # type: ignore[union-attr]
    session.sign_out()  # type: ignore[attr-defined]
    return redirect(url_for("auth.login"), 303)


def _render_password(fields: dict[str, str]) -> str:
    return render_template("auth/password.html", errors=fields)


@bp.get("/account/password")
@requires("account.own")
def password_form() -> str:
    """The password change form and the sign-out-everywhere button."""
    return _render_password({})


@bp.post("/account/password")
@requires("account.own")
@on_invalid(_render_password)
def password_change() -> Any:
    """Change the own password; every other session is signed out."""
    operator = current_operator()
    assert operator is not None
    with transaction() as db:
        signin.change_password(db, operator.id, request.form.get("current_password", ""),
                               request.form.get("new_password", ""), request.form.get("confirm_password", ""),
                               current_actor())
        revoked = revoke_operator_sessions(db, operator.id, keep_sid=getattr(session, "sid", None))
    session.sign_in(operator.id)  # type: ignore[attr-defined]  # and a fresh id for this one
    flash(_("Password changed. %(n)s other session(s) were signed out.", n=revoked), "ok")
    return redirect(url_for("console.dashboard"), 303)


@bp.post("/account/sessions/revoke")
@requires("account.own")
def revoke_other_sessions() -> Any:
    """Sign out every other session of this operator (ASVS 3.3.4), e.g. a forgotten browser."""
    operator = current_operator()
    assert operator is not None
    with transaction() as db:
        revoked = revoke_operator_sessions(db, operator.id, keep_sid=getattr(session, "sid", None))
        trail.append(db, actor=current_actor(), action="operator.sessions_revoked", subject_type="operator",
                     subject_id=operator.id, payload={"revoked": revoked})
    flash(_("%(n)s other session(s) signed out.", n=revoked), "ok")
    return redirect(url_for("auth.password_form"), 303)


@bp.post("/account/language")
@requires("account.own")
def set_language() -> Any:
    """The operator's console language (es or en), audited."""
    operator = current_operator()
    assert operator is not None
    with transaction() as db:
        accounts.set_language(db, operator.id, request.form.get("language", ""), current_actor())
    return redirect(safe_next(request.form.get("back")) or url_for("console.dashboard"), 303)
