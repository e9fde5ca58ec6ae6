"""`sirena schedules create|list|approve|pause|resume|delete`: recurring sends (monthly drills).

Every rule (cron rule, time zone, quiet hours, pre-approval by a second operator) is in
alerting/schedules.py; these commands parse, open one transaction and call one service.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx

as_option = click.option("--as", "username", required=True, help="The operator doing it (audited).")


@cli.group("schedules")
def schedules_group() -> None:
    """Recurring sends from a cron rule, e.g. the first Monday of every month at 10:00 (a drill)."""


def _when(value: datetime | None, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z") if value is not None else "—"


def _human(view: dict[str, Any]) -> str:
    state = "active" if view["active"] else "paused"
    approval = (" (pre-approved)" if view["approved"] else " (waiting for a second operator's approval)") \
        if view["policy"] == "preapproved_exercise" else ""
    target = view["template"].get("target") or {}
    aim = ", ".join([f"group {g}" for g in target.get("groups", [])] + [f"zone {z}" for z in target.get("zones", [])])
    line = (f"{view['id']}  {view['name']}  [{view['template']['mode']}, {view['policy']}{approval}, {state}]  "
            f"\"{view['rule']}\" {view['timezone']}  next {_when(view['next_run_at'], view['timezone'])}  → {aim}")
    last = view.get("last_run")
    if last:
        line += f"\n      last run {_when(last['occurrence_at'], view['timezone'])}: {last['outcome']}" + (
            f" (alert {last['alert_id']})" if last["alert_id"] else "") + (f" — {last['reason']}" if last["reason"]
                                                                          else "")
    return line


def _config() -> Any:
    from alerting.base.intake_config import IntakeConfig

    return IntakeConfig.from_env(os.environ)


@schedules_group.command("create")
@click.argument("name")
@click.option("--rule", required=True, metavar="CRON",
              help='5-field cron rule; day-of-month AND weekday must both match: "0 10 1-7 * mon" is 10:00 on '
                   "the first Monday of each month.")
@click.option("--timezone", "timezone", help="IANA time zone of the rule (default: SIRENA_TIMEZONE).")
@click.option("--mode", required=True, type=click.Choice(["live", "exercise", "test"]),
              help="Exercise and test reach only groups marked for drills.")
@click.option("--text-es", help="Text in Spanish (the system adds SIMULACRO:/PRUEBA:).")
@click.option("--text-en", help="Text in English.")
@click.option("--sender", required=True, help="Sender name from the carriers file, e.g. SIRENA-SC.")
@click.option("--group", "groups", multiple=True, help="Group to reach (repeatable).")
@click.option("--zone", "zones", multiple=True, help="Zone to reach (repeatable; live only).")
@click.option("--priority", default="normal", type=click.Choice(["flash", "high", "normal", "low"]))
@click.option("--title", default="", help="Title of each occurrence's alert (default: the schedule's name).")
@click.option("--ack-deadline", "ack_deadline_s", type=int, help="ACK deadline in seconds.")
@click.option("--policy", default="draft", type=click.Choice(["draft", "preapproved_exercise"]),
              help="draft: each occurrence waits for approval; preapproved_exercise: a second operator approves "
                   "the schedule once (`schedules approve`).")
@click.option("--quiet-override", "quiet_override_reason", metavar="REASON",
              help="Why a test or drill may fire inside quiet hours (night).")
@as_option
@json_option
@pass_ctx
def schedules_create(ctx: Context, name: str, rule: str, timezone: str | None, mode: str, text_es: str | None,
                     text_en: str | None, sender: str, groups: tuple[str, ...], zones: tuple[str, ...], priority: str,
                     title: str, ack_deadline_s: int | None, policy: str, quiet_override_reason: str | None,
                     username: str, as_json: bool) -> None:
    """Create a recurring send; prints its id and next occurrence."""
    from alerting import schedules
    from alerting.base.db import transaction
    from alerting.base.errors import InvalidInput
    from alerting.directory.accounts import actor_of, get_operator

    settings = ctx.db()
    texts = {lang: text for lang, text in (("es", text_es), ("en", text_en)) if text}
    if not texts:
        raise InvalidInput("template.texts: give --text-es and/or --text-en", fields={"template.texts": "required"})
    if not groups and not zones:
        raise InvalidInput("template.target: give at least one --group or --zone",
                           fields={"template.target": "give at least one --group or --zone"})
    template: dict[str, Any] = {"texts": texts, "mode": mode, "sender": sender, "priority": priority,
                                "target": {k: list(v) for k, v in (("groups", groups), ("zones", zones)) if v}}
    if title:
        template["title"] = title
    if ack_deadline_s is not None:
        template["ack_deadline_s"] = ack_deadline_s
    with transaction() as session:
        actor = actor_of(get_operator(session, username), interface="cli")
        schedule = schedules.create_schedule(session, name, rule, timezone or settings.timezone, template, policy,
                                             actor, config=_config(), quiet_override_reason=quiet_override_reason)
        view = schedules.schedule_view(schedule)
    emit(as_json, view, "created " + _human(view))


@schedules_group.command("list")
@json_option
@pass_ctx
def schedules_list(ctx: Context, as_json: bool) -> None:
    """Every schedule: rule, next occurrence (local time), state and its last run's outcome."""
    from alerting import schedules
    from alerting.base.db import transaction

    ctx.db()
    with transaction() as session:
        views = schedules.list_schedules(session)
    emit(as_json, {"schedules": views}, "\n".join(_human(v) for v in views) or "no schedules")


@schedules_group.command("approve")
@click.argument("schedule_id", type=int)
@as_option
@json_option
@pass_ctx
def schedules_approve(ctx: Context, schedule_id: int, username: str, as_json: bool) -> None:
    """Pre-approve a drill schedule (a second operator with the approver role; never its creator)."""
    _one(ctx, schedule_id, username, as_json, "approve", "pre-approved")


@schedules_group.command("pause")
@click.argument("schedule_id", type=int)
@as_option
@json_option
@pass_ctx
def schedules_pause(ctx: Context, schedule_id: int, username: str, as_json: bool) -> None:
    """Stop firing (idempotent); `schedules resume` starts again from the next occurrence."""
    _one(ctx, schedule_id, username, as_json, "pause", "paused")


@schedules_group.command("resume")
@click.argument("schedule_id", type=int)
@as_option
@json_option
@pass_ctx
def schedules_resume(ctx: Context, schedule_id: int, username: str, as_json: bool) -> None:
    """Fire again from the next occurrence (missed ones are not made up; quiet hours checked)."""
    _one(ctx, schedule_id, username, as_json, "resume", "resumed")


@schedules_group.command("delete")
@click.argument("schedule_id", type=int)
@as_option
@json_option
@pass_ctx
def schedules_delete(ctx: Context, schedule_id: int, username: str, as_json: bool) -> None:
    """Delete a schedule and its run records (the alerts it made stay; the audit keeps its definition)."""
    _one(ctx, schedule_id, username, as_json, "delete", "deleted")


def _one(ctx: Context, schedule_id: int, username: str, as_json: bool, verb: str, done: str) -> None:
    from alerting import schedules
    from alerting.base.db import transaction
    from alerting.directory.accounts import actor_of, get_operator

    ctx.db()
    with transaction() as session:
        actor = actor_of(get_operator(session, username), interface="cli")
        if verb == "approve":
            schedule = schedules.approve_schedule(session, schedule_id, actor)
        elif verb == "pause":
            schedule = schedules.stop_schedule(session, schedule_id, actor)
        elif verb == "resume":
            schedule = schedules.resume_schedule(session, schedule_id, actor, config=_config())
        else:
            schedule = schedules.delete_schedule(session, schedule_id, actor)
        view = schedules.schedule_view(schedule)
    if verb == "delete":
        view = {"id": view["id"], "name": view["name"], "deleted": True}
        emit(as_json, view, f"deleted schedule {view['id']} {view['name']}")
        return
    emit(as_json, view, f"{done} " + _human(view))
