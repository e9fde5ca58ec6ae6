"""Zones and the spatial part of targeting (the zone tables are in alerting/base/models/zones.py)."""
