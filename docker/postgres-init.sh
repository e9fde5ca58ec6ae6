#!/bin/sh
# Runs once, when the PostGIS container initialises an empty data directory: the two Sirena roles
# with passwords (the database, PostGIS and grants are made by `sirena setup` in the setup service).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE sirena_owner LOGIN PASSWORD '${SIRENA_OWNER_PASSWORD}';
CREATE ROLE sirena_app LOGIN PASSWORD '${SIRENA_APP_PASSWORD}';
SQL
