"""intake: API idempotency keys, webhooks, e-mail senders and kept mail, CAP messages, schedules

Revision ID: 0008_intake
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_intake"
down_revision = "0001"
branch_labels = None
depends_on = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "api_idempotency",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("token_id", sa.Integer(), sa.ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("response", postgresql.JSONB()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("token_id", "key", name="uq_api_idempotency_token_id_key"),
    )
    op.create_table(
        "webhook_subscribers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.String(40)), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("operators.id")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("subscriber_id", sa.Integer(), sa.ForeignKey("webhook_subscribers.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("event_id", sa.String(80), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("last_status", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("subscriber_id", "event_id", name="uq_webhook_deliveries_subscriber_id_event_id"),
    )
    # The retry sweep: pending rows that are due.
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("state = 'pending'"))
    op.create_table(
        "webhook_cursors",
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "intake_senders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("address", sa.String(254), nullable=False, unique=True),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    )
    op.create_table(
        "intake_messages",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False, server_default=""),
        sa.Column("subject", sa.Text(), nullable=False, server_default=""),
        sa.Column("raw", sa.LargeBinary()),
        sa.Column("size_bytes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="SET NULL")),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
    )
    # The review queue: refused and malformed mail not yet looked at.
    op.create_index("ix_intake_messages_review", "intake_messages", ["received_at"],
                    postgresql_where=sa.text("reviewed_at IS NULL AND outcome <> 'draft_created'"))
    op.create_table(
        "cap_messages",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("identifier", sa.Text(), nullable=False),
        sa.Column("sent", sa.String(32), nullable=False),
        sa.Column("msg_type", sa.String(8), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),  # "in" imported, "out" exported by us
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="SET NULL")),
        sa.Column("signed_by", sa.Text()),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.UniqueConstraint("sender", "identifier", "sent", name="uq_cap_messages_sender_identifier_sent"),
    )
    op.create_index("ix_cap_messages_alert_id", "cap_messages", ["alert_id"])
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("rule", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("template", postgresql.JSONB(), nullable=False),
        sa.Column("policy", sa.String(24), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True)),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("quiet_override_reason", sa.Text()),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("approved_by_id", sa.Integer(), sa.ForeignKey("operators.id")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    )
    op.create_index("ix_schedules_due", "schedules", ["next_run_at"], postgresql_where=sa.text("active"))
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("schedule_id", sa.Integer(), sa.ForeignKey("schedules.id", ondelete="CASCADE"), nullable=False),
        sa.Column("occurrence_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="SET NULL")),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.UniqueConstraint("schedule_id", "occurrence_at", name="uq_schedule_runs_schedule_id_occurrence_at"),
    )


def downgrade() -> None:
    for table in ("schedule_runs", "schedules", "cap_messages", "intake_messages", "intake_senders",
                  "webhook_cursors", "webhook_deliveries", "webhook_subscribers", "api_idempotency"):
        op.drop_table(table)
