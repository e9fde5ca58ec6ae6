"""Who still aims at a group or a zone: unfinished alerts, active schedules and published
self-registration keywords that name it.

An alert's target names groups and zones (`target.groups`, `target.exclude_groups`,
`target.zones`; an escalation names its supervisors' group), and so does a schedule's template.
A group or zone named by an alert that is not finished, or by a schedule that still fires, must
not be deleted: the alert would fail at approval or fan-out, the schedule at its next occurrence.
Finished alerts keep the names as history; their deliveries already say who was reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from alerting.base.models import Alert, AlertMode, AlertState, Group, RegistrationKeyword
from alerting.base.models.intake import Schedule

# An alert in one of these states will never resolve its target again.
FINISHED_STATES = frozenset({AlertState.COMPLETED, AlertState.REJECTED, AlertState.CANCELLED, AlertState.SUPERSEDED})
SHOWN = 10


@dataclass
class TargetUsers:
    """Unfinished alerts (references) and active schedules (names) that name one group or zone."""

    alerts: list[str] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)  # published self-registration keywords

    def __bool__(self) -> bool:
        return bool(self.alerts or self.schedules or self.keywords)

    def describe(self) -> str:
        """E.g. 'alerts A-2026-000012 (sending), A-2026-000013 (draft) and schedule "simulacro mensual"'."""
        parts = []
        if self.alerts:
            more = f" and {len(self.alerts) - SHOWN} more" if len(self.alerts) > SHOWN else ""
            parts.append(("alert " if len(self.alerts) == 1 else "alerts ") + ", ".join(self.alerts[:SHOWN]) + more)
        if self.schedules:
            parts.append(("schedule " if len(self.schedules) == 1 else "schedules ")
                         + ", ".join(f'"{s}"' for s in self.schedules))
        parts += [f"registration keyword {k}" for k in self.keywords]
        return " and ".join(parts)


def _named(column: Any, key: str, name: str) -> ColumnElement[bool]:
    """`column` (JSONB) has a list under `key` that holds `name`: `column -> key @> '["name"]'`."""
    return column[key].contains([name])


def group_users(session: Session, name: str, *, drills_only: bool = False) -> TargetUsers:
    """Unfinished alerts and active schedules naming group `name` (target, exclusions, supervisors).

    `drills_only`: only exercise and test alerts and schedules (those that need the group marked
    for drills). One query per table, read-only.
    """
    alerts = (select(Alert.reference, Alert.state).where(Alert.state.not_in(FINISHED_STATES))
              .where(or_(_named(Alert.target, "groups", name), _named(Alert.target, "exclude_groups", name),
                         Alert.escalation["supervisors"].astext == name)))
    target = Schedule.template["target"]
    schedules = (select(Schedule.name).where(Schedule.active)
                 .where(or_(_named(target, "groups", name), _named(target, "exclude_groups", name))))
    if drills_only:
        alerts = alerts.where(Alert.mode != AlertMode.LIVE)
        schedules = schedules.where(Schedule.template["mode"].astext != AlertMode.LIVE.value)
        return _users(session, alerts, schedules)
    keywords = (select(RegistrationKeyword.keyword).join(Group, Group.id == RegistrationKeyword.group_id)
                .where(Group.name == name))
    return _users(session, alerts, schedules, keywords)


def zone_users(session: Session, name: str) -> TargetUsers:
    """Unfinished alerts and active schedules whose target names zone `name`. Read-only."""
    alerts = (select(Alert.reference, Alert.state).where(Alert.state.not_in(FINISHED_STATES))
              .where(_named(Alert.target, "zones", name)))
    schedules = (select(Schedule.name).where(Schedule.active)
                 .where(_named(Schedule.template["target"], "zones", name)))
    keywords = select(RegistrationKeyword.keyword).where(RegistrationKeyword.zone_name == name)
    return _users(session, alerts, schedules, keywords)


def _users(session: Session, alerts: object, schedules: object, keywords: Any = None) -> TargetUsers:
    found = TargetUsers()
    for reference, state in session.execute(alerts.order_by(Alert.id)):  # type: ignore[attr-defined]
        found.alerts.append(f"{reference} ({state.value})")
    found.schedules = list(session.scalars(schedules.order_by(Schedule.name)))  # type: ignore[attr-defined]
    if keywords is not None:  # residents would be told to text a keyword that reaches nothing
        found.keywords = [k.upper() for k in session.scalars(keywords.order_by(RegistrationKeyword.keyword))]
    return found
