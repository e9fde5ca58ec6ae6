"""`sirena target preview`: who a target reaches, without writing anything."""

from __future__ import annotations

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.group("target")
def target_group() -> None:
    """Targets: zones ∪ groups, narrowed by criteria, minus exclusions and opt-outs."""


@target_group.command("preview")
@click.option("--zone", "zones", multiple=True, help="Zone name (repeatable).")
@click.option("--group", "groups", multiple=True, help="Group name (repeatable).")
@click.option("--where", "where", help='Criterion JSON, e.g. {"attr": "district", "eq": "Centro"}.')
@click.option("--exclude-group", "exclude_groups", multiple=True, help="Group to leave out (repeatable).")
@click.option("--exclude-number", "exclude_numbers", multiple=True, help="Phone number to leave out (repeatable).")
@click.option("--label", "labels", multiple=True, help="Only these location labels count (default: all).")
@click.option("--include-opted-out", is_flag=True, help="Reach opted-out contacts too (policy override).")
@click.option("--text", "text", help="Message text: estimates the SMS parts and total SMS.")
@click.option("--mode", type=click.Choice(["live", "exercise", "test"]), default=None,
              help="The alert's mode (with --priority: applies the opt-out policy).")
@click.option("--priority", type=click.Choice(["flash", "high", "normal", "low"]), default=None,
              help="The alert's priority (with --mode: applies the opt-out policy).")
@json_option
@pass_ctx
def target_preview(ctx: Context, zones: tuple[str, ...], groups: tuple[str, ...], where: str | None,
                   exclude_groups: tuple[str, ...], exclude_numbers: tuple[str, ...], labels: tuple[str, ...],
                   include_opted_out: bool, text: str | None, mode: str | None, priority: str | None,
                   as_json: bool) -> None:
    """Count recipients with breakdowns by zone, group and language."""
    from alerting.base.db import transaction
    from alerting.base.errors import InvalidInput
    from geo.targeting import TargetSpec, preview

    settings = ctx.db()
    criteria = None
    if where is not None:
        from alerting.base.json_limits import parse_json
        from alerting.directory.criteria import MAX_CRITERION_BYTES

        criteria = parse_json(where, field="where", max_bytes=MAX_CRITERION_BYTES)
    if not zones and not groups:
        raise InvalidInput("target: give at least one --zone or --group",
                           fields={"target": "give at least one --zone or --group"})
    spec = TargetSpec.from_json({
        "zones": list(zones), "groups": list(groups), "criteria": criteria,
        "exclude_groups": list(exclude_groups), "exclude_numbers": list(exclude_numbers),
        "location_labels": list(labels) or None, "include_opted_out": include_opted_out,
    }, region=settings.default_region)
    with transaction() as session:
        result = preview(session, spec, text=text, mode=mode or (priority and "live"), priority=priority)
    emit(as_json, result.to_json(), _human(result))


def _human(result) -> str:
    lines = [f"recipients: {result.total}"]
    for z in result.by_zone:
        lines.append(f"  zone {z['name']} v{z['version']}: {z['recipients']} of {z['located']} located")
    for g in result.by_group:
        lines.append(f"  group {g['name']} ({g['kind']}): {g['recipients']} of {g['members']} members")
    lines.append("  by language: " + (", ".join(f"{k} {v}" for k, v in result.by_language.items()) or "none"))
    lines.append(f"  matched {result.matched}; removed by criteria {result.removed_by_criteria}; "
                 f"excluded {result.excluded}; opted out left out {result.opted_out_excluded}"
                 + (f"; opted out included {result.opted_out_included}" if result.include_opted_out else ""))
    policy = result.opt_out_policy or {}
    lines.append("  opt-out policy: live " + ("/".join(policy.get("override_priorities") or []) or "no")
                 + " alerts reach opted-out contacts" + (f"; here: {policy['reason']}" if policy.get("reason") else ""))
    if result.sms:
        lines.append(f"  text: {result.sms['encoding']}, {result.sms['parts']} part(s); "
                     f"total SMS {result.sms['total_sms']}")
        if result.sms.get("longest"):
            worst = result.sms["longest"]
            lines.append(f"  personalised: the longest expansion is {worst['encoding']}, {worst['parts']} part(s); "
                         f"total SMS at most {worst['total_sms']}")
    return "\n".join(lines)
