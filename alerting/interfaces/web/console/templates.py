"""Message templates in the console: the library, writing one, its two approvals, its history.

Each view parses the form, opens one transaction and calls one service of
alerting/alerts/templates.py, where the two-person rule lives. Approving a template needs a fresh
TOTP code, as approving a live alert does: an approved template lets one approver send its words.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.alerts import templates
from alerting.base.db import transaction
from alerting.base.models import AlertMode, Operator, Priority, TemplateState
from alerting.interfaces.web.errors import on_invalid
from alerting.interfaces.web.labels import label
from alerting.interfaces.web.security import current_actor, limiter, requires, step_up

bp = Blueprint("templates", __name__)

ACTION_LIMIT = "30 per minute"
BLANK_PLACEHOLDER_ROWS = 3


@bp.get("/templates")
@requires("templates.read")
def index() -> str:
    """The library: every template, its state and approvals; those waiting for approval first."""
    with transaction() as db:
        rows = templates.list_templates(db)
        counts = {t.id: len(templates.approvals_of(db, t)) for t in rows}
    order = {TemplateState.PENDING_APPROVAL: 0, TemplateState.APPROVED: 1, TemplateState.DRAFT: 2,
             TemplateState.REJECTED: 3, TemplateState.RETIRED: 4}
    rows.sort(key=lambda t: (order[t.state], t.name))
    return render_template("library/index.html", rows=rows, counts=counts)


def _values(template: Any | None) -> dict[str, Any]:
    """What the form shows: what was typed (after an error), else the template, else blanks."""
    form = request.form
    if form:
        values: dict[str, Any] = {k: form.get(k, "") for k in form}
        values["placeholders"] = _typed_placeholders(form)
    elif template is not None:
        values = {"name": template.name, "priority_hint": template.priority_hint or "",
                  "mode_hint": template.mode_hint or "", "placeholders": list(template.placeholders or [])}
        for lang in ("es", "en"):
            values[f"title_{lang}"] = template.titles.get(lang, "")
            values[f"text_{lang}"] = template.texts.get(lang, "")
    else:
        values = {"placeholders": []}
    values["placeholders"] = list(values["placeholders"]) + [{"name": "", "default": ""}] * BLANK_PLACEHOLDER_ROWS
    return values


def _typed_placeholders(form: Any) -> list[dict[str, Any]]:
    names, defaults = form.getlist("ph_name"), form.getlist("ph_default")
    return [{"name": n.strip(), "default": (d.strip() or None)} for n, d in zip(names, defaults, strict=False)
            if n.strip()]


def _spec(form: Any) -> templates.TemplateSpec:
    return templates.TemplateSpec(
        name=form.get("name", ""),
        titles={lang: form.get(f"title_{lang}", "") for lang in ("es", "en") if form.get(f"title_{lang}", "").strip()},
        texts={lang: form.get(f"text_{lang}", "") for lang in ("es", "en") if form.get(f"text_{lang}", "").strip()},
        placeholders=_typed_placeholders(form), priority_hint=form.get("priority_hint") or None,
        mode_hint=form.get("mode_hint") or None)


def _render_form(errors: dict[str, str], template_id: int | None = None) -> str:
    with transaction() as db:
        template = templates.get_template(db, template_id) if template_id else None
        return render_template("library/form.html", template=template, v=_values(template), errors=errors,
                               priorities=[p.value for p in Priority], modes=[m.value for m in AlertMode])


def _render_form_again(errors: dict[str, str]) -> str:
    return _render_form(errors, (request.view_args or {}).get("template_id"))


@bp.get("/templates/new")
@requires("templates.write")
def new() -> str:
    """The form for a new template."""
    return _render_form({})


@bp.post("/templates")
@requires("templates.write")
@on_invalid(_render_form_again)
@limiter.limit(ACTION_LIMIT)
def create() -> Any:
    """Save a new template as a draft (and submit it when asked)."""
    with transaction() as db:
        template = templates.create_template(db, _spec(request.form), current_actor())
        if request.form.get("action") == "submit":
            templates.submit_template(db, template.id, current_actor())
    flash(_('Template "%(name)s" saved (%(state)s).', name=template.name, state=label(template.state)), "ok")
    return redirect(url_for("templates.detail", template_id=template.id), 303)


@bp.get("/templates/<int:template_id>/edit")
@requires("templates.write")
def edit(template_id: int) -> str:
    """The form for a new version of the template."""
    return _render_form({}, template_id)


@bp.post("/templates/<int:template_id>/edit")
@requires("templates.write")
@on_invalid(_render_form_again)
@limiter.limit(ACTION_LIMIT)
def update(template_id: int) -> Any:
    """Save a new version: back to draft, its approvals void."""
    with transaction() as db:
        template = templates.update_template(db, template_id, _spec(request.form), current_actor())
        if request.form.get("action") == "submit":
            templates.submit_template(db, template.id, current_actor())
    flash(_('Template "%(name)s" saved as version %(version)s (%(state)s); any approval it had is void.',
            name=template.name, version=template.version, state=label(template.state)), "ok")
    return redirect(url_for("templates.detail", template_id=template_id), 303)


def _detail_context(db: Session, template_id: int) -> dict[str, Any]:
    template = templates.get_template(db, template_id)
    names = dict(db.execute(select(Operator.id, Operator.username)).all())
    return {"template": template, "approvals": [(names.get(a.operator_id), a.created_at)
                                                for a in templates.approvals_of(db, template)],
            "authors": sorted(names.get(i, "") for i in templates.authors_of(db, template.id)),
            "is_author": current_actor().operator_id in templates.authors_of(db, template.id)}


def _render_detail(errors: dict[str, str]) -> str:
    template_id = (request.view_args or {})["template_id"]
    with transaction() as db:
        return render_template("library/detail.html", errors=errors, v=request.form, **_detail_context(db, template_id))


@bp.get("/templates/<int:template_id>")
@requires("templates.read")
def detail(template_id: int) -> str:
    """One template: its words as phones show them, its state, who wrote and approved it, the actions."""
    return _render_detail({})


@bp.post("/templates/<int:template_id>/submit")
@requires("templates.write")
@limiter.limit(ACTION_LIMIT)
def submit(template_id: int) -> Any:
    """Ask for the two approvals (the approval hash is fixed now)."""
    with transaction() as db:
        template = templates.submit_template(db, template_id, current_actor())
    flash(_('Template "%(name)s" is waiting for two approvals.', name=template.name), "ok")
    return redirect(url_for("templates.detail", template_id=template_id), 303)


@bp.post("/templates/<int:template_id>/approve")
@requires("templates.approve")
@on_invalid(_render_detail)
@limiter.limit(ACTION_LIMIT)
def approve(template_id: int) -> Any:
    """One approval of the version shown (a fresh TOTP code; never by one of its authors)."""
    with transaction() as db:
        step_up(db, "console.templates.approve")
        template = templates.approve_template(db, template_id, current_actor(),
                                              seen_hash=request.form.get("seen_hash", ""))
    if template.state is TemplateState.APPROVED:
        flash(_('Template "%(name)s" approved: compose offers it now.', name=template.name), "ok")
    else:
        flash(_('Approval recorded; template "%(name)s" needs %(n)s approvals.', name=template.name,
                n=template.required_approvals), "ok")
    return redirect(url_for("templates.detail", template_id=template_id), 303)


@bp.post("/templates/<int:template_id>/reject")
@requires("templates.approve")
@on_invalid(_render_detail)
def reject(template_id: int) -> Any:
    """Send it back to its authors with a reason."""
    with transaction() as db:
        template = templates.reject_template(db, template_id, current_actor(), request.form.get("reason", ""))
    flash(_('Template "%(name)s" rejected.', name=template.name), "ok")
    return redirect(url_for("templates.detail", template_id=template_id), 303)


@bp.post("/templates/<int:template_id>/retire")
@requires("templates.write")
@on_invalid(_render_detail)
def retire(template_id: int) -> Any:
    """Stop offering it (with a reason)."""
    with transaction() as db:
        template = templates.retire_template(db, template_id, current_actor(), request.form.get("reason", ""))
    flash(_('Template "%(name)s" retired.', name=template.name), "ok")
    return redirect(url_for("templates.detail", template_id=template_id), 303)


@bp.get("/templates/<int:template_id>/history")
@requires("templates.read")
def history(template_id: int) -> str:
    """Every version, newest first: its words, who wrote it and when, who approved it."""
    with transaction() as db:
        template = templates.get_template(db, template_id)
        versions = templates.history(db, template_id)
    return render_template("library/history.html", template=template, versions=versions)
