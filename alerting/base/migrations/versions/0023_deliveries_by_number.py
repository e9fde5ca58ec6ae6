"""Replies find their delivery by number: one index fewer on every delivery written

Revision ID: 0023_deliveries_by_number
Revises: 0022_fanout_chunks

A reply was matched through the contact that owns its number, then that contact's deliveries
(ix_deliveries_contact_id). It is now matched to the delivery sent to the number that answers:
the alerts sent within the reply window (ix_alerts_reply_window, a partial index holding only
sending and completed alerts), then the unique (alert_id, msisdn) index. Nothing else searched
deliveries by contact, and every fan-out row paid for that index: bench/targeting.py, 1M
contacts, 371,635 deliveries in 2.03-2.31 s with it, 1.79-1.82 s without.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_deliveries_by_number"
down_revision = "0022_fanout_chunks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alerts_reply_window", "alerts", [sa.text("coalesce(sending_at, approved_at)")],
                    postgresql_where=sa.text("state IN ('sending', 'completed')"))
    op.drop_index("ix_deliveries_contact_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_contact_id", "deliveries", ["contact_id"])
    op.drop_index("ix_alerts_reply_window", table_name="alerts")
