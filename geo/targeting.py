"""Target specs resolved to recipients: zones ∪ groups, ∩ criteria, minus exclusions and opt-outs.

Rules, the same in preview and materialization:

- zones: a contact is in a zone when any of its located points (the labels in `location_labels`,
  default all) intersects the zone; the boundary counts as inside (ST_Intersects), so a point on
  the edge, or on a cut line between two of the zone's ST_Subdivide pieces, is reached;
- groups: static members, or contacts matching a dynamic group's criterion at resolution time;
- the union of both is narrowed by `criteria`, then minus `exclude_groups` and `exclude_numbers`,
  then minus opted-out contacts unless `include_opted_out` (policy, e.g. a live flash alert);
- one delivery per phone number (contacts.msisdn is unique; deliveries are unique per alert+msisdn).

Everything is set-based SQL: one statement for a preview, one INSERT … SELECT per chunk of
contact ids for materialization. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import phonenumbers
from sqlalchemy import (
    Select,
    String,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from alerting.criteria import compile_criterion
from alerting.errors import InvalidInput, NotFound
from alerting.models import Alert, AlertMode, Contact, ContactLocation, Delivery, Group, GroupKind, GroupMember
from geo.models import Zone
from geo.parts import ZonePart

_KEYS = ("zones", "groups", "criteria", "exclude_groups", "exclude_numbers", "location_labels",
         "include_opted_out", "zone_versions")
_ALIASES = {"where": "criteria", "labels": "location_labels"}


@dataclass
class TargetSpec:
    """What an alert aims at. JSON form: the field names below (`where` is accepted for criteria)."""

    zones: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    criteria: dict[str, Any] | None = None
    exclude_groups: list[str] = field(default_factory=list)
    exclude_numbers: list[str] = field(default_factory=list)
    location_labels: list[str] | None = None
    include_opted_out: bool = False
    # Pinned zone versions (name → version); None: the current versions at resolution time.
    zone_versions: dict[str, int] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, *, region: str | None = None) -> TargetSpec:
        """Parse and validate; raises InvalidInput naming the bad key. `region` parses national numbers."""
        data = dict(data or {})
        for alias, key in _ALIASES.items():
            if alias in data:
                data.setdefault(key, data.pop(alias))
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise _bad(f"target.{unknown[0]}", f"unknown key; expected one of {', '.join(_KEYS)}")
        spec = cls(
            zones=_names(data.get("zones"), "target.zones"),
            groups=_names(data.get("groups"), "target.groups"),
            criteria=data.get("criteria"),
            exclude_groups=_names(data.get("exclude_groups"), "target.exclude_groups"),
            exclude_numbers=[_e164(n, f"target.exclude_numbers[{i}]", region)
                             for i, n in enumerate(_list(data.get("exclude_numbers"), "target.exclude_numbers"))],
            location_labels=(None if data.get("location_labels") is None
                             else _names(data.get("location_labels"), "target.location_labels")),
            include_opted_out=bool(data.get("include_opted_out", False)),
            zone_versions=_versions(data.get("zone_versions")),
        )
        if spec.criteria is not None:
            compile_criterion(spec.criteria, path="target.criteria")
        return spec

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if out["zone_versions"] is None:
            del out["zone_versions"]
        return out


def _bad(path: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{path}: {reason}", fields={path: reason})


def _list(value: object, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(path, "expected a list")
    return value


def _names(value: object, path: str) -> list[str]:
    names = _list(value, path)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise _bad(f"{path}[{i}]", "expected a name of 1 to 100 characters")
    return list(dict.fromkeys(n.strip() for n in names))


def _e164(value: object, path: str, region: str | None) -> str:
    if not isinstance(value, str):
        raise _bad(path, "expected a phone number as a string")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise _bad(path, f"\"{value}\" is not a phone number ({exc})") from None
    if not phonenumbers.is_possible_number(number):
        raise _bad(path, f"\"{value}\" is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _versions(value: object) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and type(v) is int for k, v in value.items()):
        raise _bad("target.zone_versions", "expected an object of zone name → version number")
    return dict(value)


@dataclass(frozen=True)
class ZoneRef:
    name: str
    version: int
    zone_id: int


@dataclass(frozen=True)
class GroupRef:
    name: str
    group_id: int
    kind: str
    criterion: dict[str, Any] | None

    def members(self) -> Select[Any]:
        """SELECT contact_id of this group's members (dynamic: contacts matching its criterion)."""
        if self.kind == GroupKind.DYNAMIC.value:
            crit = compile_criterion(self.criterion or {}, path=f"groups.{self.name}.criterion")
            return select(Contact.id.label("contact_id")).where(crit)
        return select(GroupMember.contact_id).where(GroupMember.group_id == self.group_id)


@dataclass(frozen=True)
class Resolution:
    """A spec's names turned into rows: zone versions, groups. What an alert records as used."""

    zones: list[ZoneRef]
    groups: list[GroupRef]
    exclude_groups: list[GroupRef]

    def record(self) -> dict[str, Any]:
        return {
            "zone_versions": {z.name: z.version for z in self.zones},
            "zones": [asdict(z) for z in self.zones],
            "groups": [{"name": g.name, "group_id": g.group_id, "kind": g.kind} for g in self.groups],
            "exclude_groups": [{"name": g.name, "group_id": g.group_id} for g in self.exclude_groups],
        }


def resolve(session: Session, spec: TargetSpec) -> Resolution:
    """Look up the spec's zones (pinned or current versions) and groups. Raises NotFound naming all unknown."""
    missing: dict[str, str] = {}
    zones = []
    for name in spec.zones:
        version = (spec.zone_versions or {}).get(name)
        query = select(Zone.id, Zone.version).where(Zone.name == name)
        query = query.where(Zone.version == version) if version is not None else query.where(Zone.is_current)
        row = session.execute(query).first()
        if row is None:
            missing.setdefault("zones", "")
            missing["zones"] += ("; " if missing["zones"] else "") + (
                f"unknown zone \"{name}\"" + (f" version {version}" if version is not None else ""))
        else:
            zones.append(ZoneRef(name, row.version, row.id))
    groups = _groups(session, spec.groups, "groups", missing)
    excluded = _groups(session, spec.exclude_groups, "exclude_groups", missing)
    if missing:
        raise NotFound("; ".join(missing.values()), fields=missing)
    return Resolution(zones, groups, excluded)


def _groups(session: Session, names: list[str], key: str, missing: dict[str, str]) -> list[GroupRef]:
    if not names:
        return []
    found = {g.name: g for g in session.scalars(select(Group).where(Group.name.in_(names)))}
    unknown = [n for n in names if n not in found]
    if unknown:
        missing[key] = "unknown group " + ", ".join(f"\"{n}\"" for n in unknown)
    return [GroupRef(g.name, g.id, g.kind.value, g.criterion) for n in names if (g := found.get(n))]


def resolution_record(session: Session, spec: TargetSpec) -> dict[str, Any]:
    """What to store in alert.resolved: zone versions (also as `zone_versions` to pin later chunks), groups."""
    return resolve(session, spec).record()


# --- the statements --------------------------------------------------------------------------------


def _in_range(column: Any, id_from: int | None, id_to: int | None) -> ColumnElement[bool]:
    if id_from is None:
        return true()
    return column.between(id_from, id_to)


def _zone_hits(res: Resolution, spec: TargetSpec, id_from: int | None, id_to: int | None) -> Select[Any]:
    """(zone_id, contact_id) for every located contact inside each zone, boundary included."""
    conditions = [ZonePart.zone_id.in_([z.zone_id for z in res.zones]),
                  _in_range(ContactLocation.contact_id, id_from, id_to)]
    if spec.location_labels is not None:
        conditions.append(ContactLocation.label.in_(spec.location_labels))
    return (select(ZonePart.zone_id, ContactLocation.contact_id)
            .join(ContactLocation, func.ST_Intersects(ZonePart.geom, ContactLocation.geom))
            .where(*conditions))


def _group_hits(res: Resolution, id_from: int | None, id_to: int | None) -> list[Select[Any]]:
    out = []
    static = [g.group_id for g in res.groups if g.kind != GroupKind.DYNAMIC.value]
    if static:
        out.append(select(GroupMember.group_id, GroupMember.contact_id)
                   .where(GroupMember.group_id.in_(static), _in_range(GroupMember.contact_id, id_from, id_to)))
    for g in res.groups:
        if g.kind == GroupKind.DYNAMIC.value:
            crit = compile_criterion(g.criterion or {}, path=f"groups.{g.name}.criterion")
            out.append(select(literal(g.group_id).label("group_id"), Contact.id.label("contact_id"))
                       .where(crit, _in_range(Contact.id, id_from, id_to)))
    return out


def _excluded(res: Resolution, spec: TargetSpec) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    static = [g.group_id for g in res.exclude_groups if g.kind != GroupKind.DYNAMIC.value]
    if static:
        parts.append(exists().where(GroupMember.group_id.in_(static), GroupMember.contact_id == Contact.id))
    for g in res.exclude_groups:
        if g.kind == GroupKind.DYNAMIC.value:
            parts.append(compile_criterion(g.criterion or {}, path=f"exclude_groups.{g.name}.criterion"))
    if spec.exclude_numbers:
        parts.append(Contact.msisdn.in_(spec.exclude_numbers))
    return or_(false(), *parts) if parts else false()


def _criteria(spec: TargetSpec) -> ColumnElement[bool]:
    return true() if spec.criteria is None else compile_criterion(spec.criteria, path="target.criteria")


def _reached_ids(res: Resolution, spec: TargetSpec, id_from: int | None, id_to: int | None) -> Any:
    """SELECT contact_id: the union of zones and groups (before criteria, exclusions and opt-outs)."""
    selects: list[Select[Any]] = []
    if res.zones:
        selects.append(select(_zone_hits(res, spec, id_from, id_to).subquery().c.contact_id))
    selects += [select(s.subquery().c.contact_id) for s in _group_hits(res, id_from, id_to)]
    if not selects:
        return select(Contact.id.label("contact_id")).where(false())
    return selects[0].distinct() if len(selects) == 1 else union(*selects)


def _fast(session: Session) -> None:
    # JIT compiles these big statements for ~0.1-0.3 s and then saves nothing: off for this transaction.
    session.execute(sql_text("SET LOCAL jit = off"))


def materialize_chunk(
    session: Session,
    alert_id: int,
    spec: TargetSpec,
    id_from: int,
    id_to: int,
    *,
    include_opted_out: bool | None = None,
) -> int:
    """Write the deliveries of contacts with id_from ≤ id ≤ id_to; returns rows written.

    ONE INSERT … SELECT … ON CONFLICT (alert_id, msisdn) DO NOTHING, so a re-run writes nothing
    twice. Language is copied from the contact. Opted-out contacts are left out unless
    `include_opted_out` (defaults to spec.include_opted_out). Zone versions: the spec's pinned
    ones, else those recorded in the alert's `resolved.zone_versions` by an earlier chunk, else
    the current ones. Raises NotFound for an unknown zone or group.
    """
    pinned = spec.zone_versions
    if pinned is None and spec.zones:
        recorded = session.scalar(select(Alert.resolved).where(Alert.id == alert_id))
        pinned = (recorded or {}).get("zone_versions")
    res = resolve(session, TargetSpec(**{**asdict(spec), "zone_versions": pinned}))
    reached = _reached_ids(res, spec, id_from, id_to).subquery("reached")
    include = spec.include_opted_out if include_opted_out is None else include_opted_out
    rows = (
        select(literal(alert_id).label("alert_id"), Contact.id, Contact.msisdn, Contact.language)
        .join(reached, reached.c.contact_id == Contact.id)
        .where(_criteria(spec), not_(_excluded(res, spec)))
        .order_by(Contact.id)
    )
    if not include:
        rows = rows.where(Contact.opted_out_at.is_(None))
    _fast(session)
    statement = (
        pg_insert(Delivery)
        .from_select(["alert_id", "contact_id", "msisdn", "language"], rows)
        .on_conflict_do_nothing(index_elements=["alert_id", "msisdn"])
    )
    return int(session.execute(statement).rowcount or 0)


def contact_id_ranges(session: Session, chunk_contacts: int = 50_000) -> list[tuple[int, int]]:
    """Inclusive contact id ranges `chunk_contacts` ids wide, covering every contact (ids may have gaps)."""
    lo, hi = session.execute(select(func.min(Contact.id), func.max(Contact.id))).one()
    if lo is None:
        return []
    return [(start, min(start + chunk_contacts - 1, hi)) for start in range(lo, hi + 1, chunk_contacts)]


@dataclass(frozen=True)
class ChunkResult:
    id_from: int
    id_to: int
    rows: int
    zone_versions: dict[str, int]


def materialize(
    session: Session, alert_id: int, spec: TargetSpec, *, chunk_contacts: int = 50_000
) -> Iterator[ChunkResult]:
    """Materialize chunk by chunk in this session (the caller may commit between chunks).

    Zone versions are resolved once, before the first chunk, and pinned for the rest.
    """
    res = resolve(session, spec)
    pinned = TargetSpec(**{**asdict(spec), "zone_versions": {z.name: z.version for z in res.zones}})
    for id_from, id_to in contact_id_ranges(session, chunk_contacts):
        rows = materialize_chunk(session, alert_id, pinned, id_from, id_to)
        yield ChunkResult(id_from, id_to, rows, dict(pinned.zone_versions or {}))


# --- preview ---------------------------------------------------------------------------------------


@dataclass
class Preview:
    """Who a spec reaches now, and why not more: counts only, nothing written."""

    total: int
    matched: int  # contacts reached by zones ∪ groups, before criteria, exclusions and opt-outs
    removed_by_criteria: int
    excluded: int
    opted_out_excluded: int
    opted_out_included: int
    include_opted_out: bool
    by_zone: list[dict[str, Any]]
    by_group: list[dict[str, Any]]
    by_language: dict[str, int]
    zone_versions: dict[str, int]
    sms: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def why_empty(self) -> str:
        """A sentence per source and filter, for an empty target's refusal."""
        said = [f"zone \"{z['name']}\" v{z['version']}: {z['located']} located inside" for z in self.by_zone]
        said += [f"group \"{g['name']}\": {g['members']} member(s)" for g in self.by_group]
        said.append(f"{self.matched} matched, {self.removed_by_criteria} removed by criteria, "
                    f"{self.excluded} excluded, {self.opted_out_excluded} opted out")
        return "; ".join(said)


def preview(
    session: Session,
    spec: TargetSpec,
    *,
    text: str | None = None,
    languages: Mapping[str, str] | None = None,
) -> Preview:
    """Count recipients with breakdowns by zone, group and language; estimate SMS for the texts.

    `text` is the message for every language; `languages` maps a language to its own text (a
    recipient whose language has none gets `text`, else the first given). One read-only
    statement. Raises NotFound for an unknown zone or group, InvalidInput for a bad criterion.
    """
    res = resolve(session, spec)
    hits_parts: list[Select[Any]] = []
    if res.zones:
        z = _zone_hits(res, spec, None, None).distinct().subquery()
        hits_parts.append(select(literal("zone", String).label("kind"), z.c.zone_id.label("ref"), z.c.contact_id))
    for g in _group_hits(res, None, None):
        s = g.subquery()
        hits_parts.append(select(literal("group", String).label("kind"), s.c.group_id.label("ref"), s.c.contact_id))
    if not hits_parts:
        hits_parts.append(select(literal("none", String).label("kind"), literal(0).label("ref"),
                                 Contact.id.label("contact_id")).where(false()))
    hits = union_all(*hits_parts).cte("hits")
    reached = select(hits.c.contact_id).distinct().cte("reached")
    opted_out = Contact.opted_out_at.is_not(None)
    status = _status(res, spec, opted_out).label("status")
    people = (select(Contact.id, Contact.language, status, opted_out.label("opted_out"))
              .join(reached, reached.c.contact_id == Contact.id).cte("people"))
    by_status = select(literal("status", String), people.c.status, people.c.opted_out, func.count()) \
        .group_by(people.c.status, people.c.opted_out)
    by_language = select(literal("language", String), people.c.language, literal(False), func.count()) \
        .where(people.c.status == "recipient").group_by(people.c.language)
    by_source = (select(hits.c.kind, cast(hits.c.ref, String), people.c.status == "recipient", func.count())
                 .join(people, people.c.id == hits.c.contact_id)
                 .group_by(hits.c.kind, hits.c.ref, people.c.status == "recipient"))
    _fast(session)
    rows = session.execute(union_all(by_status, by_language, by_source)).all()
    return _assemble(res, spec, rows, text=text, languages=languages)


def _status(res: Resolution, spec: TargetSpec, opted_out: ColumnElement[bool]) -> ColumnElement[str]:
    whens: list[tuple[ColumnElement[bool], str]] = [(not_(_criteria(spec)), "criteria"),
                                                    (_excluded(res, spec), "excluded")]
    if not spec.include_opted_out:
        whens.append((opted_out, "opted_out"))
    return case(*whens, else_=literal("recipient"))


def _assemble(res: Resolution, spec: TargetSpec, rows: list[Any], *, text: str | None,
              languages: Mapping[str, str] | None) -> Preview:
    statuses: dict[tuple[str, bool], int] = {}
    by_language: dict[str, int] = {}
    sources: dict[tuple[str, int], dict[str, int]] = {}
    for kind, key, flag, n in rows:
        if kind == "status":
            statuses[(key, bool(flag))] = n
        elif kind == "language":
            by_language[key] = n
        else:
            entry = sources.setdefault((kind, int(key)), {"all": 0, "recipients": 0})
            entry["all"] += n
            if flag:
                entry["recipients"] += n

    def count(status: str) -> int:
        return sum(n for (s, _), n in statuses.items() if s == status)

    by_zone = [{"name": z.name, "version": z.version, "located": sources.get(("zone", z.zone_id), {}).get("all", 0),
                "recipients": sources.get(("zone", z.zone_id), {}).get("recipients", 0)} for z in res.zones]
    by_group = [{"name": g.name, "kind": g.kind, "members": sources.get(("group", g.group_id), {}).get("all", 0),
                 "recipients": sources.get(("group", g.group_id), {}).get("recipients", 0)} for g in res.groups]
    result = Preview(
        total=count("recipient"), matched=sum(statuses.values()), removed_by_criteria=count("criteria"),
        excluded=count("excluded"), opted_out_excluded=count("opted_out"),
        opted_out_included=statuses.get(("recipient", True), 0) if spec.include_opted_out else 0,
        include_opted_out=spec.include_opted_out, by_zone=by_zone, by_group=by_group,
        by_language=dict(sorted(by_language.items())), zone_versions={z.name: z.version for z in res.zones},
    )
    if text is not None or languages:
        result.sms = estimate_sms(by_language, text=text, languages=languages)
    return result


def estimate_sms(by_language: Mapping[str, int], *, text: str | None,
                 languages: Mapping[str, str] | None = None) -> dict[str, Any]:
    """SMS parts per language text and the total SMS count, with broadcast.encoding's segmentation."""
    # Imported here: broadcast depends on geo, so a module-level import would be a cycle.
    from broadcast.encoding import analyze

    texts = dict(languages or {})
    fallback = text if text is not None else next(iter(texts.values()), "")
    per_language: dict[str, Any] = {}
    total = 0
    for lang, recipients in by_language.items():
        body = texts.get(lang, fallback)
        info = analyze(body)
        per_language[lang] = {"encoding": info.encoding, "parts": info.parts, "recipients": recipients,
                              "sms": info.parts * recipients, "own_text": lang in texts}
        total += info.parts * recipients
    info = analyze(fallback)
    return {"parts": info.parts, "encoding": info.encoding, "per_language": per_language, "total_sms": total}


def require_nonempty(result: Preview, mode: AlertMode | str) -> None:
    """Refuse a live alert that reaches nobody, with the breakdown saying why (InvalidInput, field target)."""
    if result.total > 0 or AlertMode(mode) is not AlertMode.LIVE:
        return
    why = result.why_empty()
    raise InvalidInput(f"target: reaches nobody ({why})", fields={"target": f"reaches nobody: {why}"},
                       breakdown=result.to_json())


__all__ = [
    "ChunkResult", "Preview", "Resolution", "TargetSpec", "contact_id_ranges", "estimate_sms", "materialize",
    "materialize_chunk", "preview", "require_nonempty", "resolution_record", "resolve",
]
