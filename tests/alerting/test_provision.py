"""`sirena setup` is idempotent: a second run changes nothing."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from alerting.provision import run_setup


def test_second_setup_run_changes_nothing(base_settings, tmp_path):
    name = f"sirena_test_setup_{tmp_path.name[-12:].replace('-', '_').lower()}"
    settings = replace(
        base_settings,
        database_url=make_url(base_settings.database_url).set(database=name).render_as_string(hide_password=False),
        database_owner_url=make_url(base_settings.database_owner_url).set(database=name).render_as_string(
            hide_password=False),
        secret_key_file=tmp_path / "secret_key",
    )
    try:
        first = run_setup(settings, lambda _m: None)
        assert any("created database" in a for a in first.actions)
        assert any("migrated" in a for a in first.actions)
        assert settings.secret_key_file.stat().st_mode & 0o777 == 0o600
        second = run_setup(settings, lambda _m: None)
        assert second.actions == []
    finally:
        admin = create_engine(base_settings.database_admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_setup_cli_reports_nothing_to_do_as_json(settings):
    import json

    from click.testing import CliRunner

    import alerting.cli

    env = {"SIRENA_DATABASE_URL": settings.database_url, "SIRENA_DATABASE_OWNER_URL": settings.database_owner_url,
           "SIRENA_REDIS_URL": settings.redis_url, "SIRENA_SECRET_KEY_FILE": str(settings.secret_key_file)}
    result = CliRunner().invoke(alerting.cli._load(), ["setup", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["changed"] is False and report["actions"] == []


def test_the_migration_chain_has_one_head():
    from alerting import migrate

    assert len(migrate.script_heads()) == 1, "merge the Alembic heads: a new migration must revise the last one"
