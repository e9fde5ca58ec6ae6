"""Cell keys and zone coverings: a covering may only decide points the exact test decides the same way.

A wrong covering would show as a point counted inside (or left out) that shapely.intersects_xy
puts on the other side. The points that would catch one lie on the corners and edges of the
covering's cells, just inside and just outside them, on the zone's boundary, in holes, and on
both sides of the antimeridian.
"""

from __future__ import annotations

import bisect
import math
import random

import numpy as np
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box
from sqlalchemy import text

from geo.cells import EPS_DEG, FINE_LEVEL, Covering, cover, load_covering, point_keys
from geo.targeting import TargetSpec, materialize_chunk, preview
from geo.zones import save_zone
from tests.geo.test_targeting_vs_shapely import boundary_points

SCALE = 2**FINE_LEVEL


def _compact(v: int) -> int:
    out = 0
    for bit in range(FINE_LEVEL):
        out |= ((v >> (2 * bit)) & 1) << bit
    return out


def corner(key: int) -> tuple[float, float]:
    """The lower-left corner (lon, lat) of the fine cell with this key."""
    return _compact(key) * 360 / SCALE - 180, _compact(key >> 1) * 180 / SCALE - 90


def near_cell_corners(covering: Covering, rng: random.Random, n: int = 60) -> list[tuple[float, float]]:
    """Points on and just around the corners where the covering's ranges start and end."""
    keys = [k for lo, hi in zip(covering.lo, covering.hi, strict=True) for k in (lo, hi + 1)]
    out = []
    for key in rng.sample(keys, min(n, len(keys))):
        x, y = corner(key)
        for dx in (-1e-10, -1e-12, 0.0, 1e-12, 1e-10):
            for dy in (-1e-10, 0.0, 1e-10):
                if -180 <= x + dx <= 180 and -90 <= y + dy <= 90:
                    out.append((x + dx, y + dy))
    return out


def classify(covering: Covering, keys: np.ndarray) -> list[str]:
    """What the covering says of each key: inside, boundary (exact test) or outside."""
    out = []
    for k in keys.tolist():
        i = bisect.bisect_right(covering.lo, k) - 1
        if i < 0 or k > covering.hi[i]:
            out.append("outside")
        else:
            out.append("inside" if covering.inside[i] else "boundary")
    return out


def assert_covering_agrees(zone: Polygon | MultiPolygon, points: list[tuple[float, float]]) -> None:
    covering = cover(zone)
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    truth = shapely.intersects_xy(zone, xs, ys)
    for (x, y), said, hit in zip(points, classify(covering, point_keys(xs, ys)), truth, strict=True):
        if said == "inside":
            assert hit, f"covering says inside, shapely says outside: ({x!r}, {y!r})"
        elif said == "outside":
            assert not hit, f"covering says outside, shapely says inside: ({x!r}, {y!r})"


@st.composite
def polygons(draw: st.DrawFn) -> Polygon | MultiPolygon:
    """Stars anywhere on the globe, of any size from metres to tens of degrees, with a hole or not."""
    size = 10 ** draw(st.floats(-4.5, 1.3))
    cx = draw(st.floats(-180 + 2 * size, 180 - 2 * size))
    cy = draw(st.floats(-85 + 2 * size, 85 - 2 * size))
    n = draw(st.integers(3, 12))
    angles = sorted(draw(st.lists(st.floats(0, 2 * math.pi, exclude_max=True), min_size=n, max_size=n, unique=True)))
    radii = draw(st.lists(st.floats(0.2, 1.0), min_size=n, max_size=n))
    poly = Polygon([(cx + size * r * math.cos(a), cy + size * r * math.sin(a))
                    for a, r in zip(angles, radii, strict=True)])
    if draw(st.booleans()):
        hole = box(cx - size * 0.05, cy - size * 0.05, cx + size * 0.05, cy + size * 0.05)
        if poly.is_valid and poly.contains(hole):
            poly = Polygon(poly.exterior.coords, [hole.exterior.coords])
    if draw(st.booleans()):
        return MultiPolygon([poly, box(cx + 1.1 * size, cy, cx + 1.5 * size, cy + 0.4 * size)])
    return poly


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(zone=polygons(), seed=st.integers(0, 2**32 - 1))
def test_covering_never_decides_a_point_against_shapely(zone, seed):
    assume(zone.is_valid)
    rng = random.Random(seed)
    minx, miny, maxx, maxy = zone.bounds
    w, h = maxx - minx, maxy - miny
    points = [(rng.uniform(minx - w / 10, maxx + w / 10), rng.uniform(miny - h / 10, maxy + h / 10))
              for _ in range(300)]
    points += boundary_points(zone) + near_cell_corners(cover(zone), rng)
    assert_covering_agrees(zone, points)


def test_covering_decides_most_points_of_a_big_zone_without_the_exact_test():
    angles = [2 * math.pi * i / 1000 for i in range(1000)]
    zone = Polygon([(-70.65 + 0.3 * math.cos(a) * (1 + 0.25 * math.sin(5 * a)), -33.45 + 0.25 * math.sin(a))
                    for a in angles])
    covering = cover(zone)
    rng = np.random.default_rng(3)
    xs, ys = rng.uniform(-71.1, -70.2, 50_000), rng.uniform(-33.8, -33.1, 50_000)
    said = classify(covering, point_keys(xs, ys))
    assert said.count("boundary") < 0.05 * len(said)
    assert_covering_agrees(zone, list(zip(xs.tolist(), ys.tolist(), strict=True))[:5000])


def test_covering_handles_a_zone_split_at_the_antimeridian():
    fiji = MultiPolygon([box(177.0, -19.0, 180.0, -16.0), box(-180.0, -19.0, -178.0, -16.0)])
    points = [(180.0, -17.0), (-180.0, -17.0), (179.999999, -17.5), (-179.999999, -17.5), (0.0, -17.0),
              (178.0, -16.0), (-178.0, -19.0), (-177.999, -17.0), (176.999, -17.0), (180.0, -19.0000001)]
    points += near_cell_corners(cover(fiji), random.Random(5), n=200)
    assert_covering_agrees(fiji, points)
    keys = point_keys(np.array([180.0, -180.0]), np.array([90.0, -90.0]))
    assert keys.tolist() == [(1 << 62) - 1, 0]  # the world's corners: last and first key


def test_sql_cell_key_is_the_documented_z_order_key(db, directory):
    rng = random.Random(11)
    points = [(rng.uniform(-180, 180), rng.uniform(-90, 90)) for _ in range(200)]
    points += [(-180.0, -90.0), (180.0, 90.0), (0.0, 0.0), (-70.65, -33.45), (179.99999999, -0.00000001),
               (5e-324, -5e-324), (-180.0, 90.0)]
    ids = directory.contacts(points)
    rows = dict(db.execute(text("SELECT contact_id, cell FROM contact_locations WHERE contact_id = ANY(:i)"),
                           {"i": ids}).all())
    expected = point_keys(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    assert [rows[i] for i in ids] == expected.tolist()


def test_a_point_outside_wgs84_has_no_key_and_is_never_reached(db, directory):
    everywhere = box(170.0, 0.0, 180.0, 15.0)
    save_zone(db, "Mundo", everywhere, "geojson")
    (odd,) = directory.contacts([None])
    db.execute(text("INSERT INTO contact_locations (contact_id, label, geom) "
                    "VALUES (:c, 'home', ST_SetSRID(ST_MakePoint(200, 10), 4326))"), {"c": odd})
    assert db.scalar(text("SELECT cell FROM contact_locations WHERE contact_id = :c"), {"c": odd}) is None
    alert = directory.alert()
    assert materialize_chunk(db, alert.id, TargetSpec(zones=["Mundo"]), odd, odd) == 0
    assert preview(db, TargetSpec(zones=["Mundo"])).total == 0


def _sql_agrees(db, directory, name: str, zone: Polygon | MultiPolygon, points: list[tuple[float, float]]) -> None:
    ids = directory.contacts(points)
    alert = directory.alert()
    materialize_chunk(db, alert.id, TargetSpec(zones=[name]), ids[0], ids[-1])
    reached = {r[0] for r in directory.deliveries(alert.id)}
    xs, ys = zip(*points, strict=True)
    expected = {cid for cid, hit in zip(ids, shapely.intersects_xy(zone, xs, ys), strict=True) if hit}
    assert reached == expected
    assert preview(db, TargetSpec(zones=[name])).by_zone[0]["located"] == len(expected)


def test_sql_agrees_with_shapely_around_the_cells_of_a_zone_with_a_hole(db, directory):
    outer = [(-70.8 + 0.3 * math.cos(a), -33.5 + 0.2 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 200)[:-1]]
    hole = [(-70.8 + 0.05 * math.cos(a), -33.5 + 0.05 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 40)[:-1]]
    zone = Polygon(outer, [hole])
    save_zone(db, "Anillo", zone, "geojson")
    zone_id, wkb = db.execute(text("SELECT id, ST_AsBinary(geom) FROM zones WHERE name = 'Anillo'")).one()
    covering = load_covering(db, zone_id)
    assert covering == cover(shapely.from_wkb(bytes(wkb)))  # what was stored is what the geometry gives
    assert any(covering.inside) and not all(covering.inside)
    points = near_cell_corners(covering, random.Random(2), n=80) + boundary_points(zone)
    points += [(-70.8, -33.5), (-70.75, -33.5), (-70.8 + 0.3, -33.5), (-70.8 + 0.3 + EPS_DEG, -33.5)]
    _sql_agrees(db, directory, "Anillo", zone, points)


def test_sql_agrees_with_shapely_on_both_sides_of_the_antimeridian(db, directory):
    fiji = MultiPolygon([box(177.0, -19.0, 180.0, -16.0), box(-180.0, -19.0, -178.0, -16.0)])
    save_zone(db, "Fiyi", fiji, "geojson")
    points = [(180.0, -17.0), (-180.0, -17.0), (179.5, -17.5), (-179.5, -17.5), (0.0, -17.0), (178.0, -16.0),
              (-178.0, -19.0), (-177.999, -17.0), (176.999, -17.0), (-178.0 + 1e-12, -17.0)]
    points += near_cell_corners(cover(fiji), random.Random(9), n=40)
    _sql_agrees(db, directory, "Fiyi", fiji, points)


def test_a_point_exactly_on_an_edge_or_a_vertex_is_reached(db, directory):
    zone = Polygon([(-70.7, -33.5), (-70.6, -33.5), (-70.6, -33.4), (-70.7, -33.4)])
    save_zone(db, "Cuadra", zone, "geojson")
    on_edge, on_vertex, outside = (-70.65, -33.5), (-70.6, -33.4), (-70.65, -33.5 - 1e-9)
    ids = directory.contacts([on_edge, on_vertex, outside])
    alert = directory.alert()
    materialize_chunk(db, alert.id, TargetSpec(zones=["Cuadra"]), ids[0], ids[-1])
    assert {r[0] for r in directory.deliveries(alert.id)} == {ids[0], ids[1]}
    assert preview(db, TargetSpec(zones=["Cuadra"])).total == 2


def test_a_zone_version_without_its_covering_gets_one_rather_than_reaching_nobody(db, directory):
    zone = box(-70.7, -33.5, -70.6, -33.4)
    saved = save_zone(db, "Sin celdas", zone, "geojson")
    db.execute(text("DELETE FROM zone_cells WHERE zone_id = :z"), {"z": saved.id})
    directory.contacts([(-70.65, -33.45), (-70.5, -33.45)])
    assert preview(db, TargetSpec(zones=["Sin celdas"])).total == 1
    assert db.scalar(text("SELECT count(*) FROM zone_cells WHERE zone_id = :z"), {"z": saved.id}) > 0
