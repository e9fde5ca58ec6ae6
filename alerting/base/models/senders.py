"""Senders (the number or name an SMS comes from), mirrored from the carriers file."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, DateTime, Float, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base, enum_type


class SenderKind(enum.StrEnum):
    LONG = "long"  # cheap, pre-agreed volume: a daily cap and a low TPS
    SHORT = "short"  # exclusive, two-way
    SHARED = "shared"  # a short code shared with others: inbound routed by keyword
    ALPHANUMERIC = "alphanumeric"  # a name, one-way (TON 5)


class Sender(Base):
    __tablename__ = "senders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[SenderKind] = mapped_column(enum_type(SenderKind))
    address: Mapped[str] = mapped_column(String(32))  # "+56911112222", "4242", "SIRENA"
    keyword: Mapped[str | None] = mapped_column(String(32))  # shared short codes only
    daily_cap: Mapped[int | None] = mapped_column(Integer)
    tps: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # some carrier in the carriers file carries it
    test_route: Mapped[bool] = mapped_column(Boolean, default=False)  # some carrier marked `test` does
    # The carriers file's `default_sender`: what the console offers first (a dedicated two-way code).
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class SenderUsage(Base):
    """Parts (submit_sm PDUs) reserved for a capped sender on one UTC day, across every gateway."""

    __tablename__ = "sender_usage"
    __table_args__ = (CheckConstraint("parts >= 0", name="parts_not_negative"),)

    sender: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    last_grant: Mapped[int] = mapped_column(Integer, default=0)  # what the latest reservation got
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CarrierHealthRow(Base):
    """A carrier's standing judged from its recent receipts (broadcast.carrier_health)."""

    __tablename__ = "carrier_health"

    carrier: Mapped[str] = mapped_column(String(64), primary_key=True)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    finals: Mapped[int] = mapped_column(Integer, default=0)
    failure_rate: Mapped[float] = mapped_column(Float, default=0.0)
    latency_p90_s: Mapped[float | None] = mapped_column(Float)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
