"""Alembic environment: runs as the schema owner, URL passed in by alerting.base.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import alerting.base.models  # noqa: F401  (registers every table)
from alerting.base.db import Base

config = context.config


def run_migrations_online() -> None:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    connectable = config.attributes.get("connection")
    if connectable is None:
        if not url:
            raise RuntimeError("migrations: no database URL (alembic config attribute \"url\" or sqlalchemy.url)")
        engine = create_engine(url, poolclass=pool.NullPool, connect_args={"options": "-c timezone=UTC"})
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _include_object(obj, name, type_, reflected, compare_to):
    # PostGIS's own tables and the audit schema's objects are not ours to autogenerate.
    if type_ == "table" and name in {"spatial_ref_sys"}:
        return False
    return not (type_ == "table" and getattr(obj, "schema", None) == "audit")


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=_include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
