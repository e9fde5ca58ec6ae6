"""The area an operator is bounded to: zones (by name, current version) and assigned groups.

No row: the operator is not bounded. Rules in alerting/directory/areas.py. Migration 0029.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base, created_at_column


class OperatorArea(Base):
    __tablename__ = "operator_areas"

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True)
    # Zone names, not ids: a zone redrawn by an admin (a new version) keeps bounding by its current shape.
    zones: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    groups: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    set_at: Mapped[datetime] = created_at_column()
