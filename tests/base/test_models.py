"""Every table the migrations make has its model in alerting/base/models, with the same columns and
the same nullability, so code that reads a table through its model reads what is there."""

from sqlalchemy import inspect

import alerting.base.models  # noqa: F401  (registers every table)
from alerting.base.db import Base

NOT_OURS = {"public.alembic_version", "public.spatial_ref_sys"}


def _migrated_tables(db):  # type: ignore[no-untyped-def]
    inspector = inspect(db.connection())
    names = {f"{schema}.{name}" for schema in ("public", "audit") for name in inspector.get_table_names(schema=schema)}
    return names, inspector


def test_every_migrated_table_has_a_model_and_every_model_a_table(db):
    tables, _ = _migrated_tables(db)
    modelled = {(t.schema or "public") + "." + t.name for t in Base.metadata.tables.values()}
    assert set(tables) - NOT_OURS == modelled


def test_each_model_has_the_columns_of_its_table(db):
    _, inspector = _migrated_tables(db)
    for table in Base.metadata.tables.values():
        schema = table.schema or "public"
        columns = {c["name"]: c for c in inspector.get_columns(table.name, schema=schema)}
        assert set(columns) == {c.name for c in table.columns}, f"{schema}.{table.name}"
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, f"{schema}.{table.name}.{column.name}"
