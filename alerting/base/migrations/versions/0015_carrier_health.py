"""carrier_health: each carrier's standing from its delivery receipts, read by every gateway

Revision ID: 0015_carrier_health
Revises: 0014_sender_usage

The scheduler's pass judges each carrier from the receipts of the last minutes (failure rate and
delivery latency against the other carriers) and writes the verdict here; gateways read it and
give a degraded carrier a smaller share of the traffic. Changes are audited.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_carrier_health"
down_revision = "0014_sender_usage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "carrier_health",
        sa.Column("carrier", sa.String(64), nullable=False),
        sa.Column("degraded", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("finals", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failure_rate", sa.Float(), nullable=False, server_default="0"),
        sa.Column("latency_p90_s", sa.Float(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("carrier", name="pk_carrier_health"),
    )


def downgrade() -> None:
    op.drop_table("carrier_health")
