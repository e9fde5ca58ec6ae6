"""The audit trail's one table, `audit.events`: append-only (triggers refuse UPDATE, DELETE and
TRUNCATE), written only by audit/trail.py and linked into the hash chain by audit/seal.py. This
class is for reading it (timelines, reports, exports); nothing writes through it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, LargeBinary, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base


class AuditEvent(Base):
    __tablename__ = "events"
    __table_args__ = ({"schema": "audit"},)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    seq: Mapped[int | None] = mapped_column(BigInteger)  # set when sealed into the chain
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_kind: Mapped[str] = mapped_column(Text)
    actor_name: Mapped[str] = mapped_column(Text)
    actor_operator_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_token_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(Text)
    subject_type: Mapped[str | None] = mapped_column(Text)
    subject_id: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    origin_address: Mapped[str | None] = mapped_column(Text)
    origin_user_agent: Mapped[str | None] = mapped_column(Text)
    origin_interface: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)  # done | refused
    reason: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
