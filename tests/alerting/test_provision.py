"""`sirena setup` is idempotent: a second run changes nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from alerting.alerts import lifecycle
from alerting.interfaces.provision import run_setup


@pytest.fixture
def fresh_install(base_settings, tmp_path):  # type: ignore[no-untyped-def]
    """Settings for a database that does not exist yet (dropped afterwards), as on a new machine."""
    name = f"sirena_test_setup_{tmp_path.name[-12:].replace('-', '_').lower()}"
    settings = replace(
        base_settings,
        database_url=make_url(base_settings.database_url).set(database=name).render_as_string(hide_password=False),
        database_owner_url=make_url(base_settings.database_owner_url).set(database=name).render_as_string(
            hide_password=False),
        secret_key_file=tmp_path / "secret_key",
    )
    try:
        yield settings
    finally:
        admin = create_engine(base_settings.database_admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_second_setup_run_changes_nothing(fresh_install):
    first = run_setup(fresh_install, lambda _m: None)
    assert any("created database" in a for a in first.actions)
    assert any("migrated" in a for a in first.actions)
    assert fresh_install.secret_key_file.stat().st_mode & 0o777 == 0o600
    second = run_setup(fresh_install, lambda _m: None)
    assert second.actions == []


def test_a_fresh_install_can_compose_before_any_worker_has_run(fresh_install, monkeypatch):
    from alerting.alerts.drafts import AlertDraft
    from alerting.base.models import AlertMode, Group, GroupKind, Operator
    from tests.factories import actor_for

    for name in ("SIRENA_CARRIER_ALPHA_PASSWORD", "SIRENA_CARRIER_BETA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)  # setup needs no carrier password
    report = run_setup(fresh_install, lambda _m: None)
    assert "senders from carriers.demo.toml: SIRENA-SC, BOMBEROS, SIRENA-LN, SIRENA" in report.actions
    engine = create_engine(fresh_install.database_url, poolclass=pool.NullPool)
    try:
        with Session(engine) as session, session.begin():
            senders = dict(session.execute(text("SELECT name, active FROM senders")).all())
            default = session.execute(text("SELECT name FROM senders WHERE is_default")).scalars().all()
            composer = Operator(username="ana", password_hash="x", roles=["composer"])
            session.add_all([composer, Group(name="brigadas", kind=GroupKind.STATIC)])
            session.flush()
            alert = lifecycle.compose(session, AlertDraft(texts={"es": "Simulacro de sirena"}, mode=AlertMode.LIVE,
                                                      sender_name="SIRENA-SC", target={"groups": ["brigadas"]}),
                                  actor_for(composer))
            assert alert.sender_name == "SIRENA-SC"  # compose's "unknown or inactive sender" did not refuse it
            session.rollback()
    finally:
        engine.dispose()
    assert senders == {"SIRENA-SC": True, "BOMBEROS": True, "SIRENA-LN": True, "SIRENA": True}
    assert default == ["SIRENA-SC"]  # the carriers file's default_sender: a dedicated code


def test_setup_cli_reports_nothing_to_do_as_json(fresh_install):
    import json

    from click.testing import CliRunner

    import alerting.interfaces.cli

    env = {"SIRENA_DATABASE_URL": fresh_install.database_url,
           "SIRENA_DATABASE_OWNER_URL": fresh_install.database_owner_url,
           "SIRENA_REDIS_URL": fresh_install.redis_url, "SIRENA_SECRET_KEY_FILE": str(fresh_install.secret_key_file)}
    first = CliRunner().invoke(alerting.interfaces.cli._load(), ["setup", "--json"], env=env)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output.strip().splitlines()[-1])["changed"] is True
    result = CliRunner().invoke(alerting.interfaces.cli._load(), ["setup", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["changed"] is False and report["actions"] == []


def test_the_migration_chain_has_one_head():
    from alerting.base import migrate

    assert len(migrate.script_heads()) == 1, "merge the Alembic heads: a new migration must revise the last one"


def test_workers_starting_together_on_a_fresh_database_both_write_the_senders(committed_db):
    import threading

    from alerting.base.db import transaction
    from alerting.base.settings import DEFAULT_CARRIERS_FILE
    from broadcast import carrier_facts
    from broadcast.carriers import load_carriers

    config = load_carriers(DEFAULT_CARRIERS_FILE, None)

    def start_worker(start: threading.Barrier, changed: list[list[str]], errors: list[Exception]) -> None:
        start.wait()
        try:
            changed.append(carrier_facts.sync(config))
        except Exception as exc:  # before: a unique violation killed all but one worker at start
            errors.append(exc)

    for _ in range(5):
        with transaction() as s:
            s.execute(text("DELETE FROM senders"))
        start, changed, errors = threading.Barrier(3), [], []  # type: ignore[var-annotated]
        threads = [threading.Thread(target=start_worker, args=(start, changed, errors)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert errors == []
        assert sorted(len(c) for c in changed) == [0, 0, 4]  # one wrote them, the others found them
