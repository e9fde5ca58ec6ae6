"""Target specs resolved to recipients: zones ∪ groups, ∩ criteria, minus exclusions and opt-outs.

Rules, the same in preview and materialization:

- zones: a contact is in a zone when any of its located points (the labels in `location_labels`,
  default all) intersects the zone; the boundary counts as inside (ST_Intersects, tested against
  the whole zone; its ST_Subdivide pieces only find candidates), so a point on the edge is reached;
  a contact subscribed to the zone by name (registered by SMS, `zone_subscriptions`) is in it
  too, the subscription counting as a place labelled "registered";
- antimeridian: a zone split at ±180° into a MultiPolygon works; a single polygon crossing it is
  refused when saved (geo.validation);
- groups: static members, or contacts matching a dynamic group's criterion at resolution time;
- the union of both is narrowed by `criteria`, then minus `exclude_groups` and `exclude_numbers`,
  then minus opted-out contacts unless `include_opted_out` (policy, e.g. a live flash alert);
- one delivery per phone number (contacts.msisdn is unique; deliveries are unique per alert+msisdn).

Everything is set-based SQL: one statement for a preview, one INSERT … SELECT per chunk of
contact ids for materialization. Nothing here commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import phonenumbers
from sqlalchemy import func, literal, select
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerting.base import runtime
from alerting.base.db import rowcount
from alerting.base.errors import InvalidInput, NotFound
from alerting.base.models import Alert, AlertMode, Contact, Delivery, Group, Priority, ZoneSubscription
from alerting.base.models.zones import Zone
from alerting.directory.criteria import compile_criterion
from geo import reach
from geo.cells import Covering, load_covering, write_covering
from geo.preview import Preview, assemble, estimate_sms, longest_expansions
from geo.reach import GroupRef, ZoneRef

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
            include_opted_out=_flag(data.get("include_opted_out", False), "target.include_opted_out"),
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


def _flag(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(path, "expected true or false")
    return value


def _versions(value: object) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and type(v) is int for k, v in value.items()):
        raise _bad("target.zone_versions", "expected an object of zone name → version number")
    return dict(value)


@dataclass(frozen=True)
class Resolution:
    """A spec's names turned into rows: zone versions (with their geometry), groups."""

    zones: list[ZoneRef]
    groups: list[GroupRef]
    exclude_groups: list[GroupRef]

    def record(self) -> dict[str, Any]:
        """What an alert stores in `resolved`: the exact zone versions and groups it was sent to."""
        return {
            "zone_versions": {z.name: z.version for z in self.zones},
            "zones": [{"name": z.name, "version": z.version, "zone_id": z.zone_id} for z in self.zones],
            "groups": [{"name": g.name, "group_id": g.group_id, "kind": g.kind} for g in self.groups],
            "exclude_groups": [{"name": g.name, "group_id": g.group_id} for g in self.exclude_groups],
        }


def resolve(session: Session, spec: TargetSpec, *, coverings: bool = True) -> Resolution:
    """Look up zones (pinned or current versions) and groups. Raises NotFound naming every unknown one.

    coverings=False leaves each zone's cell covering empty, for callers that only record which
    versions and groups a target names (a covering is thousands of ranges to read)."""
    missing: dict[str, list[str]] = {}
    zones = []
    for name in spec.zones:
        version = (spec.zone_versions or {}).get(name)
        query = select(Zone.id, Zone.version, func.ST_AsEWKB(Zone.geom)).where(Zone.name == name)
        query = query.where(Zone.version == version) if version is not None else query.where(Zone.is_current)
        row = session.execute(query).first()
        if row is None:
            missing.setdefault("zones", []).append(
                f"unknown zone \"{name}\"" + (f" version {version}" if version is not None else ""))
        else:
            covering = _covering(session, row[0]) if coverings else Covering([], [], [])
            subscribers = _subscribers(session, name) if coverings else 0
            zones.append(ZoneRef(name, row[1], row[0], bytes(row[2]), covering, subscribers))
    groups = _groups(session, spec.groups, "groups", missing)
    excluded = _groups(session, spec.exclude_groups, "exclude_groups", missing)
    if missing:
        fields = {key: "; ".join(reasons) for key, reasons in missing.items()}
        raise NotFound("; ".join(fields.values()), fields=fields)
    return Resolution(zones, groups, excluded)


def _covering(session: Session, zone_id: int) -> Covering:
    """The zone version's cell covering; every saved version has one (geo.zones, migration 0020),
    and should one be missing it is computed now rather than let a zone reach nobody."""
    covering = load_covering(session, zone_id)
    if not covering.lo:
        write_covering(session, zone_id)
        covering = load_covering(session, zone_id)
    return covering


def _subscribers(session: Session, zone_name: str) -> int:
    """How many contacts are subscribed to the zone by name (registered by SMS without a location)."""
    return int(session.scalar(select(func.count()).select_from(ZoneSubscription)
                              .where(ZoneSubscription.zone_name == zone_name)) or 0)


def _groups(session: Session, names: list[str], key: str, missing: dict[str, list[str]]) -> list[GroupRef]:
    if not names:
        return []
    # FOR KEY SHARE: a group being deleted meanwhile (delete_group locks it FOR UPDATE) is waited
    # for, and then unknown here; one resolved here cannot be deleted before this transaction
    # ends, and then its deleter sees the alert that uses it and refuses. Edits are not blocked.
    found = {g.name: g for g in session.scalars(
        select(Group).where(Group.name.in_(names)).with_for_update(read=True, key_share=True))}
    unknown = [n for n in names if n not in found]
    if unknown:
        missing.setdefault(key, []).append("unknown group " + ", ".join(f"\"{n}\"" for n in unknown))
    return [GroupRef(g.name, g.id, g.kind.value, g.criterion) for n in names if (g := found.get(n))]


def resolution_record(session: Session, spec: TargetSpec) -> dict[str, Any]:
    """What to store in alert.resolved: zone versions (`zone_versions` pins later chunks), groups."""
    return resolve(session, spec, coverings=False).record()


@dataclass(frozen=True)
class OptOutPolicy:
    """Which alerts reach opted-out contacts too: LIVE alerts of these priorities.

    Set by SIRENA_OPT_OUT_OVERRIDE (default "flash": a live flash alert is about life and
    death, and reaches everyone in the zone). Exercises and tests never override an opt-out.
    """

    priorities: tuple[str, ...] = ("flash",)

    def overrides(self, mode: AlertMode | str, priority: Priority | str) -> bool:
        return AlertMode(mode) is AlertMode.LIVE and Priority(priority).value in self.priorities

    def shown(self, spec: TargetSpec, mode: AlertMode | str | None, priority: Priority | str | None) -> dict[str, Any]:
        """What a preview says about opt-outs: the policy, the alert it was asked for, the outcome."""
        by_policy = mode is not None and priority is not None and self.overrides(mode, priority)
        reason = None
        if spec.include_opted_out:
            reason = "target.include_opted_out"
        elif by_policy and priority is not None:
            reason = f"policy: live {Priority(priority).value} alerts override opt-outs"
        return {"override_priorities": list(self.priorities),
                "mode": None if mode is None else AlertMode(mode).value,
                "priority": None if priority is None else Priority(priority).value,
                "opted_out_reached": spec.include_opted_out or by_policy, "reason": reason}


def opt_out_policy() -> OptOutPolicy:
    """This process's opt-out policy: SIRENA_OPT_OUT_OVERRIDE of its runtime's settings (the
    built-in one before the runtime starts)."""
    settings = runtime.settings()
    return OptOutPolicy(tuple(settings.opt_out_override)) if settings is not None else OptOutPolicy()


# JIT spends 0.1-0.3 s compiling these statements and then saves nothing. 64 MB keeps a 1M-contact
# preview's hash tables in memory. No parallel workers (re-checked with the one-pass preview): each
# worker builds its own copy of the reached-contacts hash, so each redoes the spatial scan, and
# zone_cells is a few pages, so a parallel scan cannot share out the ranges either.
STATEMENT_SETTINGS = ("jit = off", "work_mem = '64MB'", "max_parallel_workers_per_gather = 0")


def _fast(session: Any) -> None:
    """STATEMENT_SETTINGS for the rest of the transaction of `session` (a Session or Connection)."""
    for setting in STATEMENT_SETTINGS:
        session.execute(sql_text(f"SET LOCAL {setting}"))


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

    ONE INSERT … SELECT, leaving out every number the alert already has a delivery for: a re-run
    writes nothing twice, and one phone number gets one delivery (contacts.msisdn is unique, so
    one statement cannot repeat a number). Language is copied from the contact.
    Opted-out contacts are left out unless `include_opted_out` (default: spec.include_opted_out).
    Zone versions: the spec's pinned ones, else those an earlier chunk recorded in the alert's
    `resolved.zone_versions`, else the current ones. Raises NotFound for an unknown zone or group.

    Callers write one alert's chunks one at a time (fan_out holds the alert's row lock): two
    concurrent writers of the same alert would not skip each other's rows, and the unique
    (alert_id, msisdn) constraint would stop the second with an error rather than a duplicate.
    """
    pinned = spec.zone_versions
    if pinned is None and spec.zones:
        recorded = session.scalar(select(Alert.resolved).where(Alert.id == alert_id))
        pinned = (recorded or {}).get("zone_versions")
    res = resolve(session, replace(spec, zone_versions=pinned))
    include = spec.include_opted_out if include_opted_out is None else include_opted_out
    chosen = reach.reached_in_range(
        select(literal(alert_id).label("alert_id"), Contact.id.label("contact_id"), Contact.msisdn, Contact.language)
        .where(reach.criteria(spec.criteria), ~reach.excluded(res.exclude_groups, spec.exclude_numbers)),
        res.zones, res.groups, spec.location_labels, id_from, id_to)
    if not include:
        chosen = chosen.where(Contact.opted_out_at.is_(None))
    _fast(session)
    # No nested loop: with statistics older than the directory (a fresh import, autovacuum not yet
    # round, or off) the planner took the chunk's 100,000 contacts for one row and joined them to
    # the zone and group hits by a nested loop: 1.2 billion comparisons, 99 s for one chunk of the
    # demo's flood warning, and every worker stuck in it while a flash alert waited (issue 17). A
    # merge or hash join does the same chunk in 0.17 s whatever the estimates say.
    session.execute(sql_text("SET LOCAL enable_nestloop = off"))
    written = _insert_chunk(session, alert_id, chosen)
    session.execute(sql_text("SET LOCAL enable_nestloop = on"))  # the rest of the transaction as it was
    return written


def _insert_chunk(session: Session, alert_id: int, chosen: Any) -> int:
    try:
        # Fast path: no check against the alert's earlier deliveries. One statement never repeats a
        # number (contacts.msisdn is unique), and chunks are disjoint contact ranges, so a clash
        # needs a number that moved between contacts after an earlier chunk was written (or a
        # chunk written twice). The unique (alert_id, msisdn) constraint catches that; the chunk
        # is then written again with the check, skipping only the numbers already there.
        # The check costs a probe of the unique index per row, ~20% of the chunk's CPU.
        # Without the check nothing needs the recipients settled first: no CTE (its tuplestore
        # cost 5-12% of the chunk's time).
        with session.begin_nested():
            return _insert_chosen(session, alert_id, chosen.subquery("chosen"), skip_sent=False)
    except IntegrityError as exc:
        if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) != "uq_deliveries_alert_id_msisdn":
            raise
        # MATERIALIZED: the chunk's recipients are settled first, then each is checked once against
        # the alert's deliveries. Left to the planner, the check ran before the join with the zones
        # and groups, once per contact of the range, and on a table without statistics by an index
        # on alert_id alone, walking every row this statement had inserted: minutes for 3,000 rows.
        return _insert_chosen(session, alert_id, chosen.cte("chosen").prefix_with("MATERIALIZED"), skip_sent=True)


def _insert_chosen(session: Session, alert_id: int, chosen: Any, *, skip_sent: bool) -> int:
    rows = select(chosen).order_by(chosen.c.contact_id)
    if skip_sent:
        # A probe of (alert_id, msisdn) per row rather than ON CONFLICT DO NOTHING: a speculative
        # insertion costs a second probe of the unique index and an extra WAL record per row. A
        # scalar subquery stays a probe; as NOT EXISTS the planner may make it a join over every
        # earlier delivery of the alert (quadratic on stale statistics).
        sent_already = (select(literal(1)).select_from(Delivery.__table__)
                        .where(Delivery.alert_id == alert_id, Delivery.msisdn == chosen.c.msisdn)
                        .limit(1).scalar_subquery())
        rows = rows.where(sent_already.is_(None))
    statement = pg_insert(Delivery).from_select(["alert_id", "contact_id", "msisdn", "language"], rows)
    return rowcount(session.execute(statement))


def skip_unreachable(session: Session, spec: TargetSpec, after: int) -> int | None:
    """The cursor to cut the next chunk from: `after`, or further on when no contact in between can
    be reached; None when none after it can.

    Only a target made of static groups alone is skipped through (their members are one index
    range each): a flash alert to a brigade imported last would otherwise write empty chunks
    through the whole directory before its first SMS. Zones and dynamic groups may reach anyone.
    """
    if spec.zones or not spec.groups:
        return after
    groups = session.execute(select(Group.id, Group.kind).where(Group.name.in_(spec.groups))).all()
    if len(groups) < len(spec.groups) or any(kind.value != "static" for _, kind in groups):
        return after  # unknown (the chunk reports it) or dynamic
    first = session.execute(sql_text(  # one index probe per group (a min() over ANY would scan them all)
        "SELECT min(m.first) FROM unnest(CAST(:g AS integer[])) AS g(id), LATERAL ("
        " SELECT min(contact_id) AS first FROM group_members WHERE group_id = g.id AND contact_id > :after) AS m"
    ), {"g": [g for g, _ in groups], "after": after}).scalar()
    return None if first is None else int(first) - 1


def next_contact_range(session: Session, after: int, contacts: int) -> tuple[int, int] | None:
    """Inclusive id bounds of the next `contacts` contacts with id > `after`; None when none is left.

    Chunks count contacts, not ids: after deletions or a sequence that has moved on, ids start
    far from 1 and have gaps, and a chunk cut by id width could hold nobody (the first SMS would
    then wait for a later chunk). Reads at most `contacts` entries of the primary key.
    """
    lo, hi = session.execute(sql_text(
        "SELECT min(id), max(id) FROM (SELECT id FROM contacts WHERE id > :after ORDER BY id LIMIT :n) AS c"
    ), {"after": after, "n": contacts}).one()
    return None if lo is None else (int(lo), int(hi))


def contact_id_ranges(session: Session, chunk_contacts: int = 50_000) -> list[tuple[int, int]]:
    """Inclusive contact id ranges of `chunk_contacts` contacts each, covering every contact."""
    ranges: list[tuple[int, int]] = []
    after = 0
    while (rng := next_contact_range(session, after, chunk_contacts)) is not None:
        ranges.append(rng)
        after = rng[1]
    return ranges


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
    pinned = replace(spec, zone_versions={z.name: z.version for z in res.zones})
    for id_from, id_to in contact_id_ranges(session, chunk_contacts):
        rows = materialize_chunk(session, alert_id, pinned, id_from, id_to)
        yield ChunkResult(id_from, id_to, rows, dict(pinned.zone_versions or {}))


def preview(
    session: Session,
    spec: TargetSpec,
    *,
    text: str | None = None,
    languages: Mapping[str, str] | None = None,
    mode: AlertMode | str | None = None,
    priority: Priority | str | None = None,
) -> Preview:
    """Count recipients with breakdowns by zone, group and language; estimate SMS for the texts.

    `text` is the message for every language; `languages` maps a language to its own text. Given
    the alert's `mode` and `priority`, opted-out contacts count as recipients when the opt-out
    policy overrides them for that alert (as fan-out will do), and `opt_out_policy` says so. One
    read-only statement. Raises NotFound for an unknown zone or group, InvalidInput for a bad
    criterion.
    """
    policy = opt_out_policy().shown(spec, mode, priority)
    include = bool(policy["opted_out_reached"])
    split = _preview_split(session)  # before resolve(): its group locks give the transaction an id
    res = resolve(session, spec)
    srcs = reach.sources(res.zones, res.groups)
    if not srcs:
        result = assemble([], [], include_opted_out=include)
    else:
        def statement(ids: tuple[int, int] | None) -> Any:
            return reach.preview_statement(srcs, spec.location_labels, spec.criteria,
                                           reach.excluded(res.exclude_groups, spec.exclude_numbers), include, ids)

        rows = _preview_rows(session, statement, split)
        result = assemble(rows, srcs, include_opted_out=include)
    result.opt_out_policy = policy
    if text is not None or languages:
        result.sms = estimate_sms(result.by_language, text=text, languages=languages)
        given = dict(languages or {}) or {"*": text or ""}
        longest = longest_expansions(session, given)
        if longest:  # personalised: the parts and total SMS of the longest expansion bound them all
            worst = estimate_sms(result.by_language, text=longest.get("*", text), languages={
                lang: longest.get(lang, body) for lang, body in (languages or {}).items()})
            result.sms["longest"] = {"parts": worst["parts"], "encoding": worst["encoding"],
                                     "total_sms": worst["total_sms"],
                                     "per_language": {k: {"parts": v["parts"], "encoding": v["encoding"]}
                                                      for k, v in worst["per_language"].items()}}
    return result


# A directory this large is previewed in two halves by contact id, at once, on two connections
# that share this transaction's snapshot (bench/targeting.py, 1M contacts: 0.71-0.77 s in one
# statement, 0.43 s in two halves on this 2-core machine).
PREVIEW_SPLIT_MIN_CONTACTS = 200_000


def _preview_split(session: Session) -> list[tuple[int, int]] | None:
    """Two contact id ranges to count at once, or None to count in this session alone.

    Only for a transaction that has written nothing yet: the halves run on other connections, on
    an exported snapshot of this one, and would not see this transaction's own changes.
    """
    lo, hi, written = session.execute(sql_text(
        "SELECT min(id), max(id), txid_current_if_assigned() IS NOT NULL FROM contacts")).one()
    if written or lo is None or hi - lo < PREVIEW_SPLIT_MIN_CONTACTS:
        return None
    mid = (lo + hi) // 2
    return [(int(lo), int(mid)), (int(mid) + 1, int(hi))]


def _preview_rows(session: Session, statement: Any, split: list[tuple[int, int]] | None) -> list[Any]:
    """The preview statement's rows: in this session, or those of each half of `split`."""
    if split is None:
        _fast(session)
        # The planner cannot estimate the covering's range scans (it guesses 6,000 points a
        # range, 100 times too many) and then sorts 400,000 rows to group them: a third more
        # CPU than hashing. Sorting is put off for this statement only.
        session.execute(sql_text("SET LOCAL enable_sort = off"))
        rows = list(session.execute(statement(None)))
        session.execute(sql_text("SET LOCAL enable_sort TO DEFAULT"))
        return rows
    snapshot = session.execute(sql_text("SELECT pg_export_snapshot()")).scalar_one()
    bind = session.get_bind()
    engine = bind.engine  # an Engine's is itself, a Connection's the one it came from

    def half(ids: tuple[int, int]) -> list[Any]:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ",
                                                postgresql_readonly=True) as conn:
            conn.execute(sql_text(f"SET TRANSACTION SNAPSHOT '{_snapshot_id(snapshot)}'"))
            _fast(conn)
            conn.execute(sql_text("SET LOCAL enable_sort = off"))  # as in one statement, above
            rows = list(conn.execute(statement(ids)))
            conn.rollback()
            return rows

    with ThreadPoolExecutor(max_workers=len(split), thread_name_prefix="preview") as pool:
        halves = list(pool.map(half, split))
    return [row for rows in halves for row in rows]  # counts of disjoint halves: assemble() adds them up


def _snapshot_id(value: str) -> str:
    """pg_export_snapshot()'s id ("00000003-0000001B-1"), checked before it is spliced into SQL
    (SET TRANSACTION SNAPSHOT takes no bound parameter)."""
    if not re.fullmatch(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?", value):
        raise RuntimeError(f"unexpected snapshot id {value!r}")
    return value


def require_nonempty(result: Preview, mode: AlertMode | str) -> None:
    """Refuse a live alert that reaches nobody, the breakdown saying why (InvalidInput on field target)."""
    if result.total > 0 or AlertMode(mode) is not AlertMode.LIVE:
        return
    why = result.why_empty()
    raise InvalidInput(f"target: reaches nobody ({why})", fields={"target": f"reaches nobody: {why}"},
                       breakdown=result.to_json())


__all__ = [
    "STATEMENT_SETTINGS",
    "ChunkResult",
    "OptOutPolicy",
    "Preview",
    "Resolution",
    "TargetSpec",
    "contact_id_ranges",
    "estimate_sms",
    "materialize",
    "materialize_chunk",
    "next_contact_range",
    "opt_out_policy",
    "preview",
    "require_nonempty",
    "resolution_record",
    "resolve",
]
