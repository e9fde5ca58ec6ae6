"""The SQL of targeting: which contacts a resolved target reaches, as composable SELECTs.

Inside a zone means ST_Intersects(zone, point): the boundary counts as inside. Most points are
decided without a geometry test, by the zone version's cell covering (geo.cells): a point whose
cell key falls in an inside range is inside, one in no range is outside, and only the points in
boundary ranges get the exact test. That test is against the whole zone, sent as a constant (its
EWKB as a bound value): PostGIS prepares a constant polygon once per statement (an edge index),
so each test is O(log vertices) instead of a scan of all 1,000 edges.

Whole-table scans (preview) read the covering's ranges from zone_cells and answer each by a range
scan of ix_contact_locations_cell: index-only for inside ranges (contact_id and label are in the
index), with the exact test for boundary ranges. Chunk scans (materialization) start from the
contact id range instead and classify each point of the range by its key with width_bucket over
the covering's bounds (a binary search), testing exactly only those in boundary ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    Select,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CompoundSelect

from alerting.base.models import Contact, ContactLocation, GroupKind, GroupMember, ZoneSubscription
from alerting.base.models.zones import ZoneCell
from alerting.directory.criteria import compile_criterion
from geo.cells import Covering


@dataclass(frozen=True)
class ZoneRef:
    name: str
    version: int
    zone_id: int
    ewkb: bytes
    covering: Covering
    # Contacts subscribed to the zone by name (registered by SMS, no location): when there are
    # none, the statements below are exactly those of located points alone.
    subscribers: int = 0


@dataclass(frozen=True)
class GroupRef:
    name: str
    group_id: int
    kind: str
    criterion: dict[str, Any] | None

    @property
    def dynamic(self) -> bool:
        return self.kind == GroupKind.DYNAMIC.value

    def condition(self, path: str) -> ColumnElement[bool]:
        """A dynamic group's criterion over contacts."""
        return compile_criterion(self.criterion or {}, path=f"{path}.{self.name}.criterion")


_INTERSECTS_NO_INDEX = getattr(func, "_ST_Intersects")  # noqa: B009  (func._x reads as private)


def zone_constant(zone: ZoneRef) -> ColumnElement[Any]:
    return func.ST_GeomFromEWKB(literal(zone.ewkb, LargeBinary))


def _labels(labels: list[str] | None) -> ColumnElement[bool]:
    return true() if labels is None else ContactLocation.label.in_(labels)


def zone_hits_everywhere(zone: ZoneRef, labels: list[str] | None,
                         ids: tuple[int, int] | None = None) -> CompoundSelect:
    """contact_id of every located point in `zone` (a contact may repeat), through its covering;
    given `ids`, only of contacts with ids in that inclusive range.

    Two parts, because an index-only scan cannot evaluate a test on geom: the inside ranges
    (no test at all) and the boundary ranges (the exact test). The ranges are disjoint, so no
    point is returned twice by one zone.
    """
    def in_ranges(inside: bool, *columns: Any) -> Any:
        # LATERAL … OFFSET 0: one range scan per range, always. The planner cannot estimate a
        # range with bounds from another table (it guesses 6,000 points where there are ~5), and
        # left free it tested every point of the table exactly, then joined (80 s on the bench).
        # ORDER BY cell: a plain index scan, not a bitmap built per range (3 times the CPU).
        scan = (select(ContactLocation.contact_id, *columns)
                .where(ContactLocation.cell.between(ZoneCell.lo, ZoneCell.hi), _labels(labels),
                       true() if ids is None else ContactLocation.contact_id.between(*ids))
                .order_by(ContactLocation.cell).offset(0).lateral())
        return scan, (select(scan.c.contact_id).select_from(ZoneCell).join(scan, true())
                      .where(ZoneCell.zone_id == zone.zone_id, ZoneCell.inside.is_(inside)))

    _, inside = in_ranges(True)
    scan, edge = in_ranges(False, ContactLocation.geom)
    parts = [inside, edge.where(_INTERSECTS_NO_INDEX(zone_constant(zone), scan.c.geom))]
    if zone.subscribers:
        parts.append(zone_subscribers(zone, labels, ids))
    return union_all(*parts)


def zone_subscribers(zone: ZoneRef, labels: list[str] | None, ids: tuple[int, int] | None = None) -> Select[Any]:
    """contact_id of the contacts subscribed to `zone` by name (registered by SMS, without a
    location there), a subscription counting as a place labelled with its label ("registered");
    given `ids`, only of contacts in that inclusive range. A range scan of the primary key
    (zone_name, contact_id)."""
    query = select(ZoneSubscription.contact_id).where(ZoneSubscription.zone_name == zone.name)
    if labels is not None:
        query = query.where(ZoneSubscription.label.in_(labels))
    if ids is not None:
        query = query.where(ZoneSubscription.contact_id.between(*ids))
    return query


def zone_hits_in_range(zone: ZoneRef, labels: list[str] | None, id_from: int, id_to: int) -> Select[Any]:
    """contact_id of located points in `zone` among contacts id_from..id_to.

    The id range is the selective part: each of its points is classified by its cell key (a
    binary search in the bounds of the inside ranges, then of the boundary ranges; a NULL key is
    in neither) and only points in boundary ranges are tested.
    _ST_Intersects is ST_Intersects without its index hook, so the planner never swaps the id
    range for a GiST search of the zone's whole box.
    """
    def in_ranges(inside: bool) -> ColumnElement[bool]:
        bounds = literal(zone.covering.bounds(inside=inside), ARRAY(BigInteger))
        return func.width_bucket(ContactLocation.cell, bounds).op("%")(2) == 1

    decided = case((in_ranges(True), true()),
                   (in_ranges(False), _INTERSECTS_NO_INDEX(zone_constant(zone), ContactLocation.geom)),
                   else_=false())
    return (select(ContactLocation.contact_id)
            .where(ContactLocation.contact_id.between(id_from, id_to), _labels(labels), decided))


def static_members(groups: list[GroupRef], id_from: int | None = None, id_to: int | None = None) -> Select[Any]:
    ids = [g.group_id for g in groups if not g.dynamic]
    query = select(GroupMember.contact_id).where(GroupMember.group_id.in_(ids))
    if id_from is not None:
        query = query.where(GroupMember.contact_id.between(id_from, id_to))
    return query


def dynamic_members(group: GroupRef, id_from: int | None = None, id_to: int | None = None) -> Select[Any]:
    query = select(Contact.id.label("contact_id")).where(group.condition("groups"))
    if id_from is not None:
        query = query.where(Contact.id.between(id_from, id_to))
    return query


def excluded(exclude_groups: list[GroupRef], exclude_numbers: list[str]) -> ColumnElement[bool]:
    """True for a contact the target leaves out by group or by number."""
    parts: list[ColumnElement[bool]] = []
    static = [g.group_id for g in exclude_groups if not g.dynamic]
    if static:
        parts.append(Contact.id.in_(select(GroupMember.contact_id).where(GroupMember.group_id.in_(static))))
    parts += [g.condition("exclude_groups") for g in exclude_groups if g.dynamic]
    if exclude_numbers:
        parts.append(Contact.msisdn.in_(exclude_numbers))
    return or_(false(), *parts) if parts else false()


def criteria(criterion: dict[str, Any] | None) -> ColumnElement[bool]:
    return true() if criterion is None else compile_criterion(criterion, path="target.criteria")


def reached_in_range(query: Select[*tuple[Any, ...]], zones: list[ZoneRef], groups: list[GroupRef],
                     labels: list[str] | None, id_from: int, id_to: int) -> Select[*tuple[Any, ...]]:
    """`query` (a SELECT from contacts) narrowed to the contacts of id_from..id_to that the zones ∪
    groups reach (a zone: its located points and its subscribers).

    One pass over the chunk's contacts: the zone hits and static members of the range (one
    UNION, deduplicated) are LEFT JOINed to it, and a dynamic group's criterion is read from the
    contact row already in hand, instead of a second scan of contacts unioned and joined back.
    A join, not `id IN (…) OR …`: that becomes a subplan which the planner hashes only when its
    estimate fits in work_mem, and otherwise re-runs for every contact.
    """
    query = query.where(Contact.id.between(id_from, id_to))
    listed: list[Select[Any]] = [zone_hits_in_range(z, labels, id_from, id_to) for z in zones]
    listed += [zone_subscribers(z, labels, (id_from, id_to)) for z in zones if z.subscribers]
    if any(not g.dynamic for g in groups):
        listed.append(static_members(groups, id_from, id_to))
    parts: list[ColumnElement[bool]] = [g.condition("groups") for g in groups if g.dynamic]
    if listed:
        found = (listed[0].distinct() if len(listed) == 1 else union(*listed)).subquery("listed")
        query = query.outerjoin(found, found.c.contact_id == Contact.id)
        parts.append(found.c.contact_id.is_not(None))
    return query.where(or_(false(), *parts))


@dataclass(frozen=True)
class Source:
    """One zone or group of the preview, in the order it is counted."""

    kind: str  # "zone" | "group"
    ref: ZoneRef | GroupRef


def sources(zones: list[ZoneRef], groups: list[GroupRef]) -> list[Source]:
    return [Source("zone", z) for z in zones] + [Source("group", g) for g in groups]


def _members(s: Source, labels: list[str] | None, ids: tuple[int, int] | None) -> Select[Any] | CompoundSelect:
    if isinstance(s.ref, ZoneRef):
        return zone_hits_everywhere(s.ref, labels, ids)
    if s.ref.dynamic:
        # correlate(None): this SELECT over contacts is its own scan, not the outer row.
        return dynamic_members(s.ref, *(ids or (None, None))).correlate(None)
    return static_members([s.ref], *(ids or (None, None)))


# Bits per word of the per-contact source set: a bigint holds 63 (the sign bit left alone).
WORD_BITS = 63


def source_words(n_sources: int) -> int:
    return max(1, -(-n_sources // WORD_BITS))


def preview_statement(srcs: list[Source], labels: list[str] | None, crit: dict[str, Any] | None,
                      exclusion: ColumnElement[bool], include_opted_out: bool,
                      ids: tuple[int, int] | None = None) -> Select[Any]:
    """One row per (status, opted_out, language, source set): how many contacts (given `ids`,
    among contacts with ids in that inclusive range; the rows of disjoint ranges add up).

    Each source's members carry their source's bit (UNION ALL, the spatial scan once per zone);
    they are folded into one row per contact with the set of sources that reached it (bit_or,
    63 sources per bigint word), so a contact reached several times (two zones, two locations,
    a zone and a group) is one row. Only those contacts are joined to `contacts`, and the final
    GROUP BY answers every breakdown at once (by zone and group: the words, decoded by
    geo.preview.assemble). Criteria and exclusions run only for contacts some source reached.
    """
    tagged = []
    for i, s in enumerate(srcs):
        members = _members(s, labels, ids).subquery()
        tagged.append(select(members.c.contact_id, literal(i // WORD_BITS, Integer).label("word"),
                             literal(1 << (i % WORD_BITS), BigInteger).label("bit")))
    every = tagged[0].subquery() if len(tagged) == 1 else union_all(*tagged).subquery()
    words = [func.coalesce(func.bit_or(every.c.bit).filter(every.c.word == w), 0).label(f"w{w}")
             for w in range(source_words(len(srcs)))]
    reached = select(every.c.contact_id, *words).group_by(every.c.contact_id).subquery("reached")
    opted_out = Contact.opted_out_at.is_not(None)
    whens: list[tuple[ColumnElement[bool], str]] = [(~criteria(crit), "criteria"), (exclusion, "excluded")]
    if not include_opted_out:
        whens.append((opted_out, "opted_out"))
    status = case(*whens, else_=literal("recipient")).label("status")
    source_sets = [reached.c[f"w{w}"] for w in range(len(words))]
    # "+ 0" hides pk_contacts from this join: the planner cannot count what a UNION reaches (it
    # guesses 200 rows) and would look each contact up by index, 375,000 random reads on the
    # bench, where one pass over contacts into a hash join costs a third of that.
    joined = reached.join(Contact.__table__, (Contact.id + literal_column("0")) == reached.c.contact_id)
    statement = (select(status, opted_out.label("opted_out"), Contact.language, func.count(), *source_sets)
                 .select_from(joined)
                 .group_by(status, opted_out, Contact.language, *source_sets))
    return statement if ids is None else statement.where(Contact.id.between(*ids))
