"""Recurring drills from cron rules in Postgres, fired once per occurrence; quiet hours for tests and drills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from alerting.alerts.quiet_hours import in_quiet_hours
from alerting.base.errors import InvalidInput, Refused, TwoPersonRuleViolated
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import Alert, AlertMode, AlertState
from alerting.base.models.intake import ScheduleRun
from alerting.schedules import (
    approve_schedule,
    create_schedule,
    delete_schedule,
    fire_due_schedules,
    resume_schedule,
    stop_schedule,
)
from tests.factories import actor_for

TZ = "America/Santiago"
FIRST_MONDAY_10 = "0 10 1-7 * mon"
DRILL = {"texts": {"es": "Simulacro de evacuación: diríjase al punto de encuentro"}, "mode": "exercise",
         "sender": "SIRENA-SC", "target": {"groups": ["brigadas"]}}
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


@pytest.fixture
def people(factories):  # type: ignore[no-untyped-def]
    factories.SenderFactory(name="SIRENA-SC")
    factories.GroupFactory(name="brigadas", drill_allowed=True)
    composer = factories.OperatorFactory(roles=["composer"])
    approver = factories.OperatorFactory(roles=["approver"])
    return actor_for(composer), actor_for(approver)


def _alerts(db) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(func.count()).select_from(Alert))


def test_the_first_monday_rule_fires_once_per_occurrence_as_a_draft(db, people):
    composer, _ = people
    schedule = create_schedule(db, "simulacro mensual", FIRST_MONDAY_10, TZ, DRILL, "draft", composer,
                               config=IntakeConfig(), now=NOW)
    assert schedule.next_run_at == datetime(2026, 12, 7, 10, 0, tzinfo=ZoneInfo(TZ))
    assert fire_due_schedules(db, NOW) == []
    due = schedule.next_run_at + timedelta(seconds=5)
    runs = fire_due_schedules(db, due)
    assert [r.outcome for r in runs] == ["drafted"]
    alert = db.get(Alert, runs[0].alert_id)
    assert alert.state is AlertState.PENDING_APPROVAL and alert.mode is AlertMode.EXERCISE
    assert fire_due_schedules(db, due) == []  # a second scheduler pass adds nothing
    assert schedule.next_run_at == datetime(2027, 1, 4, 10, 0, tzinfo=ZoneInfo(TZ))


def test_a_run_already_recorded_is_never_made_again(db, people):
    composer, _ = people
    schedule = create_schedule(db, "s", FIRST_MONDAY_10, TZ, DRILL, "draft", composer, config=IntakeConfig(), now=NOW)
    occurrence = schedule.next_run_at
    fire_due_schedules(db, occurrence)
    schedule.next_run_at = occurrence  # as if a crashed scheduler had not advanced it
    db.flush()
    before = _alerts(db)
    assert fire_due_schedules(db, occurrence) == []
    assert _alerts(db) == before


def test_a_preapproved_drill_schedule_approves_each_occurrence_in_the_second_operators_name(db, people, redis_db):
    composer, approver = people
    schedule = create_schedule(db, "s", FIRST_MONDAY_10, TZ, DRILL, "preapproved_exercise", composer,
                               config=IntakeConfig(), now=NOW)
    approve_schedule(db, schedule.id, approver)
    run = fire_due_schedules(db, schedule.next_run_at)[0]
    alert = db.get(Alert, run.alert_id)
    assert run.outcome == "approved" and alert.approved_by_id == approver.operator_id
    assert alert.state is AlertState.APPROVED


def test_the_creator_cannot_preapprove_their_own_schedule(db, people, factories):
    both = actor_for(factories.OperatorFactory(roles=["composer", "approver"]))
    schedule = create_schedule(db, "s", FIRST_MONDAY_10, TZ, DRILL, "preapproved_exercise", both,
                               config=IntakeConfig(), now=NOW)
    with pytest.raises(TwoPersonRuleViolated):
        approve_schedule(db, schedule.id, both)


def test_a_live_schedule_is_never_preapproved(db, people):
    composer, _ = people
    live = {**DRILL, "mode": "live"}
    with pytest.raises(InvalidInput) as refused:
        create_schedule(db, "s", FIRST_MONDAY_10, TZ, live, "preapproved_exercise", composer, config=IntakeConfig(),
                        now=NOW)
    assert "policy" in refused.value.details["fields"]


def test_a_drill_at_night_is_refused_unless_overridden_with_a_reason(db, people):
    composer, _ = people
    with pytest.raises(InvalidInput) as refused:
        create_schedule(db, "nocturno", "0 3 * * *", TZ, DRILL, "draft", composer, config=IntakeConfig(), now=NOW)
    assert "quiet hours" in refused.value.message
    schedule = create_schedule(db, "nocturno", "0 3 * * *", TZ, DRILL, "draft", composer, config=IntakeConfig(),
                               quiet_override_reason="simulacro nocturno pedido por bomberos", now=NOW)
    assert fire_due_schedules(db, schedule.next_run_at)[0].outcome == "drafted"


def test_live_alerts_ignore_quiet_hours(db, people, factories):
    composer, _ = people
    factories.add_member(db, factories.GroupFactory(name="vecinos"), factories.ContactFactory())
    live = {**DRILL, "mode": "live", "target": {"groups": ["vecinos"]}}
    schedule = create_schedule(db, "corte", "0 3 * * *", TZ, live, "draft", composer, config=IntakeConfig(), now=NOW)
    assert fire_due_schedules(db, schedule.next_run_at)[0].outcome == "drafted"


def test_a_live_run_that_would_reach_nobody_is_a_failed_run_saying_why(db, people, factories):
    composer, _ = people
    factories.GroupFactory(name="vecinos")  # nobody in it yet
    live = {**DRILL, "mode": "live", "target": {"groups": ["vecinos"]}}
    schedule = create_schedule(db, "corte", "0 3 * * *", TZ, live, "draft", composer, config=IntakeConfig(), now=NOW)
    run = fire_due_schedules(db, schedule.next_run_at)[0]
    assert run.outcome == "failed" and run.alert_id is None
    assert "reaches nobody" in run.reason


def test_a_schedule_whose_group_was_removed_records_a_failed_run_and_goes_on(db, people, factories):
    composer, _ = people
    schedule = create_schedule(db, "s", "0 12 * * *", TZ, DRILL, "draft", composer, config=IntakeConfig(), now=NOW)
    from alerting.base.models import Group

    db.get(Group, db.scalar(select(Group.id).where(Group.name == "brigadas"))).drill_allowed = False
    db.flush()
    run = fire_due_schedules(db, schedule.next_run_at)[0]
    assert run.outcome == "failed" and "brigadas" in run.reason and schedule.active
    assert db.scalar(select(func.count()).select_from(ScheduleRun)) == 1


def test_bad_rules_zones_and_templates_are_named(db, people):
    composer, _ = people
    for rule, tz, template, field in (("every monday", TZ, DRILL, "rule"), (FIRST_MONDAY_10, "Mars/Olympus", DRILL,
                                      "timezone"), (FIRST_MONDAY_10, TZ, {"mode": "exercise"}, "template.texts")):
        with pytest.raises(InvalidInput) as refused:
            create_schedule(db, "x", rule, tz, template, "draft", composer, config=IntakeConfig(), now=NOW)
        assert field in refused.value.details["fields"]


def test_quiet_hours_wrap_midnight():
    config, tz = IntakeConfig(), ZoneInfo(TZ)
    assert in_quiet_hours(datetime(2026, 12, 1, 23, 30, tzinfo=tz), tz, config)
    assert in_quiet_hours(datetime(2026, 12, 1, 6, 59, tzinfo=tz), tz, config)
    assert not in_quiet_hours(datetime(2026, 12, 1, 7, 0, tzinfo=tz), tz, config)


def test_the_scheduler_tick_fires_due_schedules(db, people):
    from alerting.interfaces.scheduler import tick

    composer, _ = people
    schedule = create_schedule(db, "s", FIRST_MONDAY_10, TZ, DRILL, "draft", composer, config=IntakeConfig(), now=NOW)
    counts = tick(config=IntakeConfig(), now=schedule.next_run_at)
    assert counts["schedule_runs"] == 1
    assert tick(config=IntakeConfig(), now=schedule.next_run_at)["schedule_runs"] == 0


def test_a_resumed_schedule_fires_from_the_next_occurrence_and_makes_up_none_it_missed(db, people):
    composer, _ = people
    schedule = create_schedule(db, "s", FIRST_MONDAY_10, TZ, DRILL, "draft", composer, config=IntakeConfig(), now=NOW)
    stop_schedule(db, schedule.id, composer)
    later = datetime(2027, 2, 10, 12, 0, tzinfo=UTC)  # December, January and February's drills were missed
    assert fire_due_schedules(db, later) == []
    resume_schedule(db, schedule.id, composer, config=IntakeConfig(), now=later)
    assert schedule.active and schedule.next_run_at == datetime(2027, 3, 1, 10, 0, tzinfo=ZoneInfo(TZ))
    assert fire_due_schedules(db, later) == []
    actions = db.scalars(text("SELECT action FROM audit.events WHERE subject_type = 'schedule' ORDER BY id")).all()
    assert actions == ["schedule.created", "schedule.stopped", "schedule.resumed"]


def test_resuming_a_drill_whose_next_occurrence_falls_in_quiet_hours_needs_a_reason(db, people):
    composer, _ = people
    night = create_schedule(db, "n", "0 3 1-7 * mon", TZ, DRILL, "draft", composer, config=IntakeConfig(),
                            quiet_override_reason="pedido por bomberos", now=NOW)
    stop_schedule(db, night.id, composer)
    assert resume_schedule(db, night.id, composer, config=IntakeConfig(), now=NOW).active  # the stored reason holds
    night.quiet_override_reason = None
    stop_schedule(db, night.id, composer)
    with pytest.raises(InvalidInput, match="quiet hours"):
        resume_schedule(db, night.id, composer, config=IntakeConfig(), now=NOW)


def test_deleting_a_schedule_keeps_the_alerts_it_made_and_audits_what_it_was(db, people, factories):
    composer, approver = people
    schedule = create_schedule(db, "s", FIRST_MONDAY_10, TZ, DRILL, "draft", composer, config=IntakeConfig(), now=NOW)
    run = fire_due_schedules(db, schedule.next_run_at)[0]
    with pytest.raises(Refused):
        delete_schedule(db, schedule.id, approver)  # an approver alone does not manage schedules
    delete_schedule(db, schedule.id, composer)
    assert db.get(Alert, run.alert_id) is not None
    assert db.scalar(select(func.count()).select_from(ScheduleRun)) == 0
    payload = db.scalar(text("SELECT payload FROM audit.events WHERE action = 'schedule.deleted'"))
    assert payload["rule"] == FIRST_MONDAY_10 and payload["template"] == DRILL and payload["runs"] == 1


def test_the_creator_of_a_schedule_is_an_author_of_every_occurrence_and_never_approves_one(db, people, factories):
    from alerting.alerts import lifecycle

    both = actor_for(factories.OperatorFactory(roles=["composer", "approver"]))
    _, approver = people
    schedule = create_schedule(db, "s", FIRST_MONDAY_10, TZ, DRILL, "draft", both, config=IntakeConfig(), now=NOW)
    alert = db.get(Alert, fire_due_schedules(db, schedule.next_run_at)[0].alert_id)
    with pytest.raises(TwoPersonRuleViolated):
        lifecycle.approve(db, alert.id, both, seen_hash=alert.approval_hash)
    lifecycle.approve(db, alert.id, approver, seen_hash=alert.approval_hash)
    assert alert.state is AlertState.APPROVED
