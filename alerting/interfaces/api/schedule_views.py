"""Recurring sends over the API: create, list, pre-approve (second operator), stop."""

from __future__ import annotations

from typing import Any

from flask import current_app, g
from sqlalchemy import select

from alerting import schedules
from alerting.base.db import transaction
from alerting.base.intake_config import IntakeConfig
from alerting.base.models.intake import Schedule
from alerting.interfaces.api import api_bp
from alerting.interfaces.api.framework import operation
from alerting.interfaces.api.schemas import ScheduleCreateSchema, ScheduleSchema


def _view(schedule: Schedule) -> dict[str, Any]:
    return {"id": schedule.id, "name": schedule.name, "rule": schedule.rule, "timezone": schedule.timezone,
            "policy": schedule.policy, "template": schedule.template, "next_run_at": schedule.next_run_at,
            "last_run_at": schedule.last_run_at, "active": schedule.active,
            "approved": schedule.approved_by_id is not None, "quiet_override_reason": schedule.quiet_override_reason}


@operation(api_bp, "POST", "/schedules", summary="Create a recurring send (e.g. a monthly drill)", tag="schedules",
           body=ScheduleCreateSchema, response=ScheduleSchema, status=201, scope="alerts:draft",
           action="schedules.create")
def create_schedule(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    config = current_app.config.get("SIRENA_INTAKE_CONFIG") or IntakeConfig()
    with transaction() as session:
        schedule = schedules.create_schedule(session, body["name"], body["rule"], body["timezone"], body["template"],
                                             body["policy"], g.actor, config=config,
                                             quiet_override_reason=body.get("quiet_override_reason"))
        return _view(schedule), 201


@operation(api_bp, "GET", "/schedules", summary="Every schedule", tag="schedules", response=ScheduleSchema,
           many=True, scope="read", action="schedules.read")
def list_schedules() -> list[dict[str, Any]]:
    with transaction() as session:
        return [_view(s) for s in session.scalars(select(Schedule).order_by(Schedule.name))]


@operation(api_bp, "POST", "/schedules/<int:schedule_id>/approve", summary="Pre-approve a drill schedule",
           tag="schedules", response=ScheduleSchema, scope="alerts:approve", action="schedules.approve")
def approve_schedule(schedule_id: int) -> dict[str, Any]:
    with transaction() as session:
        return _view(schedules.approve_schedule(session, schedule_id, g.actor))


@operation(api_bp, "POST", "/schedules/<int:schedule_id>/stop", summary="Stop a schedule", tag="schedules",
           response=ScheduleSchema, scope="alerts:cancel", action="schedules.stop")
def stop_schedule(schedule_id: int) -> dict[str, Any]:
    with transaction() as session:
        return _view(schedules.stop_schedule(session, schedule_id, g.actor))
