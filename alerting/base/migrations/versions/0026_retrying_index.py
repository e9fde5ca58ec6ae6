"""An index on the carrier re-sends still on their way: the live counts' `retrying`

Revision ID: 0026_retrying_index
Revises: 0025_replies_reach_people

Issue 20: "failed" went down while sending (771 → 233) because an undelivered message re-sent
through another carrier is delivered after all. The live counts now tell failed-final from
retrying (broadcast.jobs.counts_by_state) by counting an alert's carrier re-sends not yet final,
on every live update: this partial index holds only those (a few rows), where the alert's index
on followups would walk every re-send to non-responders too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026_retrying_index"
down_revision = "0025_replies_reach_people"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_followups_retry_pending", "followups", ["alert_id"],
                    postgresql_where=sa.text("kind = 'carrier_retry' AND state IN ('queued', 'submitting', 'submitted')"))


def downgrade() -> None:
    op.drop_index("ix_followups_retry_pending", table_name="followups")
