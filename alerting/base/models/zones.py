"""Zones: named, versioned MultiPolygons. An alert records the exact version it was sent to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
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
