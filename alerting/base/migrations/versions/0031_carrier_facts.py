"""Each carrier's facts the inbound side needs, in PostgreSQL: any worker can read receipts

Revision ID: 0031_carrier_facts
Revises: 0026_retrying_index

Issue 18: a receipt's message id is compared in its carrier's style (hex, decimal, …) and an
undelivered message is re-sent through another carrier of its sender; both facts came from the
carriers file held in a gateway worker's memory, so only a process with a gateway could interpret
receipts. `sirena setup` and every gateway worker at start now mirror them here with the senders
(broadcast/carrier_facts.py), and the inbound jobs read them from this table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0031_carrier_facts"
down_revision = "0026_retrying_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "carriers",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("receipt_id_style", sa.String(24), nullable=False, server_default="string"),
        sa.Column("test", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("senders", postgresql.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("carriers")
