"""Directory pages: contacts (search, CSV import with its per-row report, opt-out), groups, zones."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import or_, select

from alerting import directory
from alerting.db import transaction
from alerting.errors import InvalidInput
from alerting.models import Contact, Role
from alerting.web.errors import on_invalid
from alerting.web.security import current_actor, requires_role
from geo import zones

bp = Blueprint("directory", __name__, url_prefix="/directory")

READERS = (Role.COMPOSER, Role.APPROVER, Role.ADMIN)
EDITORS = (Role.ADMIN,)


@bp.get("/contacts")
@requires_role(*READERS)
def contacts() -> str:
    """Search contacts by number or name (first 100)."""
    query = request.args.get("q", "").strip()[:64]
    with transaction() as db:
        stmt = select(Contact).order_by(Contact.id).limit(100)
        if query:
            like = f"%{query.replace('%', '').replace('_', '')}%"
            stmt = stmt.where(or_(Contact.msisdn.like(like), Contact.name.ilike(like)))
        rows = list(db.scalars(stmt))
    return render_template("directory/contacts.html", contacts=rows, q=query)


def _render_import(errors: dict[str, str]) -> str:
    return render_template("directory/import.html", errors=errors, report=None)


@bp.get("/contacts/import")
@requires_role(*EDITORS)
def import_form() -> str:
    """The contact CSV import form."""
    return _render_import({})


@bp.post("/contacts/import")
@requires_role(*EDITORS)
@on_invalid(_render_import)
def import_upload() -> str:
    """Import a contact CSV; the report lists every rejected row."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidInput("choose a CSV file", fields={"file": "required"})
    settings = current_app.config["SIRENA_SETTINGS"]
    with transaction() as db:
        report = directory.import_contacts(db, upload.stream, settings=settings,
                                           group=request.form.get("group", "").strip() or None,
                                           dry_run=bool(request.form.get("dry_run")), actor=current_actor())
    return render_template("directory/import.html", errors={}, report=report.as_dict())


@bp.post("/contacts/opt-out")
@requires_role(*EDITORS)
def opt_out() -> Any:
    """Opt a number out (with a reason) or back in (audited)."""
    settings = current_app.config["SIRENA_SETTINGS"]
    with transaction() as db:
        if request.form.get("action") == "opt_in":
            directory.opt_in(db, request.form.get("msisdn", ""), current_actor(), region=settings.default_region)
        else:
            directory.opt_out(db, request.form.get("msisdn", ""), request.form.get("reason", "") or "by an admin",
                              current_actor(), region=settings.default_region)
    return redirect(url_for("directory.contacts", q=request.form.get("msisdn", "")), 303)


def _render_groups(errors: dict[str, str]) -> str:
    with transaction() as db:
        groups = directory.list_groups(db)
        members = directory.member_counts(db)
    return render_template("directory/groups.html", groups=groups, members=members, errors=errors, v=request.form)


@bp.get("/groups")
@requires_role(*READERS)
def groups() -> str:
    """Static and dynamic groups, with members and drill marking."""
    return _render_groups({})


@bp.post("/groups")
@requires_role(*EDITORS)
@on_invalid(_render_groups)
def create_group() -> Any:
    """Create a group (a dynamic one with its criterion)."""
    form = request.form
    criterion = None
    if form.get("criterion", "").strip():
        try:
            criterion = json.loads(form["criterion"])
        except ValueError as exc:
            raise InvalidInput("the criterion is not JSON", fields={"criterion": str(exc)}) from None
    with transaction() as db:
        group = directory.create_group(db, form.get("name", ""), kind=form.get("kind", "static"), criterion=criterion,
                                       drill_allowed=bool(form.get("drill_allowed")),
                                       description=form.get("description", ""), actor=current_actor())
    flash(f"Group {group.name} created.", "ok")
    return redirect(url_for("directory.groups"), 303)


def _render_zones(errors: dict[str, str]) -> str:
    with transaction() as db:
        rows = zones.list_zones(db)
    return render_template("directory/zones.html", zones=rows, errors=errors, v=request.form)


@bp.get("/zones")
@requires_role(*READERS)
def zone_list() -> str:
    """Zones on the map, with versions and areas."""
    return _render_zones({})


@bp.post("/zones")
@requires_role(*EDITORS)
@on_invalid(_render_zones)
def zone_import() -> Any:
    """Import zones from GeoJSON; a bad feature is named with its reason."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidInput("choose a GeoJSON file", fields={"file": "required"})
    settings = current_app.config["SIRENA_SETTINGS"]
    with transaction() as db:
        results = zones.import_geojson(db, upload.read().decode("utf-8", "replace"),
                                       name=request.form.get("name", "").strip() or None, actor=current_actor(),
                                       region=settings.default_region)
    flash(f"{len(results)} zone(s) imported.", "ok")
    return redirect(url_for("directory.zone_list"), 303)
