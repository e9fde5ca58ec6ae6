"""web: server-side console sessions, and the correction/cancel texts pre-armed on an alert

Revision ID: 0007_web
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_web"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        # Only the SHA-256 of the cookie value is stored: a copy of this table opens no session.
        sa.Column("id_sha256", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"], name=op.f("fk_web_sessions_operator_id_operators"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_web_sessions")),
    )
    # "Sign out everywhere" and the password change revoke an operator's live sessions.
    op.create_index(op.f("ix_web_sessions_operator_id"), "web_sessions", ["operator_id"],
                    postgresql_where=sa.text("revoked_at IS NULL"))
    # The purge of expired sessions.
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"])
    op.create_table(
        "alert_prearmed",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("correction_texts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("cancel_texts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("texts_sha256", sa.String(64), nullable=False),
        sa.Column("armed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("armed_by_id", sa.Integer(), nullable=True),
        sa.Column("fired_alert_id", sa.Integer(), nullable=True),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_prearmed_alert_id_alerts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["armed_by_id"], ["operators.id"], name=op.f("fk_alert_prearmed_armed_by_id_operators")),
        sa.ForeignKeyConstraint(["fired_alert_id"], ["alerts.id"],
                                name=op.f("fk_alert_prearmed_fired_alert_id_alerts")),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alert_prearmed")),
    )


def downgrade() -> None:
    op.drop_table("alert_prearmed")
    op.drop_index(op.f("ix_web_sessions_expires_at"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_operator_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
