"""alerts.submitted_recipients: the recipients count fixed at submission, bound by the approval hash

Revision ID: 0019_safety
Revises: 0013_import_speed

Issue 9: the approval is bound to a hash of what phones will show, the resolved target (count
and zone versions) and the mode. The count is fixed when the alert is submitted; an approver is
refused if the target resolves to another count by the time they approve. Alerts submitted
before this migration have no count (NULL), and their hash is unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_safety"
down_revision = "0013_import_speed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("submitted_recipients", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("alerts", "submitted_recipients")
