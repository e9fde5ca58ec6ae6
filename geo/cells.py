"""Cells: a Z-order key for every located point, and each zone version's covering by key ranges.

The key: longitude and latitude quantized to 2^31 steps each (about 2 cm by 1 cm), their bits
interleaved (Morton order) into a bigint. PostgreSQL computes it (`sirena_cell(geom)`, a stored
generated column of contact_locations, migration 0020), so every way a location is written gets
one; it is NULL for a point outside -180..180, -90..90. A cell of level L is an aligned square
of 2^(31-L) by 2^(31-L) steps, and the keys of the points in it are one contiguous range.

The covering of a zone version (table zone_cells, written when the version is saved) is a list
of disjoint key ranges, each either
- inside: every point of its cells, grown by EPS_DEG on every side, intersects the zone, so a
  point whose key falls in it is inside with no exact test;
- boundary: its cells touch the zone's boundary; a point there gets the exact test (geo.reach).
A point whose key is in no range is outside: its cell, grown by EPS_DEG, misses the zone. The
growth absorbs the rounding of the quantization (below 1e-12°), so the covering only ever decides
points that the exact test would decide the same way; the rule stays ST_Intersects (the boundary
counts as inside). Cells are refined near the boundary until about MAX_BOUNDARY_CELLS of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text

FINE_LEVEL = 31  # bits per axis of the key
MAX_LEVEL = 26  # the finest cell refined to: 360°/2^26, about 0.6 m
MAX_BOUNDARY_CELLS = 4096  # refinement stops before the boundary cells would pass this
EPS_DEG = 1e-9  # cells are tested grown by this: far above the quantization's rounding (~1e-13°)

# What migration 0020 installs: the key of a point, in PL/pgSQL (a SQL function with the bits
# spread inline is not inlined in a generated column, and costs 6 µs a row instead of 1.5).
# Names are schema-qualified: a restore evaluates it with an empty search_path.
CELL_FUNCTION_SQL = """
CREATE FUNCTION public.sirena_cell(g public.geometry) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    x float8 := public.st_x(g);
    y float8 := public.st_y(g);
    qx bigint;
    qy bigint;
BEGIN
    IF NOT (x >= -180 AND x <= 180 AND y >= -90 AND y <= 90) THEN
        RETURN NULL;  -- not a WGS84 point (or empty): no zone can hold it
    END IF;
    qx := least(floor((x + 180) / 360 * 2147483648), 2147483647);
    qy := least(floor((y + 90) / 180 * 2147483648), 2147483647);
    qx := (qx | (qx << 16)) & 281470681808895;
    qx := (qx | (qx << 8)) & 71777214294589695;
    qx := (qx | (qx << 4)) & 1085102592571150095;
    qx := (qx | (qx << 2)) & 3689348814741910323;
    qx := (qx | (qx << 1)) & 6148914691236517205;
    qy := (qy | (qy << 16)) & 281470681808895;
    qy := (qy | (qy << 8)) & 71777214294589695;
    qy := (qy | (qy << 4)) & 1085102592571150095;
    qy := (qy | (qy << 2)) & 3689348814741910323;
    qy := (qy | (qy << 1)) & 6148914691236517205;
    RETURN qx | (qy << 1);
END $$
"""


@dataclass(frozen=True)
class Covering:
    """Sorted, disjoint inclusive key ranges [lo, hi], each inside or boundary."""

    lo: list[int]
    hi: list[int]
    inside: list[bool]

    def bounds(self, *, inside: bool) -> list[int]:
        """lo, hi + 1, lo, hi + 1, … of the inside (or boundary) ranges: strictly increasing, since
        adjacent ranges of one kind are merged. With SQL's width_bucket(key, bounds), a key is in
        one of those ranges exactly when its bucket number is odd."""
        out: list[int] = []
        for lo, hi, kind in zip(self.lo, self.hi, self.inside, strict=True):
            if kind is inside:
                out += [lo, hi + 1]
        return out


def _spread(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.uint64)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                        (2, 0x3333333333333333), (1, 0x5555555555555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def morton(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Interleave column i (even bits) and row j (odd bits), as sirena_cell does."""
    return _spread(i) | (_spread(j) << np.uint64(1))


def point_keys(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """sirena_cell in numpy, for points inside the WGS84 bounds (tests compare the two)."""
    scale = float(2**FINE_LEVEL)
    qx = np.minimum(np.floor((np.asarray(lon, float) + 180) / 360 * scale), scale - 1).astype(np.uint64)
    qy = np.minimum(np.floor((np.asarray(lat, float) + 90) / 180 * scale), scale - 1).astype(np.uint64)
    return morton(qx, qy).astype(np.int64)


def _boxes(level: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    w, h = 360.0 / 2**level, 180.0 / 2**level
    return shapely.box(-180 + i * w - EPS_DEG, -90 + j * h - EPS_DEG,
                       -180 + (i + 1) * w + EPS_DEG, -90 + (j + 1) * h + EPS_DEG)


def _start_cells(bounds: tuple[float, float, float, float]) -> tuple[int, np.ndarray, np.ndarray]:
    """The coarsest level at which the zone's box spans at most 2 by 2 cells, and those cells."""
    minx, miny, maxx, maxy = bounds
    span = max((maxx - minx) / 360, (maxy - miny) / 180, 2.0**-MAX_LEVEL)
    level = int(min(MAX_LEVEL, max(0, np.floor(-np.log2(span)))))
    n = 2**level

    def cells(lo: float, hi: float, size: float, origin: float) -> np.ndarray:
        first = max(0, int(np.floor((lo - EPS_DEG - origin) / size)))
        last = min(n - 1, int(np.floor((hi + EPS_DEG - origin) / size)))
        return np.arange(first, last + 1)

    ii, jj = np.meshgrid(cells(minx, maxx, 360 / n, -180), cells(miny, maxy, 180 / n, -90))
    return level, ii.ravel(), jj.ravel()


def cover(zone: Any, *, max_boundary_cells: int = MAX_BOUNDARY_CELLS) -> Covering:
    """The covering of a (Multi)Polygon in lon/lat: inside and boundary key ranges, merged."""
    shapely.prepare(zone)
    level, i, j = _start_cells(zone.bounds)
    found: list[tuple[np.ndarray, np.ndarray, bool]] = []  # (lo keys, hi keys, inside)
    while len(i):
        boxes = _boxes(level, i, j)
        hit = shapely.intersects(zone, boxes)
        full = np.zeros(len(i), bool)
        full[hit] = shapely.covers(zone, boxes[hit])
        edge = hit & ~full
        span = np.uint64(4 ** (FINE_LEVEL - level))
        for chosen, inside in ((full, True), (edge, False)):
            if inside or level == MAX_LEVEL or 2 * edge.sum() > max_boundary_cells:
                lo = morton(i[chosen], j[chosen]) * span
                found.append((lo, lo + span - np.uint64(1), inside))
        if level == MAX_LEVEL or 2 * edge.sum() > max_boundary_cells:
            break
        i, j = i[edge], j[edge]
        i = np.concatenate([2 * i, 2 * i + 1, 2 * i, 2 * i + 1])
        j = np.concatenate([2 * j, 2 * j, 2 * j + 1, 2 * j + 1])
        level += 1
    return _merged(found)


def _merged(found: list[tuple[np.ndarray, np.ndarray, bool]]) -> Covering:
    if not found:
        return Covering([], [], [])
    lo = np.concatenate([f[0] for f in found]).astype(np.int64)
    hi = np.concatenate([f[1] for f in found]).astype(np.int64)
    inside = np.concatenate([np.full(len(f[0]), f[2]) for f in found])
    order = np.argsort(lo, kind="stable")
    out = Covering([], [], [])
    for a, b, k in zip(lo[order].tolist(), hi[order].tolist(), inside[order].tolist(), strict=True):
        if out.lo and out.hi[-1] + 1 == a and out.inside[-1] == k:
            out.hi[-1] = b
        else:
            out.lo.append(a)
            out.hi.append(b)
            out.inside.append(k)
    return out


def write_covering(connection: Any, zone_id: int) -> int:
    """(Re)write zone_cells for one zone version from its stored geometry; returns how many ranges.

    `connection` is a Session or a Connection (migration 0020 back-fills with it)."""
    wkb = connection.execute(text("SELECT ST_AsBinary(geom) FROM zones WHERE id = :z"), {"z": zone_id}).scalar_one()
    covering = cover(shapely.from_wkb(bytes(wkb)))
    connection.execute(text("DELETE FROM zone_cells WHERE zone_id = :z"), {"z": zone_id})
    connection.execute(text(
        "INSERT INTO zone_cells (zone_id, lo, hi, inside) "
        "SELECT :z, lo, hi, inside FROM unnest(CAST(:lo AS bigint[]), CAST(:hi AS bigint[]), "
        "CAST(:inside AS boolean[])) AS t(lo, hi, inside)"),
        {"z": zone_id, "lo": covering.lo, "hi": covering.hi, "inside": covering.inside})
    return len(covering.lo)


def load_covering(connection: Any, zone_id: int) -> Covering:
    rows = connection.execute(text("SELECT lo, hi, inside FROM zone_cells WHERE zone_id = :z ORDER BY lo"),
                              {"z": zone_id}).all()
    return Covering([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
