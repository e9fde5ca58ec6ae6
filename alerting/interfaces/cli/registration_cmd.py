"""`sirena registration publish|unpublish|list|policy|requests|export`: keyword self-registration by SMS.

Every rule is in alerting/directory/registration*.py; these commands parse, open one transaction
and call one service. Changes and exports name the admin doing them (`--as`, audited).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx

as_option = click.option("--as", "username", required=True, help="The admin doing it (audited).")


@cli.group("registration")
def registration_group() -> None:
    """Residents register themselves by texting ALTA or JOIN (optionally with a published keyword:
    ALTA CENTRO) to a short code or a shared code's keyword, and confirm with SI/YES."""


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def _policy_line(policy: dict[str, Any]) -> str:
    state = "on" if policy["enabled"] else "off"
    return (f"registration {state}; confirm within {policy['confirm_within_s'] // 60} min; "
            f"at most {policy['per_hour']} requests an hour per number")


@registration_group.command("publish")
@click.argument("keyword")
@click.option("--zone", help="The zone a resident who texts the keyword is subscribed to.")
@click.option("--group", help="The static group a resident who texts the keyword joins.")
@click.option("--description", default="", help="What the keyword is for (shown to admins).")
@as_option
@json_option
@pass_ctx
def registration_publish(ctx: Context, keyword: str, zone: str | None, group: str | None, description: str,
                         username: str, as_json: bool) -> None:
    """Publish KEYWORD for one zone or one static group: residents may then text ALTA KEYWORD."""
    from alerting.base.db import transaction
    from alerting.base.sms_text.vocabulary import load_vocabulary
    from alerting.directory.accounts import actor_of, get_operator
    from alerting.directory.registration_keywords import publish_keyword

    settings = ctx.db()
    with transaction() as session:
        actor = actor_of(get_operator(session, username), interface="cli")
        row = publish_keyword(session, keyword, zone=zone, group=group, description=description,
                              vocabulary=load_vocabulary(settings.vocabulary_file), actor=actor)
        data = {"keyword": row.keyword.upper(), "zone": zone, "group": group, "description": row.description}
    aim = f"zone {zone}" if zone else f"group {group}"
    emit(as_json, data, f"published {data['keyword']} → {aim}: residents text ALTA {data['keyword']}")


@registration_group.command("unpublish")
@click.argument("keyword")
@as_option
@json_option
@pass_ctx
def registration_unpublish(ctx: Context, keyword: str, username: str, as_json: bool) -> None:
    """Withdraw KEYWORD: new requests naming it are refused; those registered with it stay."""
    from alerting.base.db import transaction
    from alerting.directory.accounts import actor_of, get_operator
    from alerting.directory.registration_keywords import unpublish_keyword

    ctx.db()
    with transaction() as session:
        word = unpublish_keyword(session, keyword, actor=actor_of(get_operator(session, username), interface="cli"))
    emit(as_json, {"keyword": word.upper(), "unpublished": True}, f"unpublished {word.upper()}")


@registration_group.command("list")
@json_option
@pass_ctx
def registration_list(ctx: Context, as_json: bool) -> None:
    """The policy, the published keywords and the registrations by state."""
    from alerting.base.db import transaction
    from alerting.directory.registration_keywords import list_keywords, load_policy
    from alerting.directory.registration_records import registration_counts

    ctx.db()
    with transaction() as session:
        policy = load_policy(session).as_dict()
        keywords = list_keywords(session)
        counts = registration_counts(session)
    lines = [_policy_line(policy)]
    lines += [f"{k['keyword']:<20} → {'zone ' + k['zone'] if k['zone'] else 'group ' + str(k['group'])}  "
              f"{k['registered']} registered  (by {k['published_by']}, {_when(k['published_at'])})"
              + (f"  {k['description']}" if k["description"] else "") for k in keywords] or ["no keywords published"]
    lines.append("registrations: " + ", ".join(f"{state} {n}" for state, n in counts.items()))
    emit(as_json, {"policy": policy, "keywords": keywords, "registrations": counts}, "\n".join(lines))


@registration_group.command("policy")
@click.option("--on/--off", "enabled", default=None,
              help="Take registration requests (on), or store them refused and unanswered (off).")
@click.option("--confirm-minutes", type=int, help="How long a resident has to answer SI/YES (1 to 43,200).")
@click.option("--per-hour", type=int, help="Requests a number may make in an hour; more are stored, not answered.")
@click.option("--as", "username", help="The admin changing it (audited; required to change anything).")
@json_option
@pass_ctx
def registration_policy(ctx: Context, enabled: bool | None, confirm_minutes: int | None, per_hour: int | None,
                        username: str | None, as_json: bool) -> None:
    """Show the policy, or change what is given."""
    from alerting.base.db import transaction
    from alerting.base.errors import InvalidInput
    from alerting.directory.accounts import actor_of, get_operator
    from alerting.directory.registration_keywords import load_policy, set_policy

    ctx.db()
    changing = enabled is not None or confirm_minutes is not None or per_hour is not None
    if changing and not username:
        raise InvalidInput("--as: name the admin changing the policy", fields={"--as": "required to change it"})
    with transaction() as session:
        if changing:
            policy = set_policy(session, enabled=enabled, per_hour=per_hour,
                                confirm_within_s=confirm_minutes * 60 if confirm_minutes is not None else None,
                                actor=actor_of(get_operator(session, username or ""), interface="cli"))
        else:
            policy = load_policy(session)
    emit(as_json, policy.as_dict(), _policy_line(policy.as_dict()))


@registration_group.command("requests")
@click.option("--state", help="pending, active, expired, withdrawn, replaced, existing, refused or limited.")
@click.option("--number", "number", help="Only numbers containing these digits.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@pass_ctx
def registration_requests(ctx: Context, state: str | None, number: str | None, limit: int, as_json: bool) -> None:
    """The latest registration requests, newest first (numbers shown by their last 4 digits)."""
    from alerting.base.db import transaction
    from alerting.base.phones import mask_msisdn
    from alerting.directory.registration_records import list_registrations

    ctx.db()
    with transaction() as session:
        rows, _ = list_registrations(session, state=state, q=number, limit=limit)
    for row in rows:
        row["msisdn"] = mask_msisdn(row["msisdn"])
    emit(as_json, {"registrations": rows}, "\n".join(
        f"{r['id']}  {r['msisdn']}  {r['state']:<9} {r['word']} {r['keyword'] or ''}  {_when(r['requested_at'])}"
        + (f"  ({r['reason']})" if r["reason"] else "") for r in rows) or "no registrations")


@registration_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--state", help="Only registrations in this state.")
@click.option("--number", "number", help="Only numbers containing these digits.")
@as_option
@json_option
@pass_ctx
def registration_export(ctx: Context, path: Path, state: str | None, number: str | None, username: str,
                        as_json: bool) -> None:
    """Every registration as CSV (full numbers; spreadsheet-safe cells) to PATH, or - for stdout. Audited."""
    from alerting.base import csv_cells
    from alerting.base.db import transaction
    from alerting.directory.accounts import actor_of, get_operator
    from alerting.directory.registration_records import CSV_COLUMNS, csv_row, each_registration, record_export

    ctx.db()
    with transaction() as session:
        record_export(session, state=state, q=number,
                      actor=actor_of(get_operator(session, username), interface="cli"))
    rows = 0
    out = sys.stdout if str(path) == "-" else path.open("w", encoding="utf-8", newline="")
    try:
        writer = csv_cells.writer(out)
        writer.writerow(CSV_COLUMNS)
        with transaction() as session:
            for view in each_registration(session, state=state, q=number):
                writer.writerow(csv_row(view))
                rows += 1
    finally:
        if out is not sys.stdout:
            out.close()
    if str(path) != "-":
        emit(as_json, {"path": str(path), "rows": rows}, f"{rows} registrations written to {path}")
