"""`sirena contacts import|show|optout|optin` and `sirena groups create|list|add`."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx
from audit.actor import Actor


def _cli_actor() -> Actor:
    return Actor(kind="system", name=f"cli:{getpass.getuser()}", interface="cli")


@cli.group("contacts")
def contacts_group() -> None:
    """The contact directory: CSV import, look-up, opt-out."""


@contacts_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--group", "group", metavar="NAME", help="Also add every imported contact to this static group.")
@click.option("--dry-run", is_flag=True, help="Check and report only; change nothing.")
@json_option
@pass_ctx
def contacts_import(ctx: Context, file: Path, group: str | None, dry_run: bool, as_json: bool) -> None:
    """Import contacts from a CSV file (UTF-8, comma or semicolon, Spanish or English headers).

    Good rows are imported, each bad row is listed in a rejects CSV whose path is printed.
    """
    from alerting.base.db import transaction
    from alerting.directory.contacts import import_contacts

    settings = ctx.db()
    bar: Any = None
    show_bar = sys.stdout.isatty() and not as_json

    def progress(phase: str, done: int, total: int | None) -> None:
        nonlocal bar
        if not show_bar:
            return
        if phase == "read" and total:
            if bar is None:
                bar = click.progressbar(length=total, label=f"Reading {file.name}", show_percent=True)
                bar.__enter__()
            bar.update(done - bar.pos)
        elif phase == "merge":
            if bar is not None:
                bar.__exit__(None, None, None)
                bar = None
            click.echo("Merging into the directory…" if not dry_run else "Checking against the directory…")

    try:
        with transaction() as session:
            report = import_contacts(session, file, settings=settings, group=group, dry_run=dry_run,
                                     actor=_cli_actor(), progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    emit(as_json, report.as_dict(), _human(report))


def _human(report: Any) -> str:
    verb = "Would import" if report.dry_run else "Imported"
    lines = [
        f"{verb} {report.contacts:,} contacts from {report.filename}: "
        + (f"{report.inserted:,} new, {report.updated:,} already in the directory" if report.dry_run
           else f"{report.inserted:,} new, {report.updated:,} updated, {report.unchanged:,} unchanged"),
        f"  rows read {report.rows_read:,} · rejected {report.rejected:,} · duplicates merged {report.duplicates:,}"
        f" · warnings {report.warnings:,}",
        f"  locations {report.locations:,} · second and third numbers {report.numbers:,} · "
        + (f"group memberships named {report.memberships:,}" if report.dry_run
           else f"new group memberships {report.memberships:,}"),
    ]
    if report.groups_created:
        shown = ", ".join(report.groups_created[:10]) + (" …" if len(report.groups_created) > 10 else "")
        lines.append(f"  groups {'to create' if report.dry_run else 'created'}: {shown}")
    lines.append(f"  report of rejected rows and warnings: {report.rejects_path}" if report.rejects_path
                 else "  every row was accepted without warnings")
    lines.append(f"  {report.seconds:.1f} s" + ("  (dry run: nothing was written)" if report.dry_run else ""))
    return "\n".join(lines)


@contacts_group.command("show")
@click.argument("msisdn")
@json_option
@pass_ctx
def contacts_show(ctx: Context, msisdn: str, as_json: bool) -> None:
    """Show one contact by any of its numbers (its numbers in the order they are tried)."""
    from sqlalchemy import func, select

    from alerting.base.db import transaction
    from alerting.base.models import ContactLocation, Group, GroupMember
    from alerting.directory.contact_numbers import more_numbers
    from alerting.directory.contacts import get_contact

    settings = ctx.db()
    with transaction() as session:
        contact = get_contact(session, msisdn, region=settings.default_region)
        places = session.execute(
            select(ContactLocation.label, func.ST_X(ContactLocation.geom), func.ST_Y(ContactLocation.geom))
            .where(ContactLocation.contact_id == contact.id).order_by(ContactLocation.label)
        ).all()
        groups = list(session.scalars(select(Group.name).join(GroupMember, GroupMember.group_id == Group.id)
                                      .where(GroupMember.contact_id == contact.id).order_by(Group.name)))
        data = {"id": contact.id, "msisdn": contact.msisdn, "more_numbers": more_numbers(session, contact.id),
                "name": contact.name, "language": contact.language,
                "attributes": contact.attributes, "opted_out_at": contact.opted_out_at,
                "opted_out_reason": contact.opted_out_reason,
                "locations": [{"label": label, "lon": lon, "lat": lat} for label, lon, lat in places],
                "groups": groups}
    shown = {k: json.dumps(v, default=str, ensure_ascii=False) if isinstance(v, dict | list) else v
             for k, v in data.items()}
    emit(as_json, data, "\n".join(f"{k}: {v}" for k, v in shown.items()))


@contacts_group.command("optout")
@click.argument("msisdn")
@click.option("--reason", required=True, help="Why (kept with the contact and in the audit trail).")
@json_option
@pass_ctx
def contacts_optout(ctx: Context, msisdn: str, reason: str, as_json: bool) -> None:
    """Stop sending to a number (no alert reaches it until `optin`)."""
    from alerting.base.db import transaction
    from alerting.directory.contacts import opt_out

    settings = ctx.db()
    with transaction() as session:
        contact = opt_out(session, msisdn, reason, _cli_actor(), region=settings.default_region)
        data = {"msisdn": contact.msisdn, "opted_out_at": contact.opted_out_at, "reason": contact.opted_out_reason}
    emit(as_json, data, f"{data['msisdn']} opted out since {data['opted_out_at']:%Y-%m-%d %H:%M} UTC: {data['reason']}")


@contacts_group.command("optin")
@click.argument("msisdn")
@json_option
@pass_ctx
def contacts_optin(ctx: Context, msisdn: str, as_json: bool) -> None:
    """Send to a number again after an opt-out."""
    from alerting.base.db import transaction
    from alerting.directory.contacts import opt_in

    settings = ctx.db()
    with transaction() as session:
        contact = opt_in(session, msisdn, _cli_actor(), region=settings.default_region)
        data = {"msisdn": contact.msisdn, "opted_out": False}
    emit(as_json, data, f"{data['msisdn']} receives alerts again")


@cli.group("groups")
def groups_group() -> None:
    """Static groups (member lists) and dynamic groups (a criterion over attributes)."""


@groups_group.command("create")
@click.argument("name")
@click.option("--criterion", metavar="JSON",
              help='Makes a dynamic group, e.g. \'{"attr": "role", "eq": "brigadista"}\'.')
@click.option("--drill-allowed", is_flag=True, help="Exercise and test alerts may reach this group.")
@click.option("--description", default="", help="What the group is for.")
@json_option
@pass_ctx
def groups_create(ctx: Context, name: str, criterion: str | None, drill_allowed: bool, description: str,
                  as_json: bool) -> None:
    """Create a group: static by default, dynamic with --criterion."""
    from alerting.base.db import transaction
    from alerting.base.models import GroupKind
    from alerting.directory.contacts import create_group

    parsed = None
    if criterion is not None:
        from alerting.base.json_limits import parse_json
        from alerting.directory.criteria import MAX_CRITERION_BYTES

        parsed = parse_json(criterion, field="criterion", max_bytes=MAX_CRITERION_BYTES)
    ctx.db()
    with transaction() as session:
        group = create_group(session, name, kind=GroupKind.DYNAMIC if criterion is not None else GroupKind.STATIC,
                             criterion=parsed, drill_allowed=drill_allowed, description=description,
                             actor=_cli_actor())
        data = {"id": group.id, "name": group.name, "kind": group.kind.value, "criterion": group.criterion,
                "drill_allowed": group.drill_allowed}
    emit(as_json, data, f"created {data['kind']} group {data['name']} (id {data['id']})")


@groups_group.command("list")
@json_option
@pass_ctx
def groups_list(ctx: Context, as_json: bool) -> None:
    """List the groups with their members (static) or criterion (dynamic)."""
    from alerting.base.db import transaction
    from alerting.directory.contacts import list_groups, member_counts

    ctx.db()
    with transaction() as session:
        counts = member_counts(session)
        rows = [{"id": g.id, "name": g.name, "kind": g.kind.value, "members": counts.get(g.id, 0)
                 if g.kind.value == "static" else None, "criterion": g.criterion, "drill_allowed": g.drill_allowed}
                for g in list_groups(session)]
    human = "\n".join(
        f"{r['name']:<30} {r['kind']:<8} "
        + (f"{r['members']:>9,} members" if r["members"] is not None
           else json.dumps(r["criterion"], ensure_ascii=False))
        + ("  (drills)" if r["drill_allowed"] else "")
        for r in rows
    ) or "no groups"
    emit(as_json, {"groups": rows}, human)


@groups_group.command("add")
@click.argument("name")
@click.argument("msisdns", nargs=-1, required=True)
@json_option
@pass_ctx
def groups_add(ctx: Context, name: str, msisdns: tuple[str, ...], as_json: bool) -> None:
    """Add contacts (by number) to a static group."""
    from alerting.base.db import transaction
    from alerting.directory.contacts import add_members

    settings = ctx.db()
    with transaction() as session:
        added = add_members(session, name, msisdns, region=settings.default_region, actor=_cli_actor())
    emit(as_json, {"group": name, "added": added, "asked": len(set(msisdns))},
         f"{added} new member(s) in {name}")
