"""Zone geometry checks: each refusal names where and why; warnings for swapped coordinates."""

from __future__ import annotations

import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from alerting.base.errors import InvalidInput
from geo.validation import area_km2, check_geometry, describe_invalidity, ring_from_positions

SANTIAGO = box(-70.70, -33.50, -70.60, -33.40)


def reason(exc: pytest.ExceptionInfo[InvalidInput]) -> str:
    return " | ".join(f"{k}: {v}" for k, v in exc.value.details["fields"].items())


def test_self_intersection_is_refused_with_its_location_as_lat_lon():
    bowtie = Polygon([(-70.70, -33.50), (-70.60, -33.40), (-70.60, -33.50), (-70.70, -33.40), (-70.70, -33.50)])
    with pytest.raises(InvalidInput) as info:
        check_geometry(bowtie)
    assert "self-intersection at -33.4500, -70.6500" in reason(info)


def test_repair_splits_a_bowtie_and_says_what_changed():
    bowtie = Polygon([(-70.70, -33.50), (-70.60, -33.40), (-70.60, -33.50), (-70.70, -33.40), (-70.70, -33.50)])
    checked = check_geometry(bowtie, repair=True)
    assert checked.geometry.is_valid and len(checked.geometry.geoms) == 2
    assert "make_valid turned it into 2 polygon(s)" in checked.repairs[0]
    assert "self-intersection at -33.4500, -70.6500" in checked.repairs[0]


def test_ring_with_fewer_than_four_positions_is_refused():
    with pytest.raises(InvalidInput) as info:
        ring_from_positions([[-70.7, -33.5], [-70.6, -33.4], [-70.7, -33.5]], "r", repair=False, repairs=[])
    assert "3 position(s)" in reason(info)


def test_unclosed_ring_is_refused_or_closed_by_repair():
    open_ring = [[-70.7, -33.5], [-70.6, -33.5], [-70.6, -33.4], [-70.7, -33.4]]
    with pytest.raises(InvalidInput) as info:
        ring_from_positions(open_ring, "coordinates[0]", repair=False, repairs=[])
    assert "coordinates[0]: ring is not closed" in reason(info)
    repairs: list[str] = []
    ring = ring_from_positions(open_ring, "coordinates[0]", repair=True, repairs=repairs)
    assert ring[0] == ring[-1] and "closed the ring" in repairs[0]


@pytest.mark.parametrize(("position", "words"), [
    ([-190.0, -33.0], "outside WGS84 bounds"),
    ([-33.45, -170.65], "latitude and longitude swapped?"),
    (["x", -33.0], "longitude must be a finite number"),
    ([float("nan"), -33.0], "finite"),
    ([-70.0], "expected a position"),
])
def test_bad_positions_are_refused_naming_the_position(position, words):
    ring = [[-70.7, -33.5], position, [-70.6, -33.4], [-70.7, -33.5]]
    with pytest.raises(InvalidInput) as info:
        ring_from_positions(ring, "coordinates[0]", repair=False, repairs=[])
    assert "coordinates[0][1]" in info.value.details["fields"]
    assert words in reason(info)


def test_absurdly_small_and_large_zones_are_refused_and_large_ones_warned():
    with pytest.raises(InvalidInput, match="smaller than 100 m²"):
        check_geometry(box(-70.65, -33.45, -70.64999, -33.44999))
    with pytest.raises(InvalidInput, match="more than 5,000,000 km²"):
        check_geometry(box(-100, -60, 0, 30))
    big = check_geometry(box(-72, -40, -68, -33))
    assert any("larger than most alert areas" in w for w in big.warnings)


def test_polygon_spanning_the_antimeridian_is_refused_and_a_split_one_accepted():
    with pytest.raises(InvalidInput, match="antimeridian"):
        check_geometry(Polygon([(179, -17), (-179, -17), (-179, -16), (179, -16), (179, -17)]))
    split = MultiPolygon([box(179, -17, 180, -16), box(-180, -17, -179, -16)])
    assert check_geometry(split).geometry.equals(split)


def test_swapped_coordinates_are_warned_against_the_region():
    swapped = box(-33.50, -70.70, -33.40, -70.60)  # lat,lon written as lon,lat
    warnings = check_geometry(swapped, region="CL").warnings
    assert any("swapped it would lie inside" in w for w in warnings)
    assert check_geometry(SANTIAGO, region="CL").warnings == []
    elsewhere = check_geometry(box(2.30, 48.80, 2.40, 48.90), region="CL").warnings
    assert any("lies outside CL" in w and "swapped" not in w for w in elsewhere)


def test_area_on_the_sphere_matches_postgis_geography(db):
    from sqlalchemy import text

    for shape in (SANTIAGO, box(-72, -40, -68, -33)):
        postgis = db.scalar(text("SELECT ST_Area(ST_GeomFromText(:w, 4326)::geography, false) / 1e6"),
                            {"w": shape.wkt})
        assert area_km2(shape) == pytest.approx(postgis, rel=0.005)


def test_describe_invalidity_reads_ring_self_intersection():
    ring = Polygon([(0, 0), (2, 0), (2, 2), (1, 0), (0, 2), (0, 0)])
    assert describe_invalidity(ring).startswith("ring self-intersection at") or "self-intersection" in \
        describe_invalidity(ring)
