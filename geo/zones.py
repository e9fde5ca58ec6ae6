"""Zones: GeoJSON and CAP in, versioned storage, GeoJSON out.

A zone is a named MultiPolygon (lon/lat, SRID 4326). Saving a zone whose geometry changed makes
a new version and keeps the old ones (an alert records the versions it was sent to); saving the
same geometry again changes nothing. Each version is cut into pieces for the GiST index
(geo.parts) and covered by cell key ranges for targeting (geo.cells). Checks and their messages live in geo.validation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import shapely
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import MultiPolygon, Polygon, mapping
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from alerting.base.errors import NotFound, Refused
from alerting.base.models.zones import Zone, ZonePart
from alerting.directory import permissions
from alerting.directory.target_refs import zone_users
from audit import trail
from audit.actor import Actor
from geo import zone_files
from geo.cells import write_covering
from geo.parts import subdivide_zone
from geo.validation import (
    EARTH_RADIUS_KM,
    area_km2,
    check_geometry,
    invalid,
    place,
    ring_from_positions,
)

CIRCLE_SEGMENTS = 72
MAX_CIRCLE_KM = 1000.0


@dataclass
class ZoneImportResult:
    name: str
    version: int
    zone_id: int
    created: bool  # False: the same geometry was already the current version
    area_km2: float
    vertices: int
    warnings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def import_geojson(
    session: Session,
    data: dict[str, Any] | str,
    *,
    name: str | None = None,
    repair: bool = False,
    actor: Actor | None = None,
    region: str | None = None,
    limits: zone_files.Limits | None = None,
) -> list[ZoneImportResult]:
    """Save the zones of a GeoJSON Feature, FeatureCollection, Polygon or MultiPolygon, in `session`.

    `zone_files.check_geojson` then `store_zones` (see both). All or nothing: any bad feature
    raises InvalidInput whose `fields` name every bad feature and why; nothing is saved then.
    Entry points that may receive a big file check it before opening their transaction and store
    it in batches (`sirena zones import`), or within `limits` (the console and the API).
    """
    if actor is not None:
        permissions.require(actor, "zones.write", "import zones")
    checked = zone_files.check_geojson(data, name=name, repair=repair, region=region, limits=limits)
    return store_zones(session, checked, actor=actor)


def store_zones(session: Session, checked: list[zone_files.CheckedZone], *,
                actor: Actor | None = None) -> list[ZoneImportResult]:
    """Save checked zones (zone_files.check_geojson) as new versions where their geometry changed.

    About 0.1 s a zone on the development machine (its cell covering and parts are written too):
    an entry point keeps what it stores in one transaction small (zone_files.Limits, or batches).
    """
    if actor is not None:
        permissions.require(actor, "zones.write", "import zones")
    results = []
    for zone_name, geometry in checked:
        zone, created = _store(session, zone_name, geometry.geometry, "geojson", actor=actor)
        results.append(ZoneImportResult(
            name=zone.name, version=zone.version, zone_id=zone.id, created=created,
            area_km2=round(geometry.area_km2, 3), vertices=int(shapely.get_num_coordinates(geometry.geometry)),
            warnings=geometry.warnings, repairs=geometry.repairs,
        ))
    return results


def parse_cap_polygon(text_value: str, *, repair: bool = False) -> Polygon:
    """A CAP 1.2 <polygon>: "lat,lon lat,lon …", at least 4 pairs, first = last. Raises InvalidInput."""
    pairs = (text_value or "").split()
    positions = []
    for i, pair in enumerate(pairs):
        lat, lon = _cap_pair(pair, f"polygon point {i + 1}")
        positions.append([lon, lat])
    repairs: list[str] = []
    ring = ring_from_positions(positions, "polygon", repair=repair, repairs=repairs)
    checked = check_geometry(Polygon(ring), path="polygon", repair=repair)
    return checked.geometry.geoms[0] if len(checked.geometry.geoms) == 1 else checked.geometry


def parse_cap_circle(text_value: str, *, segments: int = CIRCLE_SEGMENTS) -> Polygon:
    """A CAP 1.2 <circle>: "lat,lon radius_km", as a polygon on the sphere (geodesic radius, not degrees).

    Each vertex lies `radius_km` along a great circle from the centre. Refuses a radius outside
    0 < r ≤ 1000 km, and circles reaching a pole or crossing the antimeridian.
    """
    parts = (text_value or "").split()
    if len(parts) != 2:
        raise invalid("circle", f"expected \"lat,lon radius_km\", got {text_value!r:.60}")
    lat, lon = _cap_pair(parts[0], "circle centre")
    try:
        radius = float(parts[1])
    except ValueError:
        raise invalid("circle", f"radius {parts[1]!r} is not a number") from None
    if not math.isfinite(radius) or not 0 < radius <= MAX_CIRCLE_KM:
        raise invalid("circle", f"radius {parts[1]} km: expected more than 0 and at most {MAX_CIRCLE_KM:g} km")
    angular = radius / EARTH_RADIUS_KM
    phi1, lam1 = math.radians(lat), math.radians(lon)
    ring = []
    for k in range(segments):
        bearing = 2 * math.pi * k / segments
        phi2 = math.asin(math.sin(phi1) * math.cos(angular) + math.cos(phi1) * math.sin(angular) * math.cos(bearing))
        lam2 = lam1 + math.atan2(math.sin(bearing) * math.sin(angular) * math.cos(phi1),
                                 math.cos(angular) - math.sin(phi1) * math.sin(phi2))
        ring.append((math.degrees(lam2), math.degrees(phi2)))
    ring.append(ring[0])
    if any(abs(y) >= 89.9 for _, y in ring) or any(abs(x) > 180 for x, _ in ring):
        raise invalid("circle", f"centre {place(lon, lat)} radius {radius:g} km reaches a pole or crosses the "
                      "antimeridian (±180° longitude); use a polygon split at ±180°")
    return Polygon(ring)


def _cap_pair(pair: str, what: str) -> tuple[float, float]:
    field_name = "polygon" if "polygon" in what else "circle"
    try:
        lat_s, lon_s = pair.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise invalid(field_name, f"{what} {pair!r:.40}: expected \"lat,lon\"") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise invalid(field_name, f"{what} {pair}: latitude must be -90..90 and longitude -180..180")
    return lat, lon


def save_zone(
    session: Session,
    name: str,
    geometry: Polygon | MultiPolygon,
    source: str,
    *,
    description: str = "",
    expected_population: int | None = None,
    actor: Actor | None = None,
    region: str | None = None,
) -> Zone:
    """Check `geometry` and store it as the current version of zone `name`.

    The same geometry as the current version returns that version unchanged. A different one
    makes version n+1 current and keeps the older versions. Serialized per zone name with an
    advisory lock, so two editors get versions n+1 and n+2, never a clash. Raises InvalidInput
    (geo.validation.check_geometry) for a bad geometry or name; nothing is written then.
    """
    if actor is not None:
        permissions.require(actor, "zones.draw", "save zones")
    checked = check_geometry(geometry, path="polygon", region=region)
    zone, _ = _store(session, name, checked.geometry, source, description=description,
                     expected_population=expected_population, actor=actor)
    return zone


def _store(
    session: Session, name: str, multi: MultiPolygon, source: str, *, description: str = "",
    expected_population: int | None = None, actor: Actor | None = None,
) -> tuple[Zone, bool]:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise invalid("name", "expected 1 to 100 characters")
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('sirena.zone:' || :n))"), {"n": name})
    current = session.scalars(select(Zone).where(Zone.name == name, Zone.is_current)).first()
    if current is not None and shapely.normalize(to_shape(current.geom)).equals_exact(shapely.normalize(multi), 0):
        return current, False
    last = session.scalar(select(func.max(Zone.version)).where(Zone.name == name)) or 0
    if current is not None:
        current.is_current = False
        session.flush()  # the partial unique index allows one current version per name
    zone = Zone(
        name=name, version=last + 1, is_current=True, geom=from_shape(multi, srid=4326), source=source,
        description=description, expected_population=expected_population,
        created_by_id=actor.operator_id if actor else None,
    )
    session.add(zone)
    session.flush()
    subdivide_zone(session, zone.id)
    write_covering(session, zone.id)
    if actor is not None:
        trail.append(session, actor=actor, action="zone.saved", subject_type="zone", subject_id=zone.id,
                     payload={"name": name, "version": zone.version, "source": source,
                              "replaced_version": current.version if current is not None else None})
    return zone, True


def delete_zone(session: Session, name: str, *, actor: Actor) -> Zone:
    """Retire zone `name`: no version stays current, so it leaves the lists and new targets; return the last version.

    Versions are kept, never destroyed: an alert pinned to one (its `zone_versions`) still resolves
    it, its history still draws it, and `zones export NAME --version N` still gives it; importing
    the name again makes the next version current. Raises NotFound (no current version); Refused
    (field "zone", naming them) while an unfinished alert or an active schedule names the zone.
    Serialized with saving by the zone's advisory lock. Audited as "zone.deleted".
    """
    permissions.require(actor, "zones.write", "delete zones")
    name = (name or "").strip()
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('sirena.zone:' || :n))"), {"n": name})
    zone = get_zone(session, name)
    users = zone_users(session, name)
    if users:
        why = f"still used by {users.describe()}"
        raise Refused(f'zone "{name}" is {why}; finish, cancel or re-aim them first', fields={"zone": why},
                      alerts=users.alerts, schedules=users.schedules, subject_type="zone", subject_id=zone.id)
    zone.is_current = False
    session.flush()
    versions = session.scalar(select(func.count()).select_from(Zone).where(Zone.name == name))
    trail.append(session, actor=actor, action="zone.deleted", subject_type="zone", subject_id=zone.id,
                 payload={"name": name, "version": zone.version, "versions_kept": versions})
    return zone


def get_zone(session: Session, name: str, version: int | None = None) -> Zone:
    """The current (or given) version of zone `name`. Raises NotFound naming the zone."""
    query = select(Zone).where(Zone.name == name)
    query = query.where(Zone.version == version) if version is not None else query.where(Zone.is_current)
    zone = session.scalars(query).first()
    if zone is None:
        which = f"zone \"{name}\"" + (f" version {version}" if version is not None else "")
        raise NotFound(f"{which} does not exist", fields={"zone": f"{which} does not exist"})
    return zone


def zone_geojson(session: Session, name: str, version: int | None = None) -> dict[str, Any]:
    """One zone version as a GeoJSON Feature (lon/lat), with name, version and area in properties."""
    zone = get_zone(session, name, version)
    geometry = to_shape(zone.geom)
    parts = session.scalar(select(func.count()).select_from(ZonePart).where(ZonePart.zone_id == zone.id))
    return {
        "type": "Feature",
        "geometry": mapping(geometry),
        "properties": {
            "name": zone.name, "version": zone.version, "is_current": zone.is_current,
            "source": zone.source, "description": zone.description,
            "area_km2": round(area_km2(geometry), 3), "parts": parts,
            "expected_population": zone.expected_population,
            "created_at": zone.created_at.isoformat() if zone.created_at else None,
        },
    }


def list_zones(session: Session) -> list[dict[str, Any]]:
    """Current zones with their version count, area and source, by name."""
    versions = (select(Zone.name, func.count().label("versions")).group_by(Zone.name).subquery())
    rows = session.execute(
        select(Zone, versions.c.versions).join(versions, versions.c.name == Zone.name)
        .where(Zone.is_current).order_by(Zone.name)
    ).all()
    return [
        {"name": z.name, "version": z.version, "versions": n, "source": z.source,
         "area_km2": round(area_km2(to_shape(z.geom)), 3),
         "created_at": z.created_at.isoformat() if z.created_at else None}
        for z, n in rows
    ]
