"""`sirena users bound NAME --zone A --group B | --clear`: hold an operator to an area.

The rules are in alerting/directory/areas.py: from then on everything the operator composes,
edits, submits, previews or approves must stay inside those zones and groups (admins stay unbounded).
"""

from __future__ import annotations

import click

from alerting.interfaces.cli.app import Context, emit, json_option, pass_ctx
from alerting.interfaces.cli.users_cmd import _cli_actor, users_group


@users_group.command("bound")
@click.argument("name")
@click.option("--zone", "zones", multiple=True, help="A zone they may target (repeatable); shape inside counts.")
@click.option("--group", "groups", multiple=True, help="A group assigned to them (repeatable).")
@click.option("--clear", is_flag=True, help="Lift their bounds: they may target anything again.")
@json_option
@pass_ctx
def users_bound(ctx: Context, name: str, zones: tuple[str, ...], groups: tuple[str, ...], clear: bool,
                as_json: bool) -> None:
    """Bound an operator to zones and groups (replacing any earlier area), lift it with --clear, or
    with neither show it. Audited with before and after."""
    from alerting.base.db import transaction
    from alerting.base.errors import InvalidInput
    from alerting.directory import areas
    from alerting.directory.accounts import get_operator

    ctx.db()
    if clear and (zones or groups):
        raise InvalidInput("--clear lifts the area: give it alone", fields={"clear": "not with --zone or --group"})
    with transaction() as session:
        operator = get_operator(session, name)
        if clear:
            areas.clear_area(session, operator.id, _cli_actor())
        elif zones or groups:
            areas.set_area(session, operator.id, list(zones), list(groups), _cli_actor())
        area = areas.area_of(session, operator.id)
        admin = "admin" in (operator.roles or [])
    data = {"username": name, "bounded": area is not None and not admin,
            "zones": area.zones if area else [], "groups": area.groups if area else []}
    if area is None:
        human = f"{name} is not bounded: may target any zone and group"
    else:
        human = f"{name} is bounded to {area.describe()}" + (" (ignored while an admin)" if admin else "")
    emit(as_json, data, human)
