"""senders.is_default; replies.handled_at/handled_by_id: no reply lost, every HELP seen by a person

Revision ID: 0025_replies_reach_people
Revises: 0024_alert_authors

Issue 20. The console offered a shared short code first (alphabetical), and replies without its
keyword were lost: the carriers file now names a `default_sender` (a dedicated two-way code),
mirrored here. A HELP stays pinned on the dashboard and its alert's page until an operator marks
it handled: who and when are kept on the reply (and audited); a partial index finds the open ones.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025_replies_reach_people"
down_revision = "0024_alert_authors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("senders", sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("replies", sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("replies", sa.Column("handled_by_id", sa.Integer(), nullable=True))
    op.create_foreign_key("fk_replies_handled_by_id_operators", "replies", "operators", ["handled_by_id"], ["id"])
    op.create_index("ix_replies_open_help", "replies", ["id"],
                    postgresql_where=sa.text("meaning = 'help' AND handled_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_replies_open_help", table_name="replies")
    op.drop_constraint("fk_replies_handled_by_id_operators", "replies", type_="foreignkey")
    op.drop_column("replies", "handled_by_id")
    op.drop_column("replies", "handled_at")
    op.drop_column("senders", "is_default")
