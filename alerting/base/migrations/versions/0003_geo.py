"""geo: zone_parts, each zone version subdivided for the GiST index

Revision ID: 0003_geo
Revises: 0001
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision = "0003_geo"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zone_parts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("part_no", sa.Integer(), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(geometry_type="POLYGON", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"], ["zones.id"], name=op.f("fk_zone_parts_zone_id_zones"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zone_parts")),
    )
    op.create_index(op.f("ix_zone_parts_zone_id"), "zone_parts", ["zone_id"], unique=False)
    # Targeting joins contact points to these pieces; the pieces' tight boxes are what make it fast.
    op.create_index("ix_zone_parts_geom", "zone_parts", ["geom"], unique=False, postgresql_using="gist")
    # Zones saved before this revision get their pieces now (same cut as geo.parts.subdivide_zone).
    op.execute(
        "INSERT INTO zone_parts (zone_id, part_no, geom) "
        "SELECT z.id, row_number() OVER (PARTITION BY z.id), piece "
        "FROM zones z, LATERAL ST_Subdivide(z.geom, 64) AS piece"
    )


def downgrade() -> None:
    op.drop_index("ix_zone_parts_geom", table_name="zone_parts", postgresql_using="gist")
    op.drop_index(op.f("ix_zone_parts_zone_id"), table_name="zone_parts")
    op.drop_table("zone_parts")
