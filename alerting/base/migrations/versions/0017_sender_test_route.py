"""senders.test_route: whether a carrier marked `test` carries the sender (exercise/test alerts need one)

Revision ID: 0017_sender_test_route
Revises: 0016_followup_duplicates

Approval refuses an alert whose sender no carrier can take (and an exercise or test alert whose
sender no test carrier carries), instead of approving it and failing every delivery at send.
Gateways rewrite both flags from the carriers file when they start (`sync_senders`); rows that
exist before this migration keep working until then.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_sender_test_route"
down_revision = "0016_followup_duplicates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("senders", sa.Column("test_route", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE senders SET test_route = active")


def downgrade() -> None:
    op.drop_column("senders", "test_route")
