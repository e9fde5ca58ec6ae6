"""GeoJSON zone files read and checked, within limits, before any transaction opens.

`check_geojson` parses a Feature, FeatureCollection, Polygon or MultiPolygon (json_limits: size and
nesting bounded), names each feature's zone, counts features and vertices against `limits`, and
checks every geometry with shapely (geo.validation). It touches no database: entry points call it
first, then store what it returns (geo.zones.store_zones) in a transaction that holds only the
saving, about 0.1 s a zone here.

Limits: a console or API request may hold at most REQUEST_LIMITS (25 zones, 50,000 vertices,
5 MB), so its one transaction stays within a few seconds; anything bigger is refused, naming the
count and `sirena zones import`, which has no limit and saves in batches with progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon

from alerting.base.errors import InvalidInput
from alerting.base.json_limits import parse_json
from geo.validation import CheckedGeometry, check_geometry, invalid, ring_from_positions

NAME_KEYS = ("name", "nombre", "NAME", "Name", "NOMBRE", "nom_comuna", "NOM_COMUNA")
MAX_FILE_BYTES = 512 * 1024 * 1024  # `sirena zones import`: a whole country's blocks still fit
CheckedZone = tuple[str, CheckedGeometry]


@dataclass(frozen=True)
class Limits:
    """What one request may hold: zones (features), vertices, bytes."""

    max_features: int
    max_vertices: int
    max_bytes: int


# Measured (bench/zone_import.py): ~0.1 s a small zone, 0.8 s a 50,000-vertex one; 50 zones held
# one transaction 5.4 s. At these limits a request's transaction stays near 3 s at worst.
REQUEST_LIMITS = Limits(max_features=25, max_vertices=50_000, max_bytes=5 * 1024 * 1024)
BIG_SETS = "import a bigger set with `sirena zones import FILE` (saved in batches, with progress)"


def check_geojson(data: dict[str, Any] | str | bytes, *, name: str | None = None, repair: bool = False,
                  region: str | None = None, limits: Limits | None = None) -> list[CheckedZone]:
    """The zones of a GeoJSON document, checked: [(zone name, checked geometry)], in file order.

    Without `name`, each feature is the zone named by its "name" (or "nombre", …) property; with
    `name`, everything in the file is one zone of that name. Raises InvalidInput naming every bad
    feature and why (nothing is to be saved then), or, beyond `limits`, naming the count and the
    limit (before any geometry is checked). `region` (Settings.default_region) enables the
    swapped lat/lon warning.
    """
    doc = _load(data, limits)
    pieces = _features(doc)
    if not pieces:
        raise invalid("geojson", "no features")
    if limits is not None:
        _within(pieces, limits)
    errors: dict[str, str] = {}
    named: dict[str, list[tuple[str, Any]]] = {}
    for path, feature_geometry, props in pieces:
        zone_name = name or _name_of(props)
        if not zone_name:
            errors[f"{path}.properties.name"] = "missing: give --name or a \"name\" property"
            continue
        if not name and zone_name in named:
            errors[f"{path}.properties.name"] = f"\"{zone_name}\" appears more than once in the file"
            continue
        named.setdefault(zone_name, []).append((path, feature_geometry))
    checked: list[CheckedZone] = []
    for zone_name, parts in named.items():
        try:
            checked.append((zone_name, _check_parts(parts, repair=repair, region=region)))
        except InvalidInput as exc:
            errors.update(exc.field_errors)
    if errors:
        first = next(iter(errors.items()))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{first[0]}: {first[1]}{more}", fields=errors)
    return checked


def _within(pieces: list[tuple[str, Any, dict[str, Any]]], limits: Limits) -> None:
    if len(pieces) > limits.max_features:
        raise InvalidInput(f"geojson: {len(pieces):,} zones in one request; at most {limits.max_features:,}: "
                           + BIG_SETS, fields={"geojson": f"{len(pieces):,} features, at most {limits.max_features:,}"})
    vertices = sum(_vertices(geometry) for _, geometry, _ in pieces)
    if vertices > limits.max_vertices:
        raise InvalidInput(f"geojson: {vertices:,} vertices in one request; at most {limits.max_vertices:,}: "
                           + BIG_SETS, fields={"geojson": f"{vertices:,} vertices, at most {limits.max_vertices:,}"})


def _vertices(geometry: Any) -> int:
    """Positions in a Polygon's or MultiPolygon's coordinates, counted without building anything
    (what is not a list of lists counts 0 here; the checks name it later)."""
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if not isinstance(coordinates, list):
        return 0
    polygons = coordinates if geometry.get("type") == "MultiPolygon" else [coordinates]
    return sum(len(ring) for polygon in polygons if isinstance(polygon, list)
               for ring in polygon if isinstance(ring, list))


def _load(data: dict[str, Any] | str | bytes, limits: Limits | None) -> dict[str, Any]:
    if isinstance(data, str | bytes):
        data = parse_json(data, field="geojson", max_bytes=limits.max_bytes if limits else MAX_FILE_BYTES)
    if not isinstance(data, dict) or "type" not in data:
        raise invalid("geojson", "expected a GeoJSON object with a \"type\"")
    return data


def _features(doc: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    kind = doc.get("type")
    if kind == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise invalid("features", "expected a list")
        out = []
        for i, feature in enumerate(features):
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise invalid(f"features[{i}]", "expected a Feature")
            out.append((f"features[{i}]", feature.get("geometry"), feature.get("properties") or {}))
        return out
    if kind == "Feature":
        return [("feature", doc.get("geometry"), doc.get("properties") or {})]
    if kind in ("Polygon", "MultiPolygon"):
        return [("geometry", doc, {})]
    raise invalid("type", f"expected Feature, FeatureCollection, Polygon or MultiPolygon, got {kind!r}")


def _name_of(props: dict[str, Any]) -> str | None:
    for key in NAME_KEYS:
        value = props.get(key)
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    return None


def _check_parts(parts: list[tuple[str, Any]], *, repair: bool, region: str | None) -> CheckedGeometry:
    checked = []
    for path, geometry in parts:
        gpath = f"{path}.geometry" if path != "geometry" else path
        repairs: list[str] = []
        polygons = _polygons(geometry, gpath, repair=repair, repairs=repairs)
        merged: Any = polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)
        one = check_geometry(merged, path=gpath, repair=repair, region=region if len(parts) == 1 else None)
        one.repairs[:0] = repairs
        checked.append(one)
    if len(checked) == 1:
        return checked[0]
    # Several features saved as one zone (--name) may touch or overlap: their union is the zone.
    result = check_geometry(shapely.union_all([c.geometry for c in checked]), path="geojson", region=region)
    for c in checked:
        result.warnings[:0] = c.warnings
        result.repairs[:0] = c.repairs
    return result


def _polygons(geometry: Any, path: str, *, repair: bool, repairs: list[str]) -> list[Polygon]:
    if not isinstance(geometry, dict):
        raise invalid(path, "missing geometry")
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    rings: Sequence[Any]
    if kind == "Polygon":
        rings = [coords]
    elif kind == "MultiPolygon":
        if not isinstance(coords, list | tuple) or not coords:
            raise invalid(f"{path}.coordinates", "expected a list of polygons")
        rings = coords
    else:
        raise invalid(f"{path}.type", f"expected Polygon or MultiPolygon, got {kind!r}")
    out = []
    for i, poly in enumerate(rings):
        ppath = f"{path}.coordinates" + (f"[{i}]" if kind == "MultiPolygon" else "")
        if not isinstance(poly, list | tuple) or not poly:
            raise invalid(ppath, "expected a list of rings")
        checked = [ring_from_positions(r, f"{ppath}[{j}]", repair=repair, repairs=repairs) for j, r in enumerate(poly)]
        out.append(Polygon(checked[0], checked[1:]))
    return out
