"""Directory pages: contacts (search, CSV import with its per-row report, opt-out), groups (edit, members,
delete), zones (import, delete). Every rule is in alerting.directory.contacts and geo.zones, shared with the API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import or_, select

from alerting.base.db import transaction
from alerting.base.errors import InvalidInput
from alerting.base.json_limits import parse_json
from alerting.base.models import Contact, ContactNumber
from alerting.directory import contact_numbers, contact_records
from alerting.directory import contacts as directory
from alerting.directory.criteria import MAX_CRITERION_BYTES
from alerting.directory.target_refs import group_users
from alerting.interfaces.web.errors import on_invalid
from alerting.interfaces.web.security import current_actor, requires
from geo import zone_files, zones

bp = Blueprint("directory", __name__, url_prefix="/directory")



@bp.get("/contacts")
@requires("directory.read")
def contacts() -> str:
    """Search contacts by any of their numbers or by name (first 100)."""
    query = request.args.get("q", "").strip()[:64]
    with transaction() as db:
        stmt = select(Contact).order_by(Contact.id).limit(100)
        if query:
            like = f"%{query.replace('%', '').replace('_', '')}%"
            stmt = stmt.where(or_(Contact.msisdn.like(like), Contact.name.ilike(like),
                                  Contact.id.in_(select(ContactNumber.contact_id).where(ContactNumber.msisdn.like(like)))))
        rows = list(db.scalars(stmt))
        more = contact_numbers.more_numbers_of(db, [c.id for c in rows])
    return render_template("directory/contacts.html", contacts=rows, more=more, q=query)


def _render_contact(errors: dict[str, str], contact_id: int | None = None) -> str:
    contact_id = contact_id if contact_id is not None else (request.view_args or {})["contact_id"]
    with transaction() as db:
        contact = contact_records.get_contact_by_id(db, contact_id)
        more = contact_numbers.more_numbers(db, contact.id)
        groups = contact_records.contact_groups(db, contact.id)
    return render_template("directory/contact.html", contact=contact, more=more, groups=groups, errors=errors,
                           v=request.form)


@bp.get("/contacts/<int:contact_id>")
@requires("directory.read")
def contact_detail(contact_id: int) -> str:
    """One contact: its numbers in the order they are tried, groups, opt-out; (admins) edit the numbers."""
    return _render_contact({}, contact_id)


@bp.post("/contacts/<int:contact_id>/numbers")
@requires("contacts.write")
@on_invalid(_render_contact)
def contact_numbers_save(contact_id: int) -> Any:
    """Set the contact's second and third numbers (blank: none); each bad one is named (audited)."""
    region = current_app.config["SIRENA_SETTINGS"].default_region
    wanted = [request.form.get("number2", ""), request.form.get("number3", "")]
    with transaction() as db:
        contact_records.update_contact(db, contact_id, {"more_numbers": wanted}, actor=current_actor(), region=region)
    flash(_("Numbers saved."), "ok")
    return redirect(url_for("directory.contact_detail", contact_id=contact_id), 303)


def _render_import(errors: dict[str, str]) -> str:
    return render_template("directory/import.html", errors=errors, report=None)


@bp.get("/contacts/import")
@requires("contacts.write")
def import_form() -> str:
    """The contact CSV import form."""
    return _render_import({})


@bp.post("/contacts/import")
@requires("contacts.write")
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
@requires("contacts.write")
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
@requires("directory.read")
def groups() -> str:
    """Static and dynamic groups, with members and drill marking."""
    return _render_groups({})


@bp.post("/groups")
@requires("groups.write")
@on_invalid(_render_groups)
def create_group() -> Any:
    """Create a group (a dynamic one with its criterion)."""
    form = request.form
    criterion = None
    if form.get("criterion", "").strip():
        criterion = parse_json(form["criterion"], field="criterion", max_bytes=MAX_CRITERION_BYTES)
    with transaction() as db:
        group = directory.create_group(db, form.get("name", ""), kind=form.get("kind", "static"), criterion=criterion,
                                       drill_allowed=bool(form.get("drill_allowed")),
                                       description=form.get("description", ""), actor=current_actor())
    flash(_("Group %(name)s created.", name=group.name), "ok")
    return redirect(url_for("directory.groups"), 303)


def _render_zones(errors: dict[str, str]) -> str:
    with transaction() as db:
        rows = zones.list_zones(db)
    return render_template("directory/zones.html", zones=rows, errors=errors, v=request.form)


@bp.get("/zones")
@requires("directory.read")
def zone_list() -> str:
    """Zones on the map, with versions and areas."""
    return _render_zones({})


@bp.post("/zones")
@requires("zones.write")
@on_invalid(_render_zones)
def zone_import() -> Any:
    """Import zones from GeoJSON; a bad feature is named with its reason."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidInput("choose a GeoJSON file", fields={"file": "required"})
    settings = current_app.config["SIRENA_SETTINGS"]
    limits = zone_files.REQUEST_LIMITS
    data = upload.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise InvalidInput(f"file: larger than {limits.max_bytes:,} bytes; {zone_files.BIG_SETS}",
                           fields={"file": f"larger than {limits.max_bytes:,} bytes"})
    # Checked before the transaction opens, which then holds only the saving (at most 25 zones).
    checked = zone_files.check_geojson(data, name=request.form.get("name", "").strip() or None,
                                       region=settings.default_region, limits=limits)
    with transaction() as db:
        results = zones.store_zones(db, checked, actor=current_actor())
    flash(_("%(n)s zone(s) imported.", n=len(results)), "ok")
    return redirect(url_for("directory.zone_list"), 303)


def _render_group(errors: dict[str, str], group_id: int | None = None) -> str:
    group_id = group_id if group_id is not None else (request.view_args or {})["group_id"]
    with transaction() as db:
        group = directory.get_group(db, group_id)
        members = directory.member_counts(db).get(group.id, 0)
        users = group_users(db, group.name)
    return render_template("directory/group.html", group=group, members=members, users=users, errors=errors,
                           v=request.form)


@bp.get("/groups/<int:group_id>")
@requires("directory.read")
def group_detail(group_id: int) -> str:
    """One group: what it is, who still aims at it, and (admins) edit, members, delete."""
    return _render_group({}, group_id)


@bp.post("/groups/<int:group_id>/edit")
@requires("groups.write")
@on_invalid(_render_group)
def group_edit(group_id: int) -> Any:
    """Change the description, the criterion (dynamic groups) or the drill marking."""
    form = request.form
    changes: dict[str, Any] = {"description": form.get("description", ""),
                               "drill_allowed": bool(form.get("drill_allowed"))}
    if "criterion" in form:  # only a dynamic group's form has the field
        changes["criterion"] = _criterion(form["criterion"])
    with transaction() as db:
        group = directory.update_group(db, directory.get_group(db, group_id).name, changes, actor=current_actor())
    flash(_("Group %(name)s saved.", name=group.name), "ok")
    return redirect(url_for("directory.group_detail", group_id=group_id), 303)


def _criterion(raw: str) -> Any:
    if not raw.strip():
        return None
    return parse_json(raw, field="criterion", max_bytes=MAX_CRITERION_BYTES)


@bp.post("/groups/<int:group_id>/members/add")
@requires("groups.write")
@on_invalid(_render_group)
def group_members_add(group_id: int) -> Any:
    """Add pasted numbers (one per line) to a static group; every bad line is named by its number."""
    region = current_app.config["SIRENA_SETTINGS"].default_region
    numbers = directory.read_number_lines(request.form.get("numbers", ""), region)
    with transaction() as db:
        added = directory.add_members(db, directory.get_group(db, group_id), numbers, region=region,
                                      actor=current_actor())
    flash(_("%(added)s new member(s) of %(asked)s number(s).", added=added, asked=len(numbers)), "ok")
    return redirect(url_for("directory.group_detail", group_id=group_id), 303)


@bp.post("/groups/<int:group_id>/members/remove")
@requires("groups.write")
@on_invalid(_render_group)
def group_members_remove(group_id: int) -> Any:
    """Take pasted numbers (one per line) out of a static group."""
    region = current_app.config["SIRENA_SETTINGS"].default_region
    numbers = directory.read_number_lines(request.form.get("numbers", ""), region)
    with transaction() as db:
        result = directory.remove_members(db, directory.get_group(db, group_id), numbers, region=region,
                                          actor=current_actor())
    flash(_("%(removed)s member(s) removed.", removed=result.removed), "ok")
    if result.not_members:
        flash(_("Not members, nothing to remove: %(numbers)s", numbers=", ".join(result.not_members[:20])), "error")
    return redirect(url_for("directory.group_detail", group_id=group_id), 303)


@bp.post("/groups/<int:group_id>/delete")
@requires("groups.write")
@on_invalid(_render_group)
def group_delete(group_id: int) -> Any:
    """Delete a group once its name is typed; refused (403, audited) while an unfinished alert uses it."""
    with transaction() as db:
        name = directory.get_group(db, group_id).name
        _confirm(name)
        members = directory.delete_group(db, name, actor=current_actor())
    flash(_("Group %(name)s deleted (%(members)s membership(s)); its contacts stay.", name=name, members=members),
          "ok")
    return redirect(url_for("directory.groups"), 303)


def _confirm(name: str) -> None:
    """Deleting is done by typing the name: a slip on a button must not delete a brigade's list."""
    if " ".join(request.form.get("confirm", "").split()) != name:
        raise InvalidInput(_("type the name to confirm"), fields={"confirm": _("type %(name)s to confirm", name=name)})


@bp.post("/zones/delete")
@requires("zones.write")
@on_invalid(_render_zones)
def zone_delete() -> Any:
    """Retire a zone (versions kept) once its name is typed; refused while an unfinished alert uses it."""
    name = request.form.get("name", "").strip()
    _confirm(name)
    with transaction() as db:
        zone = zones.delete_zone(db, name, actor=current_actor())
    flash(_("Zone %(name)s deleted; its %(version)s version(s) are kept for history.", name=zone.name,
            version=zone.version), "ok")
    return redirect(url_for("directory.zone_list"), 303)
