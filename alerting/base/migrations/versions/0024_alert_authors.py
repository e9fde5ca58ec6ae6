"""alert_authors: everyone who wrote a version of an alert; approvals record both recipient counts

Revision ID: 0024_alert_authors
Revises: 0023_deliveries_by_number

Issue 16: the two-person rule compared the approver with the composer only, so an operator who
rewrote someone else's draft could then approve their own text. Now every operator who composed,
edited (text, target, correction texts) or submitted any version of an alert, or proposed a
correction, is one of its authors (alert_authors), and no author may approve it.

Alerts written before this migration get their authors from the composer column and from the
audit trail (alert.edited, alert.correction_texts_set, alert.submitted, by operator id), so an
alert pending approval at upgrade time is bound by the rule too.

alert_approvals gains the recipients counted at submission and at approval: a drift within
max(1 % of the submitted count, 10) no longer voids the approval (alerting/alerts/approvals.py), and
both counts are kept with it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_alert_authors"
down_revision = "0023_deliveries_by_number"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_authors",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name="fk_alert_authors_alert_id_alerts",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"], name="fk_alert_authors_operator_id_operators"),
        sa.PrimaryKeyConstraint("alert_id", "operator_id", "role", name="pk_alert_authors"),
        sa.CheckConstraint("role IN ('composer', 'editor', 'submitter')", name="ck_alert_authors_role"),
    )
    op.execute("""
        INSERT INTO alert_authors (alert_id, operator_id, role, at)
        SELECT id, composed_by_id, 'composer', created_at FROM alerts WHERE composed_by_id IS NOT NULL
        ON CONFLICT DO NOTHING
    """)
    op.execute("""
        INSERT INTO alert_authors (alert_id, operator_id, role, at)
        SELECT a.id, e.actor_operator_id,
               CASE e.action WHEN 'alert.submitted' THEN 'submitter' ELSE 'editor' END, min(e.at)
          FROM audit.events e
          JOIN alerts a ON e.subject_type = 'alert' AND e.subject_id = a.id::text
          JOIN operators o ON o.id = e.actor_operator_id
         WHERE e.action IN ('alert.edited', 'alert.correction_texts_set', 'alert.submitted')
           AND e.outcome = 'done'
         GROUP BY 1, 2, 3
        ON CONFLICT DO NOTHING
    """)
    op.add_column("alert_approvals", sa.Column("submitted_recipients", sa.Integer(), nullable=True))
    op.add_column("alert_approvals", sa.Column("recipients_at_approval", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("alert_approvals", "recipients_at_approval")
    op.drop_column("alert_approvals", "submitted_recipients")
    op.drop_table("alert_authors")
