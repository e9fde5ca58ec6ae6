"""followups.possible_duplicates: re-sends of a follow-up that may already have gone out, counted

Revision ID: 0016_followup_duplicates
Revises: 0015_carrier_health

Deliveries counted every attempt that may have reached a carrier; follow-ups (re-sends at the ACK
deadline, HELP notices, direct answers) did not, so a duplicate there went uncounted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_followup_duplicates"
down_revision = "0015_carrier_health"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("followups", sa.Column("possible_duplicates", sa.SmallInteger(), nullable=False,
                                         server_default="0"))


def downgrade() -> None:
    op.drop_column("followups", "possible_duplicates")
