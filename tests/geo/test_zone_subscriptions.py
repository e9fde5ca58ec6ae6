"""A zone reaches the residents who registered for it by SMS (no location) through their
subscription, once each, beside the located contacts; preview and fan-out agree."""

from __future__ import annotations

from sqlalchemy import text

from geo import reach
from geo.targeting import TargetSpec, contact_id_ranges, materialize_chunk, preview, resolve
from geo.zones import save_zone
from tests.geo.test_targeting import CENTRO, INSIDE_CENTRO, NORTE, OUTSIDE


def subscribe(db, zone: str, contact_ids: list[int], label: str = "registered") -> None:
    db.execute(text("INSERT INTO zone_subscriptions (zone_name, contact_id, label) "
                    "SELECT :z, unnest(CAST(:c AS bigint[])), :l"), {"z": zone, "c": contact_ids, "l": label})


def everything(db, alert_id, spec, chunk: int = 2) -> int:
    return sum(materialize_chunk(db, alert_id, spec, lo, hi) for lo, hi in contact_id_ranges(db, chunk))


def test_a_zone_reaches_its_subscribers_once_with_the_located_contacts(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    save_zone(db, "Norte", NORTE, "geojson")
    located = directory.contacts([INSIDE_CENTRO, INSIDE_CENTRO])
    outside = directory.contacts([OUTSIDE])
    registered = directory.contacts([None, None])  # texted ALTA CENTRO: no location
    also_located = directory.contacts([INSIDE_CENTRO])  # subscribed and living there: reached once
    (elsewhere,) = directory.contacts([None])  # registered for Norte
    (gone,) = directory.contacts([None], opted_out=True)
    subscribe(db, "Centro", [*registered, *also_located, gone])
    subscribe(db, "Norte", [elsewhere])
    spec = TargetSpec(zones=["Centro"])

    p = preview(db, spec)
    assert p.total == 2 + 2 + 1  # located, registered, both
    assert p.opted_out_excluded == 1
    assert [(z["name"], z["located"], z["recipients"], z["subscribed"]) for z in p.by_zone] == [
        ("Centro", 6, 5, 4)]

    alert = directory.alert()
    assert everything(db, alert.id, spec) == 5
    reached = [c for c, _, _ in directory.deliveries(alert.id)]
    assert sorted(reached) == sorted([*located, *registered, *also_located])
    assert outside[0] not in reached and elsewhere not in reached


def test_two_zones_and_a_group_reach_a_subscriber_once(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    save_zone(db, "Norte", NORTE, "geojson")
    (resident,) = directory.contacts([None])
    subscribe(db, "Centro", [resident])
    subscribe(db, "Norte", [resident])
    directory.group("vecinos", [resident])
    spec = TargetSpec(zones=["Centro", "Norte"], groups=["vecinos"])
    assert preview(db, spec).total == 1
    alert = directory.alert()
    assert everything(db, alert.id, spec) == 1


def test_a_subscription_counts_as_a_place_labelled_registered(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    (resident,) = directory.contacts([None])
    subscribe(db, "Centro", [resident])
    assert preview(db, TargetSpec(zones=["Centro"], location_labels=["home"])).total == 0
    assert preview(db, TargetSpec(zones=["Centro"], location_labels=["home", "registered"])).total == 1


def test_a_subscription_by_name_holds_across_the_zones_versions(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    (resident,) = directory.contacts([None])
    subscribe(db, "Centro", [resident])
    save_zone(db, "Centro", NORTE, "geojson")  # redrawn: version 2
    p = preview(db, TargetSpec(zones=["Centro"]))
    assert (p.zone_versions, p.total) == ({"Centro": 2}, 1)


def test_without_subscribers_the_statements_are_those_of_located_points_alone(db, directory):
    save_zone(db, "Centro", CENTRO, "geojson")
    res = resolve(db, TargetSpec(zones=["Centro"]))
    assert res.zones[0].subscribers == 0
    sql = str(reach.preview_statement(reach.sources(res.zones, []), None, None, reach.excluded([], []), False))
    assert "zone_subscriptions" not in sql
    (resident,) = directory.contacts([None])
    subscribe(db, "Centro", [resident])
    res = resolve(db, TargetSpec(zones=["Centro"]))
    sql = str(reach.preview_statement(reach.sources(res.zones, []), None, None, reach.excluded([], []), False))
    assert res.zones[0].subscribers == 1 and "zone_subscriptions" in sql
