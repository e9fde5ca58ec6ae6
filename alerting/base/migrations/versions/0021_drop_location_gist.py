"""Drop the GiST index of contact_locations.geom: the cell keys (0020) replaced every search by it

Revision ID: 0021_drop_location_gist
Revises: 0020_target_cells

Targeting and the review map find a zone's points by key ranges of ix_contact_locations_cell and
test only the points of boundary cells, one by one (no index). Keeping the GiST index cost 16 of
the 20 s that writing 1.29M imported locations took (a million-contact import went from 59 s to
72 s with the cell index added beside it).
"""

from __future__ import annotations

from alembic import op

revision = "0021_drop_location_gist"
down_revision = "0020_target_cells"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_contact_locations_geom", table_name="contact_locations", postgresql_using="gist")


def downgrade() -> None:
    op.create_index("ix_contact_locations_geom", "contact_locations", ["geom"], unique=False, postgresql_using="gist")
