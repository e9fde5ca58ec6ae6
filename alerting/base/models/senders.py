"""Senders (the number or name an SMS comes from) and carriers, mirrored from the carriers file."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import ARRAY, Boolean, CheckConstraint, Date, DateTime, Float, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base, created_at_column, enum_type


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


class Carrier(Base):
    """A carrier of the carriers file, as the inbound side needs it: how its receipts name message
    ids, whether it is a test route, which senders it carries. Mirrored at setup and at every
    gateway worker's start (broadcast/carrier_facts.py); `active` false once it left the file."""

    __tablename__ = "carriers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    receipt_id_style: Mapped[str] = mapped_column(String(24), server_default="string")
    test: Mapped[bool] = mapped_column(Boolean, server_default="false")
    senders: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    updated_at: Mapped[datetime] = created_at_column()


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
