"""Migration 0020_target_cells back-fills: locations written before it get their cell key, zone
versions saved before it get their covering, and targeting then agrees with shapely."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon
from sqlalchemy import text

from alerting.base import db as dbmod
from alerting.base.settings import Settings
from geo.cells import cover, load_covering, point_keys
from geo.targeting import TargetSpec, preview
from tests.conftest import upgraded_database

BEFORE = "0019_safety"
ZONE = Polygon([(-70.7, -33.5), (-70.6, -33.52), (-70.58, -33.4), (-70.66, -33.38), (-70.7, -33.5)])
POINTS = [(-70.65, -33.45), (-70.7, -33.5), (-70.5, -33.45), (-70.62, -33.39), (-70.6, -33.52), (-70.69, -33.41)]


def _seed(conn: Any) -> None:
    conn.execute(text("INSERT INTO zones (name, version, is_current, geom, source, description) "
                      "VALUES ('Antigua', 1, true, ST_Multi(ST_GeomFromText(:wkt, 4326)), 'geojson', '')"),
                 {"wkt": ZONE.wkt})
    for i, (x, y) in enumerate(POINTS):
        cid = conn.execute(text("INSERT INTO contacts (msisdn, name, language, attributes) "
                                "VALUES (:m, '', 'es', '{}') RETURNING id"), {"m": f"+5699{i:07d}"}).scalar()
        conn.execute(text("INSERT INTO contact_locations (contact_id, label, geom) "
                          "VALUES (:c, 'home', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"), {"c": cid, "x": x, "y": y})


@pytest.fixture
def upgraded(base_settings: Settings, settings: Settings) -> Iterator[Settings]:
    """A database at 0019 holding a zone and located contacts, then upgraded to the head."""
    with upgraded_database(base_settings, settings, "cells", BEFORE, _seed) as own:
        yield own


def test_upgrade_back_fills_cell_keys_and_coverings(upgraded):
    with dbmod.transaction() as s:
        rows = s.execute(text("SELECT ST_X(geom), ST_Y(geom), cell FROM contact_locations ORDER BY id")).all()
        xs, ys = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        assert [r[2] for r in rows] == point_keys(xs, ys).tolist()
        zone_id, wkb = s.execute(text("SELECT id, ST_AsBinary(geom) FROM zones")).one()
        assert load_covering(s, zone_id) == cover(shapely.from_wkb(bytes(wkb)))
        counted = preview(s, TargetSpec(zones=["Antigua"])).total
    assert counted == int(shapely.intersects_xy(ZONE, xs, ys).sum()) >= 3
