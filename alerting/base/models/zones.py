"""Zones: named, versioned MultiPolygons (an alert records the exact version it was sent to), with
each version's cell covering (geo/cells.py) and its subdivided parts (geo/parts.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base, created_at_column


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index("ix_zones_geom", "geom", postgresql_using="gist"),
        Index("ix_zones_current_name", "name", unique=True, postgresql_where=text("is_current")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False))
    source: Mapped[str] = mapped_column(String(32), default="geojson")  # geojson / cap / console
    description: Mapped[str] = mapped_column(Text, default="")
    expected_population: Mapped[int | None] = mapped_column(Integer)  # for the blast-radius check
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = created_at_column()


class ZoneCell(Base):
    """One key range of a zone version's covering: `inside` (no exact test) or boundary."""

    __tablename__ = "zone_cells"

    zone_id: Mapped[int] = mapped_column(Integer, ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True)
    lo: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hi: Mapped[int] = mapped_column(BigInteger)
    inside: Mapped[bool] = mapped_column(Boolean)


class ZonePart(Base):
    __tablename__ = "zone_parts"
    __table_args__ = (Index("ix_zone_parts_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"), index=True)
    part_no: Mapped[int] = mapped_column(Integer)
    geom: Mapped[Any] = mapped_column(Geometry("POLYGON", srid=4326, spatial_index=False))
