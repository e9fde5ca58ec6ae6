"""Deliveries (one per recipient phone per alert), raw inbound PDUs and interpreted replies."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base, created_at_column, enum_type
from alerting.base.sms_text.vocabulary import ReplyMeaning


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"  # claimed by a gateway worker under a lease
    SUBMITTED = "submitted"  # the carrier accepted it (submit_sm_resp with an id)
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    WAITING_ROUTE = "waiting_route"  # every route for its sender is down: waits, never dropped
    CANCELLED = "cancelled"
    # Failed for good on this number and tried on the contact's next one (broadcast/next_numbers.py):
    # a message, not a person; the people counts leave it out.
    NEXT_NUMBER = "next_number"


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "msisdn"),
        # The claim query: queued rows of one alert in id order.
        Index("ix_deliveries_claim", "alert_id", "id", postgresql_where=text("state = 'queued'")),
        # Unsent rows that are not queued (any_unsent, cancel, waiting-route retries). No index on
        # (alert_id, state): fan-out's new rows and every state change would all write to it.
        Index("ix_deliveries_in_flight", "alert_id",
              postgresql_where=text("state IN ('submitting', 'waiting_route')")),
        Index("ix_deliveries_lease", "lease_until", postgresql_where=text("state = 'submitting'")),
        # Deliveries to a contact's next number (0028): a few rows; fan-out's never enter it.
        Index("ix_deliveries_next_numbers", "alert_id", postgresql_where=text("number_position IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # No foreign keys (migration 0010): a delivery is history that outlives its contact, alerts are
    # never deleted, and each key cost a look-up per row on the hot fan-out insert.
    alert_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int | None] = mapped_column(BigInteger)  # not indexed: replies match by number (0023)
    msisdn: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="es")
    # Which of the contact's numbers this is (2, 3); NULL for the first, all fan-out writes (0028).
    number_position: Mapped[int | None] = mapped_column(SmallInteger)
    # The delivery on the number before, now `next_number` (broadcast/next_numbers.py).
    previous_delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[DeliveryState] = mapped_column(enum_type(DeliveryState), default=DeliveryState.QUEUED)
    batch_no: Mapped[int | None] = mapped_column(Integer)
    carrier: Mapped[str | None] = mapped_column(String(64))
    bind: Mapped[str | None] = mapped_column(String(64))
    carriers_tried: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    message_ids: Mapped[list[str] | None] = mapped_column(ARRAY(String(80)))  # one per part
    parts: Mapped[int | None] = mapped_column(SmallInteger)
    parts_delivered: Mapped[int] = mapped_column(SmallInteger, default=0)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    possible_duplicates: Mapped[int] = mapped_column(SmallInteger, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_reason: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime] = created_at_column()
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = created_at_column()


class InboundKind(enum.StrEnum):
    RECEIPT = "receipt"
    MO = "mo"  # a mobile-originated message: a reply
    UNKNOWN = "unknown"


class InboundMessage(Base):
    """Every deliver_sm exactly as received, stored before anything interprets it. Kept forever."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[InboundKind] = mapped_column(enum_type(InboundKind))
    carrier: Mapped[str | None] = mapped_column(String(64))
    bind: Mapped[str | None] = mapped_column(String(64))
    source_addr: Mapped[str] = mapped_column(String(32), default="")
    destination_addr: Mapped[str] = mapped_column(String(32), default="")
    esm_class: Mapped[int | None] = mapped_column(SmallInteger)
    data_coding: Mapped[int | None] = mapped_column(SmallInteger)
    short_message: Mapped[bytes | None] = mapped_column(LargeBinary)  # raw bytes as received
    text: Mapped[str | None] = mapped_column(Text)  # decoded, when it could be
    tlvs: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    received_at: Mapped[datetime] = created_at_column()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(32))  # matched / unmatched_sender / ...


# The meanings that count as an answer to an alert (ACK deadlines, non-responders, the live page).
ANSWERED = ("ack", "no", "help", "poll", "verify_yes")


class Reply(Base):
    """What an inbound message meant, linked to the delivery it answers when one matched."""

    __tablename__ = "replies"
    __table_args__ = (
        Index("ix_replies_alert_meaning", "alert_id", "meaning"),
        # The HELPs nobody has handled yet: pinned on the dashboard and the alert page (0025).
        Index("ix_replies_open_help", "id", postgresql_where=text("meaning = 'help' AND handled_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"), index=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    msisdn: Mapped[str] = mapped_column(String(32))
    meaning: Mapped[ReplyMeaning] = mapped_column(enum_type(ReplyMeaning))
    poll_answer: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    unmatched_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = created_at_column()
    # A HELP stays pinned until an operator marks it handled (alerting/alerts/help_desk.py), audited.
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
