"""The directory: contacts with labelled locations, and static or dynamic groups."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base, created_at_column, enum_type


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_attributes", "attributes", postgresql_using="gin"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(16), unique=True)  # E.164, "+56912345678"
    name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(8), default="es")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    opted_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    opted_out_reason: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verification_state: Mapped[str | None] = mapped_column(String(16))  # verified / unverified / pending
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


# A contact's numbers in the order they are tried: contacts.msisdn, then positions 2 and 3.
MORE_NUMBER_POSITIONS = (2, 3)


class ContactNumber(Base):
    """A contact's second or third number (migration 0028). The first is `contacts.msisdn`.

    A number belongs to one contact: unique here, and a trigger refuses one that is another
    contact's first number. No foreign key: contacts' delete trigger removes these (as 0013).
    """

    __tablename__ = "contact_numbers"
    __table_args__ = (CheckConstraint("position BETWEEN 2 AND 3", name="position"),)

    contact_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = created_at_column()


class ContactLocation(Base):
    """A labelled place of a contact (home, work, station). Zones match any of them."""

    __tablename__ = "contact_locations"
    __table_args__ = (
        # Zones' key ranges (geo.cells), answered index-only: contact_id and label ride along.
        # No GiST on geom (migration 0021): nothing searches by it since the cell keys, and its
        # upkeep was 16 of 20 s of writing 1.29M imported locations.
        Index("ix_contact_locations_cell", "cell", postgresql_include=["contact_id", "label"]),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # No foreign key (a look-up per imported row): deleting contacts cascades by a trigger, see 0013.
    contact_id: Mapped[int] = mapped_column(BigInteger, index=True)
    label: Mapped[str] = mapped_column(String(32), default="home")
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    # Z-order key of the point (geo.cells), computed by PostgreSQL: no writer can forget it.
    cell: Mapped[int | None] = mapped_column(BigInteger, Computed("public.sirena_cell(geom)", persisted=True))


class GroupKind(enum.StrEnum):
    STATIC = "static"  # a membership list
    DYNAMIC = "dynamic"  # a stored criterion, evaluated at send time


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[GroupKind] = mapped_column(enum_type(GroupKind), default=GroupKind.STATIC)
    criterion: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    description: Mapped[str] = mapped_column(Text, default="")
    # Exercise and test alerts may only reach groups marked for drills.
    drill_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = created_at_column()


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)  # no FK: see 0013


class ContactImport(Base):
    """One run of a contact import, with its counts and where the rejects report went."""

    __tablename__ = "contact_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(Text)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejects_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
