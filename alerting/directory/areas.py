"""Operators bounded to an area: the zones and groups an admin lets a regional team aim at.

A municipal team sharing the installation must not be able to alert the next municipality, or the
whole country. An admin bounds an operator to one or more zones (by name: a redrawn zone bounds by
its current shape) and to the groups assigned to them (`set_area`). From then on compose, edit,
submit, preview and approval, through every interface (console, API, e-mail, CAP, schedules),
refuse a target outside the area (`require_within`, Refused: 403, audited by each interface's
error boundary, naming what is out of bounds). Outside means:

- a zone whose shape is not covered by the union of the operator's zones (PostGIS, the pinned
  version when the target pins one): a zone drawn inside their area, or a CAP polygon inside it,
  is fine; one that spills over is not, even by a street. An unknown zone counts as outside;
- a group not assigned to them (a group reaches its members wherever they live; a mailed list of
  numbers becomes an ad hoc group, so it is outside too);
- criteria with no zone and no group: they would match the whole directory.

Admins stay unbounded, as do system actors (the scheduler, a shell on the server). Corrections
and cancellation notices go to whoever the original reached, which its approval bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, NotFound, Refused
from alerting.base.models import Group, Operator, OperatorArea, Role
from alerting.base.models.zones import Zone
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor

# A zone drawn along the area's edge differs from it by rounding: a difference of at most this
# share of the zone's own area is not "spilling over" (1e-9 of a 100 km² zone is 0.1 m²).
SLIVER_SHARE = 1e-9


@dataclass(frozen=True)
class Area:
    zones: list[str]
    groups: list[str]

    def describe(self) -> str:
        parts = []
        if self.zones:
            parts.append("zones " + ", ".join(self.zones))
        if self.groups:
            parts.append("groups " + ", ".join(self.groups))
        return "; ".join(parts)


@dataclass
class Outside:
    """What a target names beyond an operator's area."""

    zones: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    whole_directory: bool = False

    def __bool__(self) -> bool:
        return bool(self.zones or self.groups or self.whole_directory)

    def parts(self) -> list[str]:
        out = []
        if self.zones:
            out.append("zones " + ", ".join(self.zones))
        if self.groups:
            out.append("groups " + ", ".join(self.groups))
        if self.whole_directory:
            out.append("the whole directory (criteria with no zone or group)")
        return out

    def fields(self) -> dict[str, str]:
        found = {}
        if self.zones:
            found["target.zones"] = "outside your area: " + ", ".join(self.zones)
        if self.groups:
            found["target.groups"] = "not assigned to you: " + ", ".join(self.groups)
        if self.whole_directory:
            found["target.criteria"] = "criteria with no zone or group reach the whole directory"
        return found


def area_of(session: Session, operator_id: int | None) -> Area | None:
    """The operator's area, or None when they are not bounded."""
    if operator_id is None:
        return None
    row = session.get(OperatorArea, operator_id)
    return None if row is None else Area(sorted(row.zones or []), sorted(row.groups or []))


def is_bounded(actor: Actor) -> bool:
    """Whether `actor` may be bounded at all: operators (and their tokens) but never an admin
    or a system actor."""
    return actor.kind != "system" and actor.operator_id is not None and not actor.has_role(Role.ADMIN.value)


def bounds_for(session: Session, actor: Actor) -> Area | None:
    """The area `actor` is held to now; None when unbounded (admin, system, or no area set)."""
    return area_of(session, actor.operator_id) if is_bounded(actor) else None


def outside(session: Session, area: Area, target: Mapping[str, Any] | None) -> Outside:
    """What `target` (an alert's target JSON) names beyond `area`. Zones are compared by shape:
    each target zone (its pinned version, else the current one) must lie within the union of the
    area's zones as they are now."""
    target = dict(target) if isinstance(target, Mapping) else {}  # a malformed one is refused by its parser
    found = Outside()
    zones, groups = _listed(target.get("zones")), _listed(target.get("groups"))
    if zones:
        pinned = target.get("zone_versions")
        found.zones = _zones_outside(session, zones, dict(pinned) if isinstance(pinned, Mapping) else {}, area.zones)
    allowed = set(area.groups)
    found.groups = [g for g in dict.fromkeys(groups) if g not in allowed]
    found.whole_directory = not zones and not groups and bool(target.get("criteria"))
    return found


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _zones_outside(session: Session, names: list[str], pinned: dict[str, Any], bound: list[str]) -> list[str]:
    """Target zones not covered by the union of the `bound` zones (current versions); unknown ones too."""
    if not bound:
        return list(dict.fromkeys(names))
    rows = session.execute(text("""
        WITH area AS (SELECT ST_Union(geom) AS geom FROM zones WHERE is_current AND name = ANY(:bound)),
             wanted AS (SELECT n.name, CAST(CAST(:pins AS jsonb) ->> n.name AS integer) AS version
                          FROM unnest(CAST(:names AS text[])) AS n(name))
        SELECT w.name,
               z.id IS NOT NULL AND area.geom IS NOT NULL
               AND (ST_CoveredBy(z.geom, area.geom)
                    OR ST_Area(ST_Difference(z.geom, area.geom)) <= :share * ST_Area(z.geom)) AS inside
          FROM wanted w
          CROSS JOIN area
          LEFT JOIN zones z ON z.name = w.name
                           AND (z.version = w.version OR (w.version IS NULL AND z.is_current))
    """), {"bound": list(bound), "names": list(dict.fromkeys(names)), "share": SLIVER_SHARE,
           "pins": json.dumps({k: v for k, v in pinned.items() if isinstance(v, int)})}).all()
    return [name for name, inside in rows if not inside]


def require_within(session: Session, actor: Actor, target: Mapping[str, Any] | None, *,
                   doing: str = "target this") -> None:
    """Refused (403; each interface's error boundary audits it) when `actor` is bounded and
    `target` names anything outside their area, naming each zone and group out of bounds in the
    message and by field (`target.zones`, `target.groups`, `target.criteria`)."""
    area = bounds_for(session, actor)
    if area is None:
        return
    found = outside(session, area, target)
    if not found:
        return
    raise Refused(f"outside your area: {'; '.join(found.parts())}", fields=found.fields(),
                  area={"zones": area.zones, "groups": area.groups}, outside={"zones": found.zones,
                                                                             "groups": found.groups},
                  doing=doing)


def _operator(session: Session, operator_id: int) -> Operator:
    operator = session.get(Operator, operator_id, with_for_update=True)
    if operator is None:
        raise NotFound(f"operator {operator_id} does not exist")
    return operator


def _names(values: Iterable[str]) -> list[str]:
    return sorted({" ".join(str(v).split()) for v in values if str(v).strip()})


def set_area(session: Session, operator_id: int, zones: Iterable[str], groups: Iterable[str],
             actor: Actor) -> OperatorArea:
    """Bound an operator to `zones` and `groups` (audited with before and after; an admin's
    action). Raises InvalidInput (nothing given, an admin, unknown names: each named), NotFound."""
    permissions.require(actor, "operators.manage", "bound operators to an area")
    operator = _operator(session, operator_id)
    zone_names, group_names = _names(zones), _names(groups)
    if not zone_names and not group_names:
        raise InvalidInput("give at least one zone or group (or clear the area)",
                           fields={"zones": "at least one zone or group", "groups": "at least one zone or group"})
    if Role.ADMIN.value in (operator.roles or []):
        raise InvalidInput(f"{operator.username} is an admin: admins stay unbounded",
                           fields={"operator": "admins stay unbounded; take the admin role away first"})
    problems = {}
    known_zones = set(session.scalars(select(Zone.name).where(Zone.name.in_(zone_names), Zone.is_current)))
    if missing := [z for z in zone_names if z not in known_zones]:
        problems["zones"] = "unknown zone " + ", ".join(f'"{z}"' for z in missing)
    known_groups = set(session.scalars(select(Group.name).where(Group.name.in_(group_names))))
    if missing := [g for g in group_names if g not in known_groups]:
        problems["groups"] = "unknown group " + ", ".join(f'"{g}"' for g in missing)
    if problems:
        raise InvalidInput("; ".join(problems.values()), fields=problems)
    row = session.get(OperatorArea, operator.id, with_for_update=True)
    before = None if row is None else {"zones": sorted(row.zones), "groups": sorted(row.groups)}
    if row is None:
        row = OperatorArea(operator_id=operator.id)
        session.add(row)
    row.zones, row.groups, row.set_by_id, row.set_at = zone_names, group_names, actor.operator_id, utcnow()
    session.flush()
    trail.append(session, actor=actor, action="operator.area_set", subject_type="operator", subject_id=operator.id,
                 payload={"username": operator.username, "before": before,
                          "after": {"zones": zone_names, "groups": group_names}})
    return row


def clear_area(session: Session, operator_id: int, actor: Actor) -> Operator:
    """Lift an operator's bounds (audited with what they were). Raises NotFound."""
    permissions.require(actor, "operators.manage", "bound operators to an area")
    operator = _operator(session, operator_id)
    row = session.get(OperatorArea, operator.id, with_for_update=True)
    before = None if row is None else {"zones": sorted(row.zones), "groups": sorted(row.groups)}
    if row is not None:
        session.delete(row)
        session.flush()
    trail.append(session, actor=actor, action="operator.area_cleared", subject_type="operator",
                 subject_id=operator.id, payload={"username": operator.username, "before": before})
    return operator


def areas_by_operator(session: Session) -> dict[int, Area]:
    """Every bounded operator's area, by operator id (for lists)."""
    return {row.operator_id: Area(sorted(row.zones), sorted(row.groups))
            for row in session.scalars(select(OperatorArea))}
