"""deliveries: no foreign keys to contacts and alerts (history that outlives them, written fast)

Revision ID: 0010_deliveries_no_fk
Revises: 0009_merge

A delivery is the record of what was sent to a number: it must outlive the contact (deleting a
contact must not rewrite what an auditor reads), and alerts are never deleted. The two foreign
keys cost a look-up per row on the hot insert: materializing 371,635 deliveries for a 1M-contact
target took 5.27 s with them, 4.07 s without the contacts key, 3.16 s without both
(bench/targeting.py, quiet machine).
"""

from __future__ import annotations

from alembic import op

revision = "0010_deliveries_no_fk"
down_revision = "0009_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("fk_deliveries_contact_id_contacts", "deliveries", type_="foreignkey")
    op.drop_constraint("fk_deliveries_alert_id_alerts", "deliveries", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key("fk_deliveries_alert_id_alerts", "deliveries", "alerts", ["alert_id"], ["id"],
                          ondelete="CASCADE")
    op.create_foreign_key("fk_deliveries_contact_id_contacts", "deliveries", "contacts", ["contact_id"], ["id"],
                          ondelete="SET NULL")
