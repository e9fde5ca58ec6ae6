"""merge: one head again after issue 18's carrier facts and issue 21's parallel migrations

Revision ID: 0032_merge
Revises: 0027_self_registration, 0028_contact_numbers, 0029_templates_areas, 0030_incidents,
    0031_carrier_facts
"""

from __future__ import annotations

revision = "0032_merge"
down_revision = ("0027_self_registration", "0028_contact_numbers", "0029_templates_areas", "0030_incidents",
                 "0031_carrier_facts")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the next migration revises this one, so the chain has a single head."""


def downgrade() -> None:
    """Nothing to undo."""
