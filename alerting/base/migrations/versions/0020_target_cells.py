"""contact_locations.cell and zone_cells: most points decided by key ranges, not geometry tests

Revision ID: 0020_target_cells
Revises: 0019_safety

Every located point gets a bigint cell key (Z-order of its quantized lon/lat, geo.cells), a
stored generated column so every writer (import, console, API, demo) sets it, with a btree
index that INCLUDEs contact_id and label: a zone's inside key ranges are answered by index-only
range scans. Each zone version gets its covering (zone_cells): key ranges wholly inside it,
and boundary ranges whose points still get the exact ST_Intersects test. Existing locations get
their key when the column is added (a table rewrite); existing zone versions their covering here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from geo.cells import CELL_FUNCTION_SQL, write_covering

revision = "0020_target_cells"
down_revision = "0019_safety"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(CELL_FUNCTION_SQL)
    op.execute("ALTER TABLE contact_locations ADD COLUMN cell bigint "
               "GENERATED ALWAYS AS (public.sirena_cell(geom)) STORED")
    op.create_index("ix_contact_locations_cell", "contact_locations", ["cell"],
                    postgresql_include=["contact_id", "label"])
    op.create_table(
        "zone_cells",
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("lo", sa.BigInteger(), nullable=False),
        sa.Column("hi", sa.BigInteger(), nullable=False),
        sa.Column("inside", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"], name=op.f("fk_zone_cells_zone_id_zones"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("zone_id", "lo", name=op.f("pk_zone_cells")),
    )
    bind = op.get_bind()
    for (zone_id,) in bind.execute(sa.text("SELECT id FROM zones ORDER BY id")).all():
        write_covering(bind, zone_id)
    op.execute("ANALYZE contact_locations")


def downgrade() -> None:
    op.drop_table("zone_cells")
    op.drop_index("ix_contact_locations_cell", table_name="contact_locations")
    op.drop_column("contact_locations", "cell")
    op.execute("DROP FUNCTION public.sirena_cell(public.geometry)")
