"""Admin page: bound an operator to an area (zones and assigned groups), or lift it.

The rules are in alerting/directory/areas.py; the operator sees their area on the compose form and
on their account page (`my_area` in every page's context).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from alerting.base.db import transaction
from alerting.base.errors import NotFound
from alerting.base.models import Group, Operator, Role
from alerting.directory import areas
from alerting.interfaces.web.errors import on_invalid
from alerting.interfaces.web.security import current_actor, current_operator, requires, step_up
from geo import zones

bp = Blueprint("areas", __name__, url_prefix="/admin")


@bp.app_context_processor
def _my_area() -> dict[str, Any]:
    """`my_area()`: the signed-in operator's area (None when unbounded), for any page that shows it."""
    def my_area() -> areas.Area | None:
        if current_operator() is None:
            return None
        with transaction() as db:
            return areas.bounds_for(db, current_actor())

    return {"my_area": my_area}


def _render(errors: dict[str, str]) -> str:
    operator_id = (request.view_args or {})["operator_id"]
    with transaction() as db:
        operator = db.get(Operator, operator_id)
        if operator is None:
            raise NotFound(f"operator {operator_id} does not exist")
        area = areas.area_of(db, operator_id)
        form = request.form
        chosen = ({"zones": form.getlist("zones"), "groups": form.getlist("groups")} if form else
                  {"zones": area.zones if area else [], "groups": area.groups if area else []})
        return render_template("admin/area.html", target=operator, area=area, chosen=chosen, errors=errors,
                               admin=Role.ADMIN.value in (operator.roles or []), zone_list=zones.list_zones(db),
                               group_list=list(db.scalars(select(Group.name).order_by(Group.name))))


@bp.get("/operators/<int:operator_id>/area")
@requires("operators.manage")
def operator_area(operator_id: int) -> str:
    """The zones and groups an operator may target (none chosen: unbounded)."""
    return _render({})


@bp.post("/operators/<int:operator_id>/area")
@requires("operators.manage")
@on_invalid(_render)
def set_operator_area(operator_id: int) -> Any:
    """Bound the operator to the zones and groups ticked, or lift the bounds (step-up code; audited)."""
    with transaction() as db:
        step_up(db, "console.areas.set_operator_area")
        if request.form.get("action") == "clear":
            operator = areas.clear_area(db, operator_id, current_actor())
            message = _("%(username)s may target any zone and group again.", username=operator.username)
        else:
            row = areas.set_area(db, operator_id, request.form.getlist("zones"), request.form.getlist("groups"),
                                 current_actor())
            username = db.get(Operator, row.operator_id).username  # type: ignore[union-attr]
            message = _("%(username)s is now bounded to their area.", username=username)
    flash(message, "ok")
    return redirect(url_for("areas.operator_area", operator_id=operator_id), 303)
