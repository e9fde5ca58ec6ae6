"""merge: one head again after the parallel first migrations

Revision ID: 0009_merge
Revises: 0002_audit, 0003_geo, 0005_pipeline, 0006_inbound, 0007_web, 0008_intake
"""

from __future__ import annotations

revision = "0009_merge"
down_revision = ("0002_audit", "0003_geo", "0005_pipeline", "0006_inbound", "0007_web", "0008_intake")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the next migration revises this one, so the chain has a single head."""


def downgrade() -> None:
    """Nothing to undo."""
