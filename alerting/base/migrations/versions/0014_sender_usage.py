"""sender_usage: parts sent today per capped sender, shared by every gateway process

Revision ID: 0014_sender_usage
Revises: 0010_deliveries_no_fk

A long number's daily cap was counted in each gateway process's memory, so N workers (or one
worker restarted in a loop) could send N times the cap. Each slice now reserves its parts here
(one INSERT … ON CONFLICT DO UPDATE, row-locked) before it is submitted and gives back what it did not use.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_sender_usage"
down_revision = "0010_deliveries_no_fk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sender_usage",
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_grant", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("sender", "day", name="pk_sender_usage"),
        sa.CheckConstraint("parts >= 0", name="ck_sender_usage_parts_not_negative"),
    )


def downgrade() -> None:
    op.drop_table("sender_usage")
