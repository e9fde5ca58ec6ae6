"""Zones: GeoJSON and CAP in, versions kept, GeoJSON out, parts for the index."""

from __future__ import annotations

import json
import math

import pytest
from shapely.geometry import box, mapping, shape
from sqlalchemy import func, select, text

from alerting.base.errors import InvalidInput, NotFound, Refused
from alerting.base.models import AlertState
from alerting.base.models.zones import Zone, ZonePart
from audit.actor import Actor
from geo.parts import MAX_VERTICES
from geo.targeting import TargetSpec, resolve
from geo.zones import (
    delete_zone,
    import_geojson,
    list_zones,
    parse_cap_circle,
    parse_cap_polygon,
    save_zone,
    zone_geojson,
)

CENTRO = box(-70.67, -33.46, -70.63, -33.43)


def feature(geom, **props):
    return {"type": "Feature", "geometry": mapping(geom), "properties": props}


def test_import_feature_collection_makes_one_zone_per_named_feature(db):
    fc = {"type": "FeatureCollection", "features": [feature(CENTRO, name="Centro"),
                                                    feature(box(-70.6, -33.4, -70.5, -33.3), nombre="Norte")]}
    results = import_geojson(db, json.dumps(fc), region="CL")
    assert [(r.name, r.version, r.created) for r in results] == [("Centro", 1, True), ("Norte", 1, True)]
    assert results[0].warnings == []


def test_import_plain_polygon_and_multipolygon_need_a_name(db):
    with pytest.raises(InvalidInput) as info:
        import_geojson(db, mapping(CENTRO))
    assert "geometry.properties.name" in info.value.details["fields"]
    multi = {"type": "MultiPolygon", "coordinates": [mapping(CENTRO)["coordinates"],
                                                     mapping(box(-70.6, -33.4, -70.5, -33.3))["coordinates"]]}
    (result,) = import_geojson(db, multi, name="Dos")
    assert result.name == "Dos" and result.vertices == 10


def test_name_option_merges_every_feature_into_one_zone(db):
    fc = {"type": "FeatureCollection", "features": [feature(box(0.0, 0.0, 0.1, 0.1), name="a"),
                                                    feature(box(0.05, 0.0, 0.15, 0.1), name="b")]}
    (result,) = import_geojson(db, fc, name="Unida")
    assert result.area_km2 == pytest.approx(0.15 * 0.1 * 111.195**2, rel=0.01)


def test_import_is_all_or_nothing_and_names_every_bad_feature(db):
    bowtie = {"type": "Polygon", "coordinates": [[[-70.7, -33.5], [-70.6, -33.4], [-70.6, -33.5],
                                                  [-70.7, -33.4], [-70.7, -33.5]]]}
    fc = {"type": "FeatureCollection", "features": [
        feature(CENTRO, name="Bien"),
        {"type": "Feature", "geometry": bowtie, "properties": {"name": "Mala"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, "properties": {"name": "P"}},
    ]}
    with pytest.raises(InvalidInput) as info:
        import_geojson(db, fc)
    fields = info.value.details["fields"]
    assert "self-intersection at -33.4500, -70.6500" in fields["features[1].geometry"]
    assert "Point" in fields["features[2].geometry.type"]
    assert db.scalar(select(func.count()).select_from(Zone)) == 0


def test_repair_imports_and_reports_the_change(db):
    bowtie = {"type": "Polygon", "coordinates": [[[-70.7, -33.5], [-70.6, -33.4], [-70.6, -33.5],
                                                  [-70.7, -33.4]]]}  # also unclosed
    (result,) = import_geojson(db, bowtie, name="Reparada", repair=True)
    assert any("closed the ring" in r for r in result.repairs)
    assert any("make_valid turned it into 2 polygon(s)" in r for r in result.repairs)


@pytest.mark.parametrize(("data", "field"), [
    ("{nope", "geojson"), ({"type": "Topology"}, "type"), ({"features": []}, "geojson"),
])
def test_malformed_geojson_is_refused_naming_the_field(db, data, field):
    with pytest.raises(InvalidInput) as info:
        import_geojson(db, data, name="x")
    assert field in info.value.details["fields"]


def test_editing_a_zone_makes_a_new_version_and_keeps_the_old(db):
    first = save_zone(db, "Costa", CENTRO, "geojson")
    same = save_zone(db, "Costa", CENTRO, "console")
    assert same.id == first.id and same.version == 1
    second = save_zone(db, "Costa", box(-70.7, -33.5, -70.6, -33.4), "console")
    assert second.version == 2 and second.is_current
    db.refresh(first)
    assert not first.is_current
    assert zone_geojson(db, "Costa", 1)["properties"]["version"] == 1
    assert shape(zone_geojson(db, "Costa")["geometry"]).equals(box(-70.7, -33.5, -70.6, -33.4))
    assert list_zones(db) == [pytest.approx(list_zones(db)[0])]
    assert list_zones(db)[0]["versions"] == 2


def test_export_round_trips_the_geometry(db):
    save_zone(db, "Ida", CENTRO, "geojson")
    exported = zone_geojson(db, "Ida")
    (again,) = import_geojson(db, exported)
    assert again.name == "Ida" and not again.created


def test_unknown_zone_is_not_found_by_name(db):
    with pytest.raises(NotFound, match='zone "Nada"'):
        zone_geojson(db, "Nada")


def test_large_zones_are_subdivided_into_small_parts(db):
    angles = [2 * math.pi * i / 1000 for i in range(1000)]
    ring = [(-70.65 + 0.1 * math.cos(a) * (1 + 0.2 * math.sin(7 * a)), -33.45 + 0.1 * math.sin(a)) for a in angles]
    zone = save_zone(db, "Grande", shape({"type": "Polygon", "coordinates": [[*ring, ring[0]]]}), "geojson")
    parts = db.scalar(select(func.count()).select_from(ZonePart).where(ZonePart.zone_id == zone.id))
    assert parts > 10
    biggest = db.scalar(select(func.max(func.ST_NPoints(ZonePart.geom))).where(ZonePart.zone_id == zone.id))
    assert biggest <= MAX_VERTICES + 1
    covered = db.scalar(text("SELECT ST_Area(ST_Union(p.geom)) / ST_Area(z.geom) FROM zone_parts p JOIN zones z "
                             "ON z.id = p.zone_id WHERE z.id = :z GROUP BY z.geom"), {"z": zone.id})
    assert covered == pytest.approx(1.0, abs=1e-9)


def test_cap_polygon_is_lat_lon_and_must_be_closed():
    poly = parse_cap_polygon("-33.46,-70.67 -33.46,-70.63 -33.43,-70.63 -33.43,-70.67 -33.46,-70.67")
    assert poly.equals(CENTRO)
    with pytest.raises(InvalidInput, match="not closed"):
        parse_cap_polygon("-33.46,-70.67 -33.46,-70.63 -33.43,-70.63 -33.43,-70.67")
    with pytest.raises(InvalidInput) as info:
        parse_cap_polygon("-33.46,-70.67 -33.46;-70.63 -33.43,-70.63 -33.46,-70.67")
    assert "polygon point 2" in info.value.details["fields"]["polygon"]
    with pytest.raises(InvalidInput, match="self-intersection"):
        parse_cap_polygon("-33.5,-70.7 -33.4,-70.6 -33.5,-70.6 -33.4,-70.7 -33.5,-70.7")


@pytest.mark.parametrize("radius_km", [0.5, 10.0, 250.0])
def test_cap_circle_is_geodesic_not_degrees(db, radius_km):
    circle = parse_cap_circle(f"-33.45,-70.65 {radius_km}")
    distances = db.execute(text(
        "SELECT min(d), max(d) FROM (SELECT ST_Distance((dp).geom::geography, "
        "ST_SetSRID(ST_MakePoint(-70.65, -33.45), 4326)::geography, false) / 1000 AS d "
        "FROM ST_DumpPoints(ST_GeomFromText(:w, 4326)) AS dp) t"), {"w": circle.wkt}).one()
    assert distances[0] == pytest.approx(radius_km, rel=1e-3)
    assert distances[1] == pytest.approx(radius_km, rel=1e-3)
    area = db.scalar(text("SELECT ST_Area(ST_GeomFromText(:w, 4326)::geography, false) / 1e6"), {"w": circle.wkt})
    assert area == pytest.approx(math.pi * radius_km**2, rel=0.01)


@pytest.mark.parametrize(("value", "words"), [
    ("-33.45,-70.65 0", "more than 0"), ("-33.45,-70.65 -3", "more than 0"), ("-33.45,-70.65", "radius_km"),
    ("-33.45,-70.65 abc", "not a number"), ("-95,-70.65 5", "latitude must be"), ("0,179.99 50", "antimeridian"),
])
def test_bad_cap_circles_are_refused(value, words):
    with pytest.raises(InvalidInput) as info:
        parse_cap_circle(value)
    assert words in info.value.details["fields"]["circle"] or words in str(info.value)


# --- deleting a zone: versions kept, refused while in use ---------------------------------------

DELETER = Actor(kind="operator", name="admin", roles=frozenset({"admin"}), interface="console")


def test_deleting_a_zone_retires_it_but_keeps_every_version_a_finished_alert_pinned(db, factories):
    save_zone(db, "Costa", CENTRO, "geojson", actor=DELETER)
    save_zone(db, "Costa", box(-70.7, -33.5, -70.6, -33.4), "console", actor=DELETER)
    factories.AlertFactory(state=AlertState.COMPLETED, target={"zones": ["Costa"], "zone_versions": {"Costa": 2}})
    retired = delete_zone(db, "Costa", actor=DELETER)
    assert retired.version == 2
    assert list_zones(db) == []
    with pytest.raises(NotFound):
        zone_geojson(db, "Costa")
    assert db.scalar(select(func.count()).select_from(Zone).where(Zone.name == "Costa")) == 2
    assert zone_geojson(db, "Costa", 2)["properties"]["is_current"] is False  # history still draws it
    pinned = resolve(db, TargetSpec(zones=["Costa"], zone_versions={"Costa": 2}))
    assert [(z.name, z.version) for z in pinned.zones] == [("Costa", 2)]
    with pytest.raises(NotFound):
        resolve(db, TargetSpec(zones=["Costa"]))  # a new target cannot name it
    payload = db.scalar(text("SELECT payload FROM audit.events WHERE action = 'zone.deleted'"))
    assert payload == {"name": "Costa", "version": 2, "versions_kept": 2}
    again = save_zone(db, "Costa", CENTRO, "geojson")  # the name can be used again: next version
    assert again.version == 3 and again.is_current


def test_deleting_a_zone_is_refused_while_an_unfinished_alert_names_it(db, factories):
    save_zone(db, "Centro", CENTRO, "geojson")
    sending = factories.AlertFactory(state=AlertState.SENDING, target={"zones": ["Centro"]})
    with pytest.raises(Refused) as err:
        delete_zone(db, "Centro", actor=DELETER)
    assert f"{sending.reference} (sending)" in err.value.message
    assert err.value.details["fields"]["zone"] == f"still used by alert {sending.reference} (sending)"
    assert list_zones(db)[0]["name"] == "Centro"
    sending.state = AlertState.CANCELLED
    db.flush()
    delete_zone(db, "Centro", actor=DELETER)
    with pytest.raises(NotFound):
        delete_zone(db, "Centro", actor=DELETER)


def test_saving_a_new_zone_version_is_audited(db):
    save_zone(db, "Norte", CENTRO, "console", actor=DELETER)
    save_zone(db, "Norte", CENTRO, "console", actor=DELETER)  # same geometry: nothing new, nothing audited
    save_zone(db, "Norte", box(-70.7, -33.5, -70.6, -33.4), "console", actor=DELETER)
    payloads = db.scalars(text("SELECT payload FROM audit.events WHERE action = 'zone.saved' ORDER BY id")).all()
    assert [(p["version"], p["replaced_version"]) for p in payloads] == [(1, None), (2, 1)]
