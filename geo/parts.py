"""Zone parts: each zone version cut with ST_Subdivide into small polygons, each in a GiST index.

A 1,000-vertex zone has one big bounding box: a GiST search with it returns everything in the
box, which for an irregular outline is far more than the zone. Cut into pieces of at most
MAX_VERTICES vertices, the pieces' boxes hug the outline. Targeting no longer searches through
them (the cell covering of geo.cells replaced them, migration 0020); they are still written for
every version and reported by zone_geojson (`parts`), for spatial look-ups of zones."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base.db import rowcount

MAX_VERTICES = 64  # ST_Subdivide's max_vertices: small pieces, tight boxes, short point-in-polygon tests


def subdivide_zone(session: Session, zone_id: int) -> int:
    """(Re)write the parts of one zone version; returns how many pieces it was cut into."""
    session.execute(text("DELETE FROM zone_parts WHERE zone_id = :z"), {"z": zone_id})
    result = session.execute(
        text(
            "INSERT INTO zone_parts (zone_id, part_no, geom) "
            "SELECT z.id, row_number() OVER (), piece "
            "FROM zones z, LATERAL ST_Subdivide(z.geom, :max_vertices) AS piece "
            "WHERE z.id = :z"
        ),
        {"z": zone_id, "max_vertices": MAX_VERTICES},
    )
    return rowcount(result)
