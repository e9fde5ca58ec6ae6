"""Approved message templates: the library of pre-scripted texts an operator starts an alert from.

Rules live in alerting/alerts/templates.py (the library and its two-person approval) and
alerting/alerts/template_use.py (composing from one; the one-approver rule). Migration 0029.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import DateTime

from alerting.base.db import Base, created_at_column, enum_type


class TemplateState(enum.StrEnum):
    DRAFT = "draft"  # being written; any edit of any state comes back here
    PENDING_APPROVAL = "pending_approval"  # submitted: its approval hash is fixed
    APPROVED = "approved"  # two operators other than its authors approved this version
    REJECTED = "rejected"  # sent back with a reason; editable
    RETIRED = "retired"  # no longer offered; an edit brings it back as a draft


class MessageTemplate(Base):
    """One template, at its current version (earlier versions: TemplateVersion)."""

    __tablename__ = "message_templates"
    __table_args__ = (CheckConstraint("required_approvals >= 2", name="two_approvals"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # "evacuate": what the CLI and API name it by
    # {"es": "Evacuación", "en": "Evacuation"}: shown in the operator's language
    titles: Mapped[dict[str, str]] = mapped_column(JSONB)
    # {"es": "...", "en": "..."}: the SMS per language, declared placeholders written {name}
    texts: Mapped[dict[str, str]] = mapped_column(JSONB)
    # [{"name": "lugar", "default": "su sector"}, {"name": "hora", "default": null}]
    placeholders: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    priority_hint: Mapped[str | None] = mapped_column(String(16))  # what compose preselects
    mode_hint: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[TemplateState] = mapped_column(enum_type(TemplateState), default=TemplateState.DRAFT)
    version: Mapped[int] = mapped_column(Integer, default=1)  # +1 on every edit
    # SHA-256 over name, titles, texts, placeholders and hints, fixed at submission; approvals bind to it.
    approval_hash: Mapped[str | None] = mapped_column(String(64))
    required_approvals: Mapped[int] = mapped_column(Integer, default=2)
    reason: Mapped[str | None] = mapped_column(Text)  # rejection or retirement reason
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TemplateVersion(Base):
    """Every version a template had, as written: the history page, and what an alert points at."""

    __tablename__ = "message_template_versions"

    template_id: Mapped[int] = mapped_column(ForeignKey("message_templates.id", ondelete="CASCADE"),
                                             primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    titles: Mapped[dict[str, str]] = mapped_column(JSONB)
    texts: Mapped[dict[str, str]] = mapped_column(JSONB)
    placeholders: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    priority_hint: Mapped[str | None] = mapped_column(String(16))
    mode_hint: Mapped[str | None] = mapped_column(String(16))
    content_hash: Mapped[str] = mapped_column(String(64))
    written_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    written_at: Mapped[datetime] = created_at_column()
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TemplateAuthor(Base):
    """An operator who wrote a version of a template: never one of its approvers."""

    __tablename__ = "message_template_authors"

    template_id: Mapped[int] = mapped_column(ForeignKey("message_templates.id", ondelete="CASCADE"),
                                             primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)  # composer / editor / submitter
    at: Mapped[datetime] = created_at_column()


class TemplateApproval(Base):
    """One approval of one version by one operator, bound to the approval hash it saw."""

    __tablename__ = "message_template_approvals"
    __table_args__ = (UniqueConstraint("template_id", "version", "operator_id", name="uq_template_approvals_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("message_templates.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    approval_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_column()
