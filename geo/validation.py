"""Zone geometry checks: rings, WGS84 bounds, validity (where it fails), size, antimeridian, lat/lon swap.

Coordinates are (lon, lat) as in GeoJSON; messages give places as "lat, lon", the way people read
them off a map. Rules, used the same way for GeoJSON and CAP input:

- a ring needs at least 4 positions and must be closed (first = last); `repair` closes it;
- longitudes within -180..180 and latitudes within -90..90, or the zone is refused;
- an invalid polygon is refused with shapely's reason and where (`explain_validity`); `repair`
  runs `make_valid`, keeps the polygonal result and says what changed;
- antimeridian: one polygon spanning more than 180° of longitude is refused (it almost always
  means a ring that crosses ±180°); a zone split at ±180° into a MultiPolygon, as RFC 7946
  §3.1.9 asks, is accepted and works as is;
- size: under 100 m² or over 5,000,000 km² is refused, over 200,000 km² is warned;
- region: a zone outside the configured country's rough bounding box is warned, saying so
  when swapping latitude and longitude would put it inside (CAP writes "lat,lon", GeoJSON lon,lat).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity, make_valid

from alerting.base.errors import InvalidInput

EARTH_RADIUS_KM = 6371.0088
MIN_AREA_KM2 = 0.0001  # 100 m²
MAX_AREA_KM2 = 5_000_000.0
WARN_AREA_KM2 = 200_000.0
MAX_VERTICES = 200_000

# Rough boxes (lon_min, lat_min, lon_max, lat_max) per region: enough to catch swapped coordinates.
REGION_BOXES: dict[str, list[tuple[float, float, float, float]]] = {
    "CL": [(-76.0, -56.6, -66.0, -17.4), (-109.5, -27.3, -109.1, -27.0), (-80.9, -33.9, -78.7, -33.5)],
    "AR": [(-73.6, -55.1, -53.6, -21.7)],
    "PE": [(-81.4, -18.4, -68.6, 0.0)],
    "BO": [(-69.7, -22.9, -57.4, -9.6)],
    "UY": [(-58.5, -35.0, -53.0, -30.0)],
    "PY": [(-62.7, -27.6, -54.2, -19.2)],
    "BR": [(-74.0, -33.8, -28.8, 5.3)],
    "CO": [(-79.1, -4.3, -66.8, 13.4)],
    "EC": [(-81.1, -5.0, -75.2, 1.5), (-92.1, -1.5, -89.2, 0.7)],
    "VE": [(-73.4, 0.6, -59.8, 12.3)],
    "MX": [(-117.2, 14.5, -86.7, 32.8)],
    "ES": [(-9.4, 35.9, 4.4, 43.8), (-18.2, 27.6, -13.4, 29.5)],
    "US": [(-125.0, 24.5, -66.9, 49.4), (-170.0, 51.0, -129.9, 71.5), (-160.3, 18.9, -154.8, 22.3)],
}

_LOCATED = re.compile(r"^(?P<reason>.*?)\[(?P<x>[-+0-9.eE]+) (?P<y>[-+0-9.eE]+)\]$")


@dataclass
class CheckedGeometry:
    """A zone geometry that passed the checks, with what was warned and what `repair` changed."""

    geometry: MultiPolygon
    warnings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    @property
    def area_km2(self) -> float:
        return area_km2(self.geometry)


def place(lon: float, lat: float) -> str:
    """A point as people read it: "lat, lon" with 4 decimals (about 10 m)."""
    return f"{lat:.4f}, {lon:.4f}"


def ring_from_positions(positions: object, path: str, *, repair: bool, repairs: list[str]) -> list[tuple[float, float]]:
    """Check one ring of [lon, lat] positions; return it as tuples. Raises InvalidInput naming `path`."""
    if not isinstance(positions, list | tuple):
        raise invalid(path, "expected a list of [lon, lat] positions")
    ring: list[tuple[float, float]] = []
    for i, pos in enumerate(positions):
        ring.append(_position(pos, f"{path}[{i}]"))
    if len(ring) >= 2 and ring[0] != ring[-1]:
        if not repair:
            raise invalid(path, f"ring is not closed: it starts at {place(*ring[0])} and ends at "
                       f"{place(*ring[-1])} (the last position must repeat the first)")
        ring.append(ring[0])
        repairs.append(f"{path}: closed the ring by repeating its first position {place(*ring[0])}")
    if len(ring) < 4:
        raise invalid(path, f"ring has {len(ring)} position(s); a closed ring needs at least 4 (first = last)")
    if len({p for p in ring}) < 3:
        raise invalid(path, "ring has fewer than 3 distinct positions: it encloses no area")
    return ring


def _position(pos: object, path: str) -> tuple[float, float]:
    if not isinstance(pos, list | tuple) or len(pos) < 2:
        raise invalid(path, f"expected a position [lon, lat], got {pos!r:.60}")
    lon, lat = pos[0], pos[1]
    for value, what in ((lon, "longitude"), (lat, "latitude")):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise invalid(path, f"{what} must be a finite number, got {value!r:.40}")
    lon, lat = float(lon), float(lat)
    if not -180.0 <= lon <= 180.0 or not -90.0 <= lat <= 90.0:
        hint = " (latitude and longitude swapped?)" if -90 <= lon <= 90 and -180 <= lat <= 180 else ""
        raise invalid(path, f"[{lon}, {lat}] is outside WGS84 bounds: longitude -180..180, "
                   f"latitude -90..90{hint}")
    return lon, lat


def check_geometry(
    geometry: BaseGeometry, *, path: str = "polygon", repair: bool = False, region: str | None = None
) -> CheckedGeometry:
    """Validate a Polygon/MultiPolygon in lon/lat and return it as a MultiPolygon with warnings.

    Raises InvalidInput with `fields={path: reason}` for: wrong type, invalid geometry (reason and
    location; unless `repair`), antimeridian-crossing polygon, absurd size, too many vertices.
    """
    checked = CheckedGeometry(MultiPolygon())
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise invalid(path, f"expected a Polygon or MultiPolygon, got {geometry.geom_type}")
    if geometry.is_empty:
        raise invalid(path, "the geometry is empty")
    geometry = shapely.force_2d(geometry)
    vertices = shapely.get_num_coordinates(geometry)
    if vertices > MAX_VERTICES:
        raise invalid(path, f"{vertices} vertices; at most {MAX_VERTICES} (simplify the outline)")
    if not geometry.is_valid:
        reason = describe_invalidity(geometry)
        if not repair:
            raise invalid(path, f"{reason} (use --repair to fix it with make_valid)")
        geometry = _repaired(geometry, path, reason, checked.repairs)
    multi = geometry if isinstance(geometry, MultiPolygon) else MultiPolygon([geometry])
    for i, poly in enumerate(multi.geoms):
        min_x, _, max_x, _ = poly.bounds
        if max_x - min_x > 180.0:
            raise invalid(path, f"polygon {i + 1} spans {max_x - min_x:.1f}° of longitude: it probably crosses "
                       "the antimeridian; split it at ±180° into a MultiPolygon (RFC 7946 §3.1.9)")
    area = area_km2(multi)
    if area < MIN_AREA_KM2:
        raise invalid(path, f"area is {area * 1e6:.1f} m², smaller than 100 m²: coordinates in the wrong unit "
                   "or a degenerate outline?")
    if area > MAX_AREA_KM2:
        raise invalid(path, f"area is {area:,.0f} km², more than 5,000,000 km²: swapped coordinates or a ring "
                   "crossing the antimeridian?")
    if area > WARN_AREA_KM2:
        checked.warnings.append(f"{path}: area is {area:,.0f} km², larger than most alert areas")
    warning = region_warning(multi, region)
    if warning:
        checked.warnings.append(f"{path}: {warning}")
    checked.geometry = multi
    return checked


def describe_invalidity(geometry: BaseGeometry) -> str:
    """explain_validity as a sentence: "self-intersection at -33.4512, -70.6603"."""
    raw = explain_validity(geometry)
    match = _LOCATED.match(raw)
    if not match:
        return raw.lower()
    reason = match["reason"].strip().lower()
    return f"{reason} at {place(float(match['x']), float(match['y']))}"


def _repaired(geometry: BaseGeometry, path: str, reason: str, repairs: list[str]) -> BaseGeometry:
    before = area_km2(geometry)
    fixed = make_valid(geometry)
    polygons = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type in ("Polygon", "MultiPolygon")]
    flat: list[Polygon] = []
    for g in polygons:
        flat.extend(g.geoms if isinstance(g, MultiPolygon) else [g])
    if not flat:
        raise invalid(path, f"{reason}; make_valid left no area to keep")
    result = MultiPolygon(flat)
    dropped = "" if len(polygons) == len(getattr(fixed, "geoms", [fixed])) else "; dropped non-polygon pieces"
    repairs.append(f"{path}: {reason}: make_valid turned it into {len(flat)} polygon(s), area "
                   f"{before:.3f} km² → {area_km2(result):.3f} km²{dropped}")
    return result


def area_km2(geometry: BaseGeometry) -> float:
    """Area on the sphere (km²), holes subtracted; accurate to well under 1% for alert-sized zones."""
    polys: Sequence[Polygon] = getattr(geometry, "geoms", [geometry])
    total = 0.0
    for poly in polys:
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        total += abs(_ring_area(poly.exterior.coords))
        total -= sum(abs(_ring_area(r.coords)) for r in poly.interiors)
    return total


def _ring_area(coords: Sequence[Sequence[float]]) -> float:
    # Chamberlain & Duquette (2007): spherical polygon area from lon/lat.
    pts = list(coords)
    n = len(pts)
    if n < 4:
        return 0.0
    acc = 0.0
    for i in range(n - 1):
        lon1, lat1 = pts[i][0], pts[i][1]
        lon2, lat2 = pts[i + 1][0], pts[i + 1][1]
        acc += math.radians(lon2 - lon1) * (2 + math.sin(math.radians(lat1)) + math.sin(math.radians(lat2)))
    return acc * EARTH_RADIUS_KM**2 / 2.0


def region_warning(geometry: BaseGeometry, region: str | None) -> str | None:
    """A warning when the zone lies outside `region`'s rough box; None when inside or unknown region."""
    boxes = REGION_BOXES.get(region.upper()) if region else None
    if not region or not boxes:
        return None
    if any(geometry.intersects(shapely.box(*b)) for b in boxes):
        return None
    swapped = shapely.transform(geometry, lambda xy: xy[:, ::-1])
    if any(swapped.intersects(shapely.box(*b)) for b in boxes):
        return (f"lies outside {region.upper()}, but with latitude and longitude swapped it would lie inside: "
                "were the coordinates written lat,lon? GeoJSON wants lon,lat")
    return f"lies outside {region.upper()} (SIRENA_DEFAULT_REGION); check the coordinates"


def invalid(path: str, reason: str) -> InvalidInput:
    """InvalidInput naming `path` as the field and `reason` as why."""
    return InvalidInput(f"{path}: {reason}", fields={path: reason})
