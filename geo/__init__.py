"""Zones and the spatial part of targeting. Importing the package registers geo's tables."""

from geo import cells as _cells  # noqa: F401  (zone_cells on Base.metadata, for Alembic)
from geo import parts as _parts  # noqa: F401  (zone_parts on Base.metadata, for Alembic)
