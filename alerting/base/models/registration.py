"""Self-registration by SMS: the keywords an admin publishes, each request a resident texts, the
admin's policy, and the zone subscriptions through which a resident without a location is reached."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base, created_at_column, enum_type


class RegistrationState(enum.StrEnum):
    PENDING = "pending"  # asked by SMS; waits for SI/YES until expires_at
    ACTIVE = "active"  # confirmed: the number is a contact now
    EXPIRED = "expired"  # no confirmation in time
    WITHDRAWN = "withdrawn"  # NO or STOP before confirming
    REPLACED = "replaced"  # a newer request of the same number took its place
    EXISTING = "existing"  # already a contact: answered, and subscribed to what the keyword named
    REFUSED = "refused"  # a keyword nobody published, or registration off
    LIMITED = "limited"  # over the number's hourly limit: stored and audited, never answered


class RegistrationPolicy(Base):
    """The admin's switch and limits (one row, id 1). Off until an admin turns it on."""

    __tablename__ = "registration_policy"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),
                      CheckConstraint("confirm_within_s BETWEEN 60 AND 2592000", name="confirm_window"),
                      CheckConstraint("per_hour BETWEEN 1 AND 100", name="per_hour_range"))

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=1)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    confirm_within_s: Mapped[int] = mapped_column(Integer, default=86400)
    per_hour: Mapped[int] = mapped_column(SmallInteger, default=3)
    updated_by: Mapped[str] = mapped_column(String(64), default="system")
    updated_at: Mapped[datetime] = created_at_column()


class RegistrationKeyword(Base):
    """A word a resident may text after ALTA/JOIN (`ALTA CENTRO`): it names one zone or one static group."""

    __tablename__ = "registration_keywords"
    __table_args__ = (CheckConstraint("(zone_name IS NULL) <> (group_id IS NULL)", name="one_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    keyword: Mapped[str] = mapped_column(String(32), unique=True)  # folded: lower case, no accents
    zone_name: Mapped[str | None] = mapped_column(String(100))  # by name: it follows the zone's versions
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(Text, default="")
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = created_at_column()


class Registration(Base):
    """One registration request texted by a number, and what became of it."""

    __tablename__ = "registrations"
    __table_args__ = (
        # The hourly limit and a number's history.
        Index("ix_registrations_msisdn", "msisdn", "requested_at"),
        # One request waiting for confirmation per number.
        Index("uq_registrations_msisdn_pending", "msisdn", unique=True, postgresql_where=text("state = 'pending'")),
        # The periodic expiry pass.
        Index("ix_registrations_expiry", "expires_at", postgresql_where=text("state = 'pending'")),
        # The console's list, newest first, by state.
        Index("ix_registrations_state", "state", "id"),
        Index("ix_registrations_contact_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(16))
    state: Mapped[RegistrationState] = mapped_column(enum_type(RegistrationState))
    language: Mapped[str] = mapped_column(String(8), default="es")  # guessed from the word texted
    word: Mapped[str] = mapped_column(String(32))  # ALTA, JOIN… as texted (folded)
    keyword: Mapped[str | None] = mapped_column(String(32))  # the zone or group keyword texted after it
    zone_name: Mapped[str | None] = mapped_column(String(100))  # what the keyword named when it was texted
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    sender_name: Mapped[str] = mapped_column(String(64))  # the code it reached: answers go from it
    shared_keyword: Mapped[str | None] = mapped_column(String(32))  # a shared code's keyword it started with
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ZoneSubscription(Base):
    """A contact reached by alerts to zone `zone_name` without a location in it (registered by SMS).

    By name, so it holds across the zone's versions. Targeting counts it as one of the contact's
    places, labelled `label` (geo/reach.py)."""

    __tablename__ = "zone_subscriptions"

    zone_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"),
                                            primary_key=True, index=True)
    label: Mapped[str] = mapped_column(String(32), default="registered")
    registration_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()
