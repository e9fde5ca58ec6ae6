
"""Targeting on real PostGIS: zones ∪ groups ∩ criteria − exclusions − opt-outs, one delivery per phone."""

from __future__ import annotations

from dataclasses import replace

import pytest
from shapely.geometry import MultiPolygon, Polygon, box
from sqlalchemy import text

from alerting.base import runtime
from alerting.base.errors import InvalidInput, NotFound
from alerting.base.models import AlertMode
from geo.targeting import (
    TargetSpec,
    contact_id_ranges,
    materialize,
    materialize_chunk,
    preview,
    require_nonempty,
    resolution_record,
)
from geo.zones import save_zone

CENTRO = box(-70.67, -33.46, -70.63, -33.43)
NORTE = box(-70.65, -33.44, -70.60, -33.40)  # overlaps CENTRO in its south-west corner
INSIDE_BOTH = (-70.64, -33.435)
INSIDE_CENTRO = (-70.66, -33.45)
OUTSIDE = (-70.50, -33.30)


def everything(db, directory, alert_id, spec):
    return sum(materialize_chunk(db, alert_id, spec, lo, hi) for lo, hi in contact_id_ranges(db, 3))


def test_same_contact_in_two_zones_and_a_group_gets_one_delivery(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    save_zone(db, "Norte", NORTE, "geojson")
    (both,) = directory.contacts([INSIDE_BOTH])
    directory.locate([both], [INSIDE_CENTRO], label="work")
    directory.group("brigadas", [both])
    alert = directory.alert()
    spec = TargetSpec(zones=["Centro", "Norte"], groups=["brigadas"])
    assert materialize_chunk(db, alert.id, spec, both, both) == 1
    assert materialize_chunk(db, alert.id, spec, both, both) == 0  # a re-run writes nothing twice
    assert len(directory.deliveries(alert.id)) == 1
    p = preview(db, spec)
    assert p.total == 1
    assert [(z["name"], z["located"]) for z in p.by_zone] == [("Centro", 1), ("Norte", 1)]
    assert p.by_group == [{"name": "brigadas", "kind": "static", "members": 1, "recipients": 1}]


def test_a_number_that_moved_to_a_later_contact_is_sent_once_and_the_rest_of_its_chunk_is_written(db, directory):
    """Chunks are written without checking earlier deliveries unless the unique (alert, number)
    constraint objects; then the chunk is written again, leaving out only the number already sent."""
    first, moved, other = directory.contacts([OUTSIDE] * 3)
    directory.group("brigadas", [first, moved, other])
    alert = directory.alert()
    spec = TargetSpec(groups=["brigadas"])
    assert materialize_chunk(db, alert.id, spec, first, first) == 1
    number = db.execute(text("SELECT msisdn FROM contacts WHERE id = :c"), {"c": first}).scalar_one()
    db.execute(text("UPDATE contacts SET msisdn = '+56911111111' WHERE id = :c"), {"c": first})
    db.execute(text("UPDATE contacts SET msisdn = :m WHERE id = :c"), {"m": number, "c": moved})
    assert materialize_chunk(db, alert.id, spec, moved, other) == 1
    sent = db.execute(text("SELECT contact_id, msisdn FROM deliveries WHERE alert_id = :a ORDER BY id"),
                      {"a": alert.id}).all()
    assert [tuple(r) for r in sent] == [(first, number), (other, db.execute(
        text("SELECT msisdn FROM contacts WHERE id = :c"), {"c": other}).scalar_one())]


def test_preview_counts_each_of_many_sources_past_one_word_of_bits(db, directory):
    # 70 groups: the per-contact source set spans two 63-bit words.
    people = directory.contacts([OUTSIDE] * 3)
    names = [f"g{i:02d}" for i in range(70)]
    for i, name in enumerate(names):
        directory.group(name, [people[0]] + ([people[1]] if i >= 63 else []) + ([people[2]] if i == 69 else []))
    p = preview(db, TargetSpec(groups=names))
    assert p.total == 3
    members = {g["name"]: g["members"] for g in p.by_group}
    assert members["g00"] == members["g62"] == 1
    assert members["g63"] == members["g68"] == 2
    assert members["g69"] == 3


def test_preview_and_materialization_agree_on_a_mixed_target(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    inside = directory.contacts([INSIDE_CENTRO] * 5, attributes={"role": "vecino"})
    english = directory.contacts([INSIDE_CENTRO] * 2, language="en", attributes={"role": "vecino"})
    opted = directory.contacts([INSIDE_CENTRO] * 3, opted_out=True)
    outside = directory.contacts([OUTSIDE] * 4, attributes={"role": "brigadista"})
    unlocated = directory.contacts([None, None], attributes={"role": "brigadista"})
    directory.group("brigadas", outside[:2])
    directory.group("todos-brigadistas", criterion={"attr": "role", "eq": "brigadista"})
    directory.group("excluidos", [inside[0]])
    spec = TargetSpec(zones=["Centro"], groups=["brigadas", "todos-brigadistas"], exclude_groups=["excluidos"],
                      exclude_numbers=[_msisdn(db, inside[1])])
    p = preview(db, spec, text="Evacúe la zona")
    assert p.total == 3 + 2 + 4 + 2
    assert p.excluded == 2 and p.opted_out_excluded == 3 and p.matched == 5 + 2 + 3 + 4 + 2
    assert p.by_language == {"en": 2, "es": 9}
    assert p.by_group[1] == {"name": "todos-brigadistas", "kind": "dynamic", "members": 6, "recipients": 6}
    assert p.sms["total_sms"] == 11 and p.sms["parts"] == 1
    alert = directory.alert()
    assert everything(db, directory, alert.id, spec) == p.total
    written = directory.deliveries(alert.id)
    assert {r[0] for r in written} == set(inside[2:]) | set(english) | set(outside) | set(unlocated)
    assert {r[0]: r[2] for r in written}[english[0]] == "en"
    assert not set(opted) & {r[0] for r in written}


def test_criteria_narrow_and_are_counted(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    directory.contacts([INSIDE_CENTRO] * 3, attributes={"unit": "B1"})
    directory.contacts([INSIDE_CENTRO] * 2, attributes={"unit": "B2"})
    p = preview(db, TargetSpec(zones=["Centro"], criteria={"attr": "unit", "eq": "B2"}))
    assert (p.total, p.removed_by_criteria) == (2, 3)


def test_opted_out_reached_only_when_policy_includes_them(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    opted = directory.contacts([INSIDE_CENTRO] * 2, opted_out=True)
    alert = directory.alert()
    spec = TargetSpec(zones=["Centro"], include_opted_out=True)
    p = preview(db, spec)
    assert (p.total, p.opted_out_included, p.opted_out_excluded) == (2, 2, 0)
    assert materialize_chunk(db, alert.id, TargetSpec(zones=["Centro"]), opted[0], opted[-1]) == 0
    assert materialize_chunk(db, alert.id, TargetSpec(zones=["Centro"]), opted[0], opted[-1],
                             include_opted_out=True) == 2


def test_opt_out_policy_is_applied_and_shown_for_the_alert_previewed(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    directory.contacts([INSIDE_CENTRO] * 2, opted_out=True)
    directory.contacts([INSIDE_CENTRO])
    spec = TargetSpec(zones=["Centro"])
    flash = preview(db, spec, mode="live", priority="flash")
    assert (flash.total, flash.opted_out_included, flash.opted_out_excluded) == (3, 2, 0)
    assert flash.opt_out_policy["reason"] == "policy: live flash alerts override opt-outs"
    assert flash.to_json()["opt_out_policy"]["override_priorities"] == ["flash"]
    for mode, priority in (("exercise", "flash"), ("live", "high")):
        p = preview(db, spec, mode=mode, priority=priority)
        assert (p.total, p.opted_out_excluded, p.opt_out_policy["reason"]) == (1, 2, None)
    with runtime.using(settings=replace(runtime.current().settings, opt_out_override=())):
        p = preview(db, spec, mode="live", priority="flash")
        assert (p.total, p.opted_out_excluded, p.opt_out_policy["opted_out_reached"]) == (1, 2, False)


def test_location_labels_choose_which_places_count(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    (worker,) = directory.contacts([OUTSIDE])
    directory.locate([worker], [INSIDE_CENTRO], label="work")
    assert preview(db, TargetSpec(zones=["Centro"])).total == 1
    assert preview(db, TargetSpec(zones=["Centro"], location_labels=["home"])).total == 0
    assert preview(db, TargetSpec(zones=["Centro"], location_labels=["work"])).total == 1


def test_holes_and_multipolygons(db, directory):
    ring = Polygon(box(-70.70, -33.50, -70.60, -33.40).exterior.coords,
                   [box(-70.67, -33.47, -70.63, -33.43).exterior.coords])
    save_zone(db, "Anillo", MultiPolygon([ring, box(-70.50, -33.31, -70.49, -33.29)]), "geojson")
    in_ring, _in_hole, in_second = directory.contacts([(-70.69, -33.49), (-70.65, -33.45), OUTSIDE])
    p = preview(db, TargetSpec(zones=["Anillo"]))
    assert p.total == 2
    alert = directory.alert()
    everything(db, directory, alert.id, TargetSpec(zones=["Anillo"]))
    assert {r[0] for r in directory.deliveries(alert.id)} == {in_ring, in_second}


def test_boundary_counts_as_inside(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    minx, miny, maxx, maxy = CENTRO.bounds
    directory.contacts([(minx, miny), ((minx + maxx) / 2, maxy), (maxx, (miny + maxy) / 2)])
    directory.contacts([(maxx + 1e-9, maxy)])
    assert preview(db, TargetSpec(zones=["Centro"])).total == 3


def test_split_antimeridian_zone_reaches_both_sides(db, directory):
    save_zone(db, "Fiyi", MultiPolygon([box(179.0, -17.5, 180.0, -16.0), box(-180.0, -17.5, -179.0, -16.0)]),
              "geojson")
    directory.contacts([(179.5, -17.0), (-179.5, -17.0), (178.0, -17.0)])
    assert preview(db, TargetSpec(zones=["Fiyi"])).total == 2


def test_unknown_zone_and_group_are_named(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    with pytest.raises(NotFound) as info:
        preview(db, TargetSpec(zones=["Centro", "Atlantida"], groups=["fantasmas"], exclude_groups=["x"]))
    fields = info.value.details["fields"]
    assert fields == {"zones": 'unknown zone "Atlantida"', "groups": 'unknown group "fantasmas"',
                      "exclude_groups": 'unknown group "x"'}


def test_empty_live_target_is_refused_with_the_reason(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    directory.contacts([INSIDE_CENTRO] * 2, opted_out=True)
    p = preview(db, TargetSpec(zones=["Centro"]))
    with pytest.raises(InvalidInput) as info:
        require_nonempty(p, AlertMode.LIVE)
    assert 'zone "Centro" v1: 2 located inside' in info.value.details["fields"]["target"]
    assert "2 opted out" in info.value.details["fields"]["target"]
    assert info.value.details["breakdown"]["total"] == 0
    require_nonempty(p, "exercise")  # a drill to nobody is allowed (and shown)


def test_zone_versions_are_recorded_and_pinned_across_chunks(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    first, second = directory.contacts([INSIDE_CENTRO, (-70.55, -33.35)])
    alert = directory.alert()
    spec = TargetSpec(zones=["Centro"])
    assert materialize_chunk(db, alert.id, spec, first, first) == 1
    alert.resolved = resolution_record(db, spec)
    db.flush()
    save_zone(db, "Centro", box(-70.70, -33.50, -70.50, -33.30), "console")  # edited mid-fan-out
    assert materialize_chunk(db, alert.id, spec, second, second) == 0  # still version 1
    assert alert.resolved["zone_versions"] == {"Centro": 1}
    assert preview(db, spec).zone_versions == {"Centro": 2}


def test_materialize_iterates_chunks_and_reports_versions(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    ids = directory.contacts([INSIDE_CENTRO] * 7)
    alert = directory.alert()
    chunks = list(materialize(db, alert.id, TargetSpec(zones=["Centro"]), chunk_contacts=3))
    assert sum(c.rows for c in chunks) == 7
    assert chunks[0].id_from <= ids[0] and chunks[-1].id_to >= ids[-1]
    assert all(c.zone_versions == {"Centro": 1} for c in chunks)


@pytest.mark.parametrize(("data", "field"), [
    ({"zone": ["x"]}, "target.zone"),
    ({"zones": "Centro"}, "target.zones"),
    ({"groups": [""]}, "target.groups[0]"),
    ({"exclude_numbers": ["hello"]}, "target.exclude_numbers[0]"),
    ({"where": {"attr": "a", "like": 1}}, "target.criteria.like"),
    ({"include_opted_out": "yes"}, "target.include_opted_out"),
    ({"zone_versions": {"A": "2"}}, "target.zone_versions"),
])
def test_bad_spec_names_the_key(data, field):
    with pytest.raises(InvalidInput) as info:
        TargetSpec.from_json(data, region="CL")
    assert field in info.value.details["fields"]


def test_spec_round_trips_and_normalizes_numbers():
    spec = TargetSpec.from_json({"zones": ["A"], "where": {"attr": "x", "eq": 1},
                                 "exclude_numbers": ["9 1234 5678"]}, region="CL")
    assert spec.exclude_numbers == ["+56912345678"]
    assert TargetSpec.from_json(spec.to_json()) == spec


def test_preview_writes_nothing(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    directory.contacts([INSIDE_CENTRO])
    before = db.scalar(text("SELECT count(*) FROM deliveries"))
    preview(db, TargetSpec(zones=["Centro"]), text="x")
    assert db.scalar(text("SELECT count(*) FROM deliveries")) == before


def _msisdn(db, contact_id: int) -> str:
    return db.scalar(text("SELECT msisdn FROM contacts WHERE id = :i"), {"i": contact_id})


def test_preview_scans_each_zone_once_and_never_per_contact(db, directory):
    import json as _json

    from sqlalchemy.dialects import postgresql

    from geo import reach
    from geo.targeting import resolve

    save_zone(db, "Centro", CENTRO, "geojson")
    directory.contacts([INSIDE_CENTRO] * 3)
    directory.group("dinamico", criterion={"attr": "role", "eq": "x"})
    spec = TargetSpec(zones=["Centro"], groups=["dinamico"], criteria={"attr": "a", "exists": False})
    res = resolve(db, spec)
    statement = reach.preview_statement(reach.sources(res.zones, res.groups), None, spec.criteria,
                                        reach.excluded([], []), False)
    compiled = statement.compile(dialect=postgresql.psycopg2.dialect())
    params = {k: _json.dumps(v) if isinstance(v, dict) else v for k, v in compiled.params.items()}
    plan = "\n".join(r[0] for r in db.connection().exec_driver_sql("EXPLAIN " + str(compiled), params))
    assert "SubPlan" not in plan
    # The zone's covering is read twice: its inside ranges, then its boundary ranges.
    assert plan.count(" on zone_cells") == 2, plan


def test_a_personalised_text_is_estimated_for_its_longest_expansion_too(db, directory):
    ids = directory.contacts([None] * 3, attributes={"calle": "Av. Costanera Norte 1234"})
    db.execute(text("UPDATE contacts SET name = CASE WHEN id = :a THEN 'Ana' ELSE 'Łucja Wiśniewska-Fernández' END "
                    "WHERE id = ANY(:ids)"), {"a": ids[0], "ids": ids})
    directory.group("vecinos", ids)
    body = "Hola {nombre|vecino}: corte de agua en {calle|su calle} hasta las 18:00. Responda ACK {codigo}."
    p = preview(db, TargetSpec(groups=["vecinos"]), text=body)
    assert (p.sms["encoding"], p.sms["parts"], p.sms["total_sms"]) == ("gsm7", 1, 3)  # the template as written
    longest = p.sms["longest"]
    assert longest["encoding"] == "ucs2" and longest["parts"] == 2 and longest["total_sms"] == 6
    plain = preview(db, TargetSpec(groups=["vecinos"]), text="Corte de agua hasta las 18:00. ACK {codigo}")
    assert "longest" not in plain.sms  # nothing personal: nothing to bound


def test_a_large_directory_is_previewed_in_two_halves_that_add_up_to_the_whole(committed_db, monkeypatch):
    """Past PREVIEW_SPLIT_MIN_CONTACTS the preview counts two contact id halves at once on two
    connections sharing the caller's snapshot; the breakdowns are the same as in one statement."""
    from alerting.base.db import transaction
    from geo import targeting
    from tests.geo.conftest import Directory

    with transaction() as s:
        d = Directory(s)
        save_zone(s, "Centro", CENTRO, "geojson")
        inside = d.contacts([INSIDE_CENTRO] * 5 + [INSIDE_BOTH] * 2, language="en")
        outside = d.contacts([OUTSIDE] * 6)
        opted = d.contacts([INSIDE_CENTRO] * 2, opted_out=True)
        d.group("brigadas", [inside[0], outside[0], outside[1], opted[0]])
        d.group("salud", criterion={"attr": "role", "eq": "salud"})
        d.contacts([OUTSIDE] * 3, attributes={"role": "salud"})
    spec = TargetSpec(zones=["Centro"], groups=["brigadas", "salud"])
    splits = []
    real_split = targeting._preview_split
    monkeypatch.setattr(targeting, "_preview_split", lambda s: splits.append(real_split(s)) or splits[-1])

    monkeypatch.setattr(targeting, "PREVIEW_SPLIT_MIN_CONTACTS", 10**12)
    with transaction() as s:
        whole = preview(s, spec).to_json()
    monkeypatch.setattr(targeting, "PREVIEW_SPLIT_MIN_CONTACTS", 0)
    with transaction() as s:
        halves = preview(s, spec).to_json()
    assert splits[0] is None and len(splits[1]) == 2
    assert halves == whole
    assert whole["total"] == 7 + 2 + 3 and whole["opted_out_excluded"] == 2
    assert whole["by_language"] == {"en": 7, "es": 5}


def test_a_transaction_that_wrote_contacts_previews_them_in_one_statement(db, directory, monkeypatch):
    """The halves would run on other connections, blind to this transaction's uncommitted rows."""
    from geo import targeting

    monkeypatch.setattr(targeting, "PREVIEW_SPLIT_MIN_CONTACTS", 0)
    save_zone(db, "Centro", CENTRO, "geojson")
    directory.contacts([INSIDE_CENTRO] * 4)
    assert preview(db, TargetSpec(zones=["Centro"])).total == 4


def test_preview_and_fan_out_count_people_not_their_numbers(db, directory):
    """Contacts with two and three numbers count once in the preview, by zone and by group, and
    fan-out writes one delivery each, to its first number (the others are tried only on a final
    failure: broadcast/next_numbers.py)."""
    save_zone(db, "Centro", CENTRO, "geojson")
    people = directory.contacts([INSIDE_CENTRO] * 3)
    directory.group("brigadas", people)
    more = [(people[0], 2, "+56977700012"), (people[1], 2, "+56977700022"), (people[1], 3, "+56977700023")]
    db.execute(text("INSERT INTO contact_numbers (contact_id, position, msisdn) "
                    "SELECT * FROM unnest(CAST(:c AS bigint[]), CAST(:p AS smallint[]), CAST(:m AS varchar[]))"),
               {"c": [c for c, _, _ in more], "p": [p for _, p, _ in more], "m": [m for _, _, m in more]})
    spec = TargetSpec(zones=["Centro"], groups=["brigadas"])
    p = preview(db, spec, text="Evacuar")
    assert p.total == 3  # people: 6 numbers among them
    assert [(z["located"], z["recipients"]) for z in p.by_zone] == [(3, 3)]
    assert p.by_group[0]["recipients"] == 3 and p.sms["total_sms"] == 3
    alert = directory.alert()
    assert everything(db, directory, alert.id, spec) == 3
    sent = db.execute(text("SELECT d.msisdn = c.msisdn FROM deliveries d JOIN contacts c ON c.id = d.contact_id "
                           "WHERE d.alert_id = :a"), {"a": alert.id}).scalars().all()
    assert sent == [True, True, True]
