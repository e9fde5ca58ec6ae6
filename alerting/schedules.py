"""Recurring sends (drills) from a cron rule kept in Postgres, and the quiet-hours rule for tests and drills.

A schedule holds a cron rule in an explicit time zone ("0 10 1-7 * mon": 10:00 on the first Monday
of each month; day-of-month AND day-of-week must both match, unlike classic cron's OR) and an
alert template. `fire_due_schedules(session, now)`, called by the scheduler loop every few seconds,
makes each due occurrence once (schedule_runs is unique per occurrence), so a scheduler or Redis
restart neither loses nor repeats one; occurrences missed while nothing ran are not made up later.

Policy per schedule:
- "draft": each occurrence is composed and submitted; an operator approves it like any alert.
- "preapproved_exercise": exercise/test only. A second operator approves the schedule once (the
  two-person rule, applied to the schedule); each occurrence is then approved in that operator's
  name by the lifecycle, which re-checks their role and the two-person rule every time.
Live schedules are always "draft": nothing live is ever pre-approved.

Quiet hours (IntakeConfig.quiet_start..quiet_end, local time of the schedule's zone): tests and
drills are refused inside them unless an operator overrides with a reason; live alerts ignore them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.alerts import drafts, lifecycle
from alerting.alerts.quiet_hours import check_quiet_hours
from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, InvalidTransition, NotFound, SirenaError, TwoPersonRuleViolated
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import AlertMode, Operator, Priority
from alerting.base.models.intake import Schedule, ScheduleRun
from alerting.directory import areas, permissions
from alerting.directory.accounts import actor_of
from audit import trail
from audit.actor import Actor

POLICIES = ("draft", "preapproved_exercise")
TEMPLATE_KEYS = {"texts", "mode", "sender", "priority", "title", "target", "ack_deadline_s"}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f'timezone: unknown time zone "{name}"', fields={"timezone": "unknown time zone"}) from None


def next_occurrence(rule: str, tz: ZoneInfo, after: datetime) -> datetime:
    """The first occurrence of `rule` (in `tz`) strictly after `after`, as an aware datetime."""
    return croniter(rule, after.astimezone(tz), day_or=False).get_next(datetime)


def _draft(template: dict[str, Any], *, origin: str = "schedule") -> drafts.AlertDraft:
    return drafts.AlertDraft(texts=dict(template["texts"]), mode=AlertMode(template["mode"]),
                                sender_name=template["sender"], priority=Priority(template.get("priority", "normal")),
                                title=template.get("title", ""), target=dict(template.get("target") or {}),
                                ack_deadline_s=template.get("ack_deadline_s"), origin=origin)


def create_schedule(session: Session, name: str, rule: str, timezone: str, template: dict[str, Any], policy: str,
                    actor: Actor, *, config: IntakeConfig, quiet_override_reason: str | None = None,
                    now: datetime | None = None) -> Schedule:
    """Store a recurring send. Raises InvalidInput naming the field (rule, timezone, policy, template.*)."""
    now = now or utcnow()
    tz = _zone(timezone)
    if not croniter.is_valid(rule) or len(rule.split()) != 5:
        raise InvalidInput(f'rule: "{rule}" is not a 5-field cron rule (minute hour day month weekday)',
                           fields={"rule": "not a 5-field cron rule"})
    if policy not in POLICIES:
        raise InvalidInput(f"policy: expected {' or '.join(POLICIES)}", fields={"policy": "unknown policy"})
    unknown = set(template) - TEMPLATE_KEYS
    missing = {"texts", "mode", "sender"} - set(template)
    if unknown or missing:
        raise InvalidInput("template: unknown or missing keys",
                           fields={**{f"template.{k}": "unknown key" for k in sorted(unknown)},
                                   **{f"template.{k}": "required" for k in sorted(missing)}})
    try:
        draft = _draft(template)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"template: {exc}", fields={"template": str(exc)}) from None
    if policy == "preapproved_exercise" and draft.mode is AlertMode.LIVE:
        raise InvalidInput("policy: a live schedule is never pre-approved; use policy draft",
                           fields={"policy": "live alerts are never pre-approved"})
    permissions.require(actor, "schedules.create", "schedule alerts")
    areas.require_within(session, actor, draft.target, doing="schedule")
    drafts.validate(session, draft)  # the same checks lifecycle.compose makes, once, now
    first = next_occurrence(rule, tz, now)
    check_quiet_hours(draft.mode, first, tz, config, quiet_override_reason)
    if session.scalar(select(Schedule.id).where(Schedule.name == name)) is not None:
        raise InvalidInput(f'name: a schedule named "{name}" exists', fields={"name": "already exists"})
    schedule = Schedule(name=name, rule=rule, timezone=timezone, template=template, policy=policy,
                        next_run_at=first, created_by_id=actor.operator_id,
                        quiet_override_reason=(quiet_override_reason or "").strip() or None)
    session.add(schedule)
    session.flush()
    trail.append(session, actor=actor, action="schedule.created", subject_type="schedule", subject_id=schedule.id,
                 payload={"name": name, "rule": rule, "timezone": timezone, "policy": policy, "template": template,
                          "next_run_at": first, "quiet_override_reason": schedule.quiet_override_reason})
    return schedule


def get_schedule(session: Session, schedule_id: int, *, lock: bool = False) -> Schedule:
    schedule = session.get(Schedule, schedule_id, with_for_update=lock)
    if schedule is None:
        raise NotFound(f"schedule {schedule_id} does not exist", fields={"schedule_id": "not found"})
    return schedule


def approve_schedule(session: Session, schedule_id: int, approver: Actor) -> Schedule:
    """A second operator pre-approves a drill schedule. Raises TwoPersonRuleViolated, Refused."""
    schedule = get_schedule(session, schedule_id, lock=True)
    if approver.operator_id == schedule.created_by_id:
        raise TwoPersonRuleViolated("the creator of a schedule cannot pre-approve it")
    permissions.require(approver, "schedules.approve", "pre-approve drill schedules")
    if schedule.policy != "preapproved_exercise":
        raise InvalidTransition("only preapproved_exercise schedules take a pre-approval")
    schedule.approved_by_id = approver.operator_id
    trail.append(session, actor=approver, action="schedule.approved", subject_type="schedule",
                 subject_id=schedule.id, payload={"name": schedule.name})
    return schedule


def stop_schedule(session: Session, schedule_id: int, actor: Actor) -> Schedule:
    """No further occurrences. Idempotent; audited."""
    permissions.require(actor, "schedules.stop", "stop schedules")
    schedule = get_schedule(session, schedule_id, lock=True)
    if schedule.active:
        schedule.active = False
        trail.append(session, actor=actor, action="schedule.stopped", subject_type="schedule",
                     subject_id=schedule.id, payload={"name": schedule.name})
    return schedule


def resume_schedule(session: Session, schedule_id: int, actor: Actor, *, config: IntakeConfig,
                    now: datetime | None = None) -> Schedule:
    """Fire again after `stop_schedule`, from the next occurrence after `now`; missed ones are not made up.

    Idempotent. The next occurrence is checked against quiet hours like a new schedule's first
    (the stored override reason still applies). Needs the composer role. Audited as
    "schedule.resumed" with the next run.
    """
    now = now or utcnow()
    schedule = get_schedule(session, schedule_id, lock=True)
    if schedule.active:
        return schedule
    permissions.require(actor, "schedules.resume", "resume schedules")
    tz = _zone(schedule.timezone)
    upcoming = next_occurrence(schedule.rule, tz, now)
    check_quiet_hours(AlertMode(schedule.template["mode"]), upcoming, tz, config, schedule.quiet_override_reason)
    schedule.active, schedule.next_run_at = True, upcoming
    trail.append(session, actor=actor, action="schedule.resumed", subject_type="schedule", subject_id=schedule.id,
                 payload={"name": schedule.name, "next_run_at": upcoming})
    return schedule


def delete_schedule(session: Session, schedule_id: int, actor: Actor) -> Schedule:
    """Delete a schedule and its run records; the alerts its runs made stay (each has its own history).

    Needs the composer or admin role (Refused otherwise). Audited as "schedule.deleted" with the
    whole definition, so the audit trail can say what it was.
    """
    schedule = get_schedule(session, schedule_id, lock=True)
    permissions.require(actor, "schedules.delete", "delete schedules")
    runs = session.scalar(select(func.count()).select_from(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id))
    trail.append(session, actor=actor, action="schedule.deleted", subject_type="schedule", subject_id=schedule.id,
                 payload={"name": schedule.name, "rule": schedule.rule, "timezone": schedule.timezone,
                          "policy": schedule.policy, "template": schedule.template, "active": schedule.active,
                          "runs": runs})
    session.delete(schedule)
    session.flush()
    return schedule


def schedule_view(schedule: Schedule, last_run: ScheduleRun | None = None) -> dict[str, Any]:
    """A schedule as the CLI and API show it (times are aware datetimes; callers format them)."""
    return {"id": schedule.id, "name": schedule.name, "rule": schedule.rule, "timezone": schedule.timezone,
            "policy": schedule.policy, "template": schedule.template, "next_run_at": schedule.next_run_at,
            "last_run_at": schedule.last_run_at, "active": schedule.active,
            "approved": schedule.approved_by_id is not None,
            "quiet_override_reason": schedule.quiet_override_reason,
            "last_run": None if last_run is None else {
                "occurrence_at": last_run.occurrence_at, "outcome": last_run.outcome,
                "alert_id": last_run.alert_id, "reason": last_run.reason}}


def list_schedules(session: Session) -> list[dict[str, Any]]:
    """Every schedule by name, with its latest run (outcome, alert, reason), in two queries."""
    rows = list(session.scalars(select(Schedule).order_by(Schedule.name)))
    latest = {run.schedule_id: run for run in session.scalars(
        select(ScheduleRun).distinct(ScheduleRun.schedule_id)
        .order_by(ScheduleRun.schedule_id, ScheduleRun.occurrence_at.desc()))}
    return [schedule_view(s, latest.get(s.id)) for s in rows]


def fire_due_schedules(session: Session, now: datetime, *, config: IntakeConfig | None = None) -> list[ScheduleRun]:
    """Make every due occurrence once; return the runs written. Safe to call from two schedulers at once.

    Each schedule is locked (SKIP LOCKED) and its occurrence recorded in a savepoint, so one broken
    template marks its run failed (audited) without stopping the others.
    """
    config = config or IntakeConfig()
    due = session.scalars(select(Schedule).where(Schedule.active, Schedule.next_run_at <= now)
                          .order_by(Schedule.next_run_at).with_for_update(skip_locked=True)).all()
    runs: list[ScheduleRun] = []
    for schedule in due:
        occurrence, tz = schedule.next_run_at, _zone(schedule.timezone)
        claimed = session.execute(pg_insert(ScheduleRun).values(
            schedule_id=schedule.id, occurrence_at=occurrence, outcome="pending")
            .on_conflict_do_nothing().returning(ScheduleRun.id)).first()
        schedule.last_run_at = occurrence
        schedule.next_run_at = next_occurrence(schedule.rule, tz, max(occurrence, now))
        if claimed is None:
            continue
        run = session.get_one(ScheduleRun, claimed[0])  # just inserted
        _fire_one(session, schedule, run, tz, config)
        runs.append(run)
    return runs


def _fire_one(session: Session, schedule: Schedule, run: ScheduleRun, tz: ZoneInfo, config: IntakeConfig) -> None:
    system = Actor.system("scheduler")
    draft = _draft(schedule.template)
    draft.title = draft.title or schedule.name
    draft.idempotency_key = f"schedule:{schedule.id}:{run.occurrence_at.isoformat()}"
    try:
        check_quiet_hours(draft.mode, run.occurrence_at, tz, config, schedule.quiet_override_reason)
    except InvalidInput as exc:
        run.outcome, run.reason = "skipped_quiet", exc.message
        trail.append(session, actor=system, action="schedule.skipped", subject_type="schedule",
                     subject_id=schedule.id, payload={"occurrence_at": run.occurrence_at, "reason": exc.message},
                     outcome="refused", reason=exc.message)
        return
    composer = session.get_one(Operator, schedule.created_by_id)  # a non-null foreign key
    try:
        with session.begin_nested():
            alert = lifecycle.compose(session, draft, actor_of(composer, interface="scheduler"))
            lifecycle.submit(session, alert.id, actor_of(composer, interface="scheduler"))
            run.alert_id, run.outcome = alert.id, "drafted"
            if schedule.policy == "preapproved_exercise" and schedule.approved_by_id is not None:
                approver = session.get_one(Operator, schedule.approved_by_id)
                # What the approver reviewed is the schedule's template, which cannot change after
                # they approved it; each occurrence is that template, so its hash is what they saw.
                lifecycle.approve(session, alert.id, actor_of(approver, interface="scheduler"),
                                          seen_hash=alert.approval_hash,
                                          override_reason=f"pre-approved drill schedule {schedule.name}")
                run.outcome = "approved"
    except SirenaError as exc:
        found = exc.details.get("fields")
        why = "; ".join([exc.message, *(f"{k}: {v}" for k, v in dict(found).items())] if isinstance(found, dict)
                        else [exc.message])
        run.alert_id, run.outcome, run.reason = None, "failed", why
        trail.append(session, actor=system, action="schedule.failed", subject_type="schedule",
                     subject_id=schedule.id, payload={"occurrence_at": run.occurrence_at}, outcome="refused",
                     reason=why)
        return
    trail.append(session, actor=system, action="schedule.fired", subject_type="schedule", subject_id=schedule.id,
                 payload={"occurrence_at": run.occurrence_at, "alert_id": run.alert_id, "outcome": run.outcome})
