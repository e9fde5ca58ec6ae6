"""Alerts and their approvals. State changes happen only in alerting/alerts/lifecycle.py."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from alerting.base.db import Base, created_at_column, enum_type, utcnow
from alerting.base.errors import InvalidTransition


class AlertMode(enum.StrEnum):
    LIVE = "live"
    EXERCISE = "exercise"  # a drill: prefixed SIMULACRO/EXERCISE, drill groups and test carriers only
    TEST = "test"  # a technical test: prefixed PRUEBA/TEST, same restrictions


class Priority(enum.StrEnum):
    FLASH = "flash"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def queue_name(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        """0 is most urgent; used to order claims in SQL."""
        return ["flash", "high", "normal", "low"].index(self.value)


class AlertState(enum.StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"  # replaced by a correction


class AlertKind(enum.StrEnum):
    ALERT = "alert"
    CORRECTION = "correction"  # goes to everyone who got (or was queued to get) the original
    CANCEL = "cancel"


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_state_scheduled_at", "state", "scheduled_at"),
        # The alerts a reply may answer (broadcast.replies): sent within the window (migration 0023).
        Index("ix_alerts_reply_window", text("coalesce(sending_at, approved_at)"),
              postgresql_where=text("state IN ('sending', 'completed')")),
        # An incident's alerts (its report); most alerts belong to none (migration 0030).
        Index("ix_alerts_incident_id", "incident_id", postgresql_where=text("incident_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)  # "A-2026-000042", shown to people
    reply_code: Mapped[str] = mapped_column(String(8))  # "4821": replies quote it ("ACK 4821")
    kind: Mapped[AlertKind] = mapped_column(enum_type(AlertKind), default=AlertKind.ALERT)
    mode: Mapped[AlertMode] = mapped_column(enum_type(AlertMode))
    priority: Mapped[Priority] = mapped_column(enum_type(Priority), default=Priority.NORMAL)
    state: Mapped[AlertState] = mapped_column(enum_type(AlertState), default=AlertState.DRAFT)
    title: Mapped[str] = mapped_column(String(200), default="")
    sender_name: Mapped[str] = mapped_column(String(64))
    # {"es": "...", "en": "..."}: the text per language as the operator wrote it (no prefix).
    texts: Mapped[dict[str, str]] = mapped_column(JSONB)
    # {"zones": [...], "groups": [...], "criteria": {...}, "exclude_groups": [...], "exclude_numbers": [...]}
    target: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # What the target resolved to when approved: zone versions, counts (the blast radius).
    resolved: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    ack_deadline_s: Mapped[int | None] = mapped_column(Integer)
    escalation: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    poll_options: Mapped[list[str] | None] = mapped_column(JSONB)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    corrects_alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    # The incident it belongs to (alerting/alerts/incidents.py); a correction joins its original's.
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    composed_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    # SHA-256 over what phones will show, the resolved target and the mode; an edit voids it.
    approval_hash: Mapped[str | None] = mapped_column(String(64))
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    # Recipients the target resolved to at submission (bound by the approval hash); NULL for a
    # correction, whose audience is the original's deliveries, and for alerts from before 0019.
    submitted_recipients: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)  # rejection / cancellation / override reason
    origin: Mapped[str] = mapped_column(String(16), default="console")  # console/api/email/cap/cli
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    cap_identifier: Mapped[str | None] = mapped_column(Text)
    # The approved template version it was built from and the values of its declared placeholders
    # (alerting/alerts/template_use.py): unchanged but for them, it needs one approver (migration 0029).
    template_id: Mapped[int | None] = mapped_column(ForeignKey("message_templates.id"))
    template_version: Mapped[int | None] = mapped_column(Integer)
    template_values: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at_column()
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sending_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = created_at_column()
    # Fan-out progress: the last contact id materialized, and whether every chunk is written.
    fanout_cursor: Mapped[int | None] = mapped_column(BigInteger)
    fanout_done: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    first_submit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_submit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AlertCounter(Base):
    """Live counts per alert, state and carrier, kept by statement triggers on deliveries."""

    __tablename__ = "alert_counters"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(24), primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class AlertApproval(Base):
    """One approval by one operator, bound to the approval hash it saw."""

    __tablename__ = "alert_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    approval_hash: Mapped[str] = mapped_column(String(64))
    override_reason: Mapped[str | None] = mapped_column(Text)
    # The recipients counted at submission and when this approval was given (a small drift is
    # tolerated: alerting/alerts/guards.py). NULL for corrections and approvals from before 0024.
    submitted_recipients: Mapped[int | None] = mapped_column(Integer)
    recipients_at_approval: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()


class AuthorRole(enum.StrEnum):
    COMPOSER = "composer"  # wrote the first version (or proposed the correction)
    EDITOR = "editor"  # changed a version: text, target, options, correction texts
    SUBMITTER = "submitter"  # sent a version for approval


class AlertAuthor(Base):
    """An operator who wrote a version of an alert. No author may approve it (alerting/alerts/lifecycle.py)."""

    __tablename__ = "alert_authors"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    at: Mapped[datetime] = created_at_column()


class PrearmedTexts(Base):
    """The correction and cancellation texts of one alert, approved with it."""

    __tablename__ = "alert_prearmed"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    correction_texts: Mapped[dict[str, str]] = mapped_column(JSONB)
    cancel_texts: Mapped[dict[str, str]] = mapped_column(JSONB)
    texts_sha256: Mapped[str] = mapped_column(String(64))
    armed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    armed_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    fired_alert_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("alerts.id"))
    fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = created_at_column()


# The alert state machine: every interface and job moves an alert through move_alert.
_S = AlertState
TRANSITIONS: dict[AlertState, frozenset[AlertState]] = {
    _S.DRAFT: frozenset({_S.PENDING_APPROVAL, _S.CANCELLED}),
    _S.PENDING_APPROVAL: frozenset({_S.APPROVED, _S.SCHEDULED, _S.REJECTED, _S.DRAFT, _S.CANCELLED}),
    _S.REJECTED: frozenset({_S.DRAFT}),
    _S.APPROVED: frozenset({_S.SCHEDULED, _S.SENDING, _S.CANCELLED}),
    _S.SCHEDULED: frozenset({_S.SENDING, _S.CANCELLED}),
    _S.SENDING: frozenset({_S.COMPLETED, _S.CANCELLED, _S.SUPERSEDED}),
    _S.COMPLETED: frozenset({_S.SUPERSEDED}),
    _S.CANCELLED: frozenset({_S.SUPERSEDED}),
    _S.SUPERSEDED: frozenset(),
}


def check_transition(alert: Alert, to: AlertState) -> None:
    """Raise InvalidTransition unless `alert` may move to `to`."""
    if to not in TRANSITIONS[alert.state]:
        raise InvalidTransition(
            f"alert {alert.reference} is {alert.state.value}; it cannot become {to.value}",
            alert_id=alert.id, state=alert.state.value, to=to.value,
        )


def move_alert(alert: Alert, to: AlertState) -> None:
    """The one way an alert changes state: checked against TRANSITIONS, stamped."""
    check_transition(alert, to)
    alert.state = to
    alert.updated_at = utcnow()
