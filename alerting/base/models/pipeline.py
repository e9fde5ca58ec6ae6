"""The sending and receiving side's own tables, written in sets by raw SQL on the hot path
(broadcast/jobs.py, broadcast/followups.py, broadcast/receipts.py, broadcast/escalation.py); these
classes name their columns for everyone else (reports, tests, the console) and keep the schema in
one place with the rest of the model.

- `fanout_chunks`: a fan-out lane's claimed contact range, until its deliveries are written;
- `followups`: SMS beyond an alert's deliveries (escalation reminders, HELP acknowledgements, carrier
  retries), claimed and recorded like deliveries;
- `message_parts`: each submitted part's carrier message id → its delivery or follow-up, so a
  receipt finds what it reports on (filled by triggers at record time);
- `receipts`: delivery receipts as the carriers reported them, before and after matching;
- `escalations`: each stage an alert's escalation reached (ACK deadline passed, HELP raised).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, Boolean, DateTime, ForeignKey, Integer, SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base, created_at_column


class FanoutChunk(Base):
    __tablename__ = "fanout_chunks"

    alert_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    lo: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hi: Mapped[int] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime] = created_at_column()


class Followup(Base):
    __tablename__ = "followups"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("alerts.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("deliveries.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("contacts.id", ondelete="SET NULL"))
    reply_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("replies.id", ondelete="SET NULL"))
    msisdn: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(24))
    sender_name: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    test_only: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_carriers: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    avoid_carriers: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    state: Mapped[str] = mapped_column(String(24), default="queued")
    carrier: Mapped[str | None] = mapped_column(String(64))
    bind: Mapped[str | None] = mapped_column(String(64))
    message_ids: Mapped[list[str] | None] = mapped_column(ARRAY(String(80)))
    parts: Mapped[int | None] = mapped_column(SmallInteger)
    parts_delivered: Mapped[int] = mapped_column(SmallInteger, default=0)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64), default="system")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = created_at_column()
    possible_duplicates: Mapped[int] = mapped_column(SmallInteger, default=0)


class MessagePart(Base):
    __tablename__ = "message_parts"

    carrier: Mapped[str] = mapped_column(String(64), primary_key=True)
    msg_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    followup_id: Mapped[int | None] = mapped_column(BigInteger)
    part_no: Mapped[int | None] = mapped_column(SmallInteger)


class Receipt(Base):
    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("inbound_messages.id"), unique=True)
    carrier: Mapped[str] = mapped_column(String(64))
    raw_id: Mapped[str] = mapped_column(String(80))
    msg_key: Mapped[str] = mapped_column(String(80))
    stat: Mapped[str] = mapped_column(String(8))
    final: Mapped[bool] = mapped_column(Boolean)
    error_code: Mapped[str | None] = mapped_column(String(32))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("deliveries.id", ondelete="SET NULL"))
    followup_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("followups.id", ondelete="SET NULL"))
    part_no: Mapped[int | None] = mapped_column(SmallInteger)
    matched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Escalation(Base):
    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    alert_id: Mapped[int] = mapped_column(Integer, ForeignKey("alerts.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(24))
    reply_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("replies.id", ondelete="SET NULL"))
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = created_at_column()
