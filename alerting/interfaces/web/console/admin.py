"""Admin pages: operators and their roles, sign-in unlocks, API tokens."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from alerting.base.db import transaction, utcnow
from alerting.base.errors import NotFound
from alerting.base.models import ApiToken, Operator, Role, Sender
from alerting.directory import accounts, areas
from alerting.directory.accounts import revoke_operator_sessions
from alerting.interfaces.web import labels
from alerting.interfaces.web.errors import on_invalid
from alerting.interfaces.web.labels import label
from alerting.interfaces.web.security import current_actor, requires, step_up
from audit import trail

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _render_operators(errors: dict[str, str], created: Any = None, mfa_reset: Any = None) -> str:
    with transaction() as db:
        operators = list(db.scalars(select(Operator).order_by(Operator.username)))
        operator_areas = areas.areas_by_operator(db)
    return render_template("admin/operators.html", operators=operators, errors=errors, created=created,
                           operator_areas=operator_areas,
                           mfa_reset=mfa_reset, v=request.form, all_roles=[r.value for r in Role])


@bp.get("/operators")
@requires("operators.manage")
def operators() -> str:
    """Operators with their roles, enrolment and last sign-in."""
    return _render_operators({})


@bp.post("/operators")
@requires("operators.manage")
@on_invalid(_render_operators)
def create_operator() -> str:
    """Create an operator (step-up code); the password and TOTP URI are shown once."""
    settings = current_app.config["SIRENA_SETTINGS"]
    with transaction() as db:
        step_up(db, "console.admin.create_operator")
        new = accounts.create_operator(db, request.form.get("username", ""), request.form.getlist("roles"),
                                       settings.secret_key(), current_actor(),
                                       display_name=request.form.get("display_name", ""))
    return _render_operators({}, created={"username": new.operator.username, "password": new.password,
                                          "totp_uri": new.totp_uri})


@bp.post("/operators/<int:operator_id>/unlock")
@requires("operators.manage")
def unlock(operator_id: int) -> Any:
    """Lift the account-wide sign-in lock of an operator (audited)."""
    with transaction() as db:
        operator = db.get(Operator, operator_id)
        if operator is None:
            raise NotFound(f"operator {operator_id} does not exist")
        current_app.extensions["sirena_throttle"].unlock(operator.username)
        trail.append(db, actor=current_actor(), action="operator.unlocked", subject_type="operator",
                     subject_id=operator_id)
    flash(_("%(username)s may sign in again.", username=operator.username), "ok")
    return redirect(url_for("admin.operators"), 303)


@bp.post("/operators/<int:operator_id>/roles")
@requires("operators.manage")
@on_invalid(_render_operators)
def set_roles(operator_id: int) -> Any:
    """Replace an operator's roles (step-up code; audited with before and after)."""
    with transaction() as db:
        step_up(db, "console.admin.set_roles")
        operator = accounts.set_roles(db, operator_id, request.form.getlist("roles"), current_actor())
    flash(_("%(username)s: roles now %(roles)s.", username=operator.username,
            roles=", ".join(label(r, labels.ROLE) for r in operator.roles)), "ok")
    return redirect(url_for("admin.operators"), 303)


@bp.post("/operators/<int:operator_id>/language")
@requires("operators.manage")
def set_language(operator_id: int) -> Any:
    """The language an operator reads the console in, set by an admin (audited)."""
    with transaction() as db:
        operator = accounts.set_language(db, operator_id, request.form.get("language", ""), current_actor())
    flash(_("%(username)s reads the console in %(language)s now.", username=operator.username,
            language=_("Spanish") if operator.language == "es" else _("English")), "ok")
    return redirect(url_for("admin.operators"), 303)


@bp.post("/operators/<int:operator_id>/reset-mfa")
@requires("operators.manage")
@on_invalid(_render_operators)
def reset_mfa(operator_id: int) -> str:
    """A new TOTP seed for an operator who lost their authenticator (step-up code; audited); the
    enrolment URI is shown once."""
    settings = current_app.config["SIRENA_SETTINGS"]
    with transaction() as db:
        step_up(db, "console.admin.reset_mfa")
        uri = accounts.reset_mfa(db, operator_id, settings.secret_key(), current_actor())
        username = db.get(Operator, operator_id).username  # type: ignore[union-attr]
    return _render_operators({}, mfa_reset={"username": username, "totp_uri": uri})


@bp.post("/operators/<int:operator_id>/disable")
@requires("operators.manage")
def disable(operator_id: int) -> Any:
    """Disable (and sign out everywhere) or re-enable an operator (audited)."""
    with transaction() as db:
        operator = db.get(Operator, operator_id, with_for_update=True)
        if operator is None:
            raise NotFound(f"operator {operator_id} does not exist")
        operator.disabled = request.form.get("disabled", "1") == "1"
        revoked = revoke_operator_sessions(db, operator_id) if operator.disabled else 0
        trail.append(db, actor=current_actor(), action="operator.disabled" if operator.disabled else "operator.enabled",
                     subject_type="operator", subject_id=operator_id, payload={"sessions_revoked": revoked})
    return redirect(url_for("admin.operators"), 303)


def _render_tokens(errors: dict[str, str], created: str | None = None) -> str:
    with transaction() as db:
        rows = db.execute(select(ApiToken, Operator.username).join(Operator, Operator.id == ApiToken.operator_id)
                          .order_by(ApiToken.id.desc())).all()
    return render_template("admin/tokens.html", tokens=rows, errors=errors, created=created, v=request.form,
                           scopes=sorted(accounts.SCOPES), now=utcnow())


@bp.get("/tokens")
@requires("tokens.manage")
def tokens() -> str:
    """API tokens: who, scopes, expiry, revocation."""
    return _render_tokens({})


@bp.post("/tokens")
@requires("tokens.manage")
@on_invalid(_render_tokens)
def create_token() -> str:
    """Create an API token (step-up code); shown once, stored hashed."""
    with transaction() as db:
        step_up(db, "console.admin.create_token")
        _, token = accounts.create_token(db, request.form.get("username", ""), request.form.getlist("scopes"),
                                         current_actor(), name=request.form.get("name", ""))
    return _render_tokens({}, created=token)


@bp.get("/senders")
@requires("senders.read")
def senders() -> str:
    """Senders as mirrored from the carriers file (kind, address, keyword, caps). Read-only here."""
    with transaction() as db:
        rows = list(db.scalars(select(Sender).order_by(Sender.name)))
    return render_template("admin/senders.html", senders=rows)


@bp.post("/tokens/<int:token_id>/revoke")
@requires("tokens.manage")
def revoke_token(token_id: int) -> Any:
    """Revoke an API token at once (audited)."""
    with transaction() as db:
        accounts.revoke_token(db, token_id, current_actor())
    flash(_("Token revoked."), "ok")
    return redirect(url_for("admin.tokens"), 303)
