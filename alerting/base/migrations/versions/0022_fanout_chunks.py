"""fanout_chunks: contact ranges of an alert claimed for writing and not yet written

Revision ID: 0022_fanout_chunks
Revises: 0021_drop_location_gist

After an alert's first chunk, its fan-out runs in lanes (broadcast.jobs.FAN_OUT_LANES) that
write chunks at the same time. A lane claims the next contact range under the alert's row lock
(a row here, the alert's fanout_cursor moved past it, committed at once), then writes that
range's deliveries in a transaction of its own, which deletes the row. A lane that dies leaves
its row, and the next run takes it (FOR UPDATE SKIP LOCKED): no range is lost or written twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_fanout_chunks"
down_revision = "0021_drop_location_gist"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fanout_chunks",
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("lo", sa.BigInteger(), nullable=False),
        sa.Column("hi", sa.BigInteger(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name="fk_fanout_chunks_alert_id_alerts",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alert_id", "lo", name="pk_fanout_chunks"),
        sa.CheckConstraint("lo <= hi", name="ck_fanout_chunks_range"),
    )


def downgrade() -> None:
    op.drop_table("fanout_chunks")
