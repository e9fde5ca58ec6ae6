"""incidents, alerts.incident_id: an incident groups its alerts, corrections and cancellations

Revision ID: 0030_incidents
Revises: 0026_retrying_index

Issue 21: nothing reviewed an incident after the fact across its alerts. An incident is opened
by an operator (audited), an alert joins it when composed or later ("add to incident"), and a
correction or cancellation notice joins its original's incident by itself. Its after-action
report (alerting/alerts/report.py) reads the alerts by this partial index: most alerts belong to
no incident, and the index holds only those that do.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030_incidents"
down_revision = "0026_retrying_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("opened_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.ForeignKeyConstraint(["opened_by_id"], ["operators.id"], name="fk_incidents_opened_by_id_operators"),
        sa.ForeignKeyConstraint(["closed_by_id"], ["operators.id"], name="fk_incidents_closed_by_id_operators"),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
        sa.UniqueConstraint("reference", name="uq_incidents_reference"),
    )
    op.add_column("alerts", sa.Column("incident_id", sa.Integer(), nullable=True))
    op.create_foreign_key("fk_alerts_incident_id_incidents", "alerts", "incidents", ["incident_id"], ["id"])
    op.create_index("ix_alerts_incident_id", "alerts", ["incident_id"],
                    postgresql_where=sa.text("incident_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_alerts_incident_id", table_name="alerts")
    op.drop_constraint("fk_alerts_incident_id_incidents", "alerts", type_="foreignkey")
    op.drop_column("alerts", "incident_id")
    op.drop_table("incidents")
