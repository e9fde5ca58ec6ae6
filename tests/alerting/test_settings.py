import re
from datetime import timedelta

import pytest

from alerting.base.errors import ConfigError
from alerting.base.settings import Settings


def test_defaults_work_without_any_variable():
    settings = Settings.from_env({})
    assert settings.database_url.endswith("/sirena")
    assert settings.default_region == "CL"


def test_malformed_deadline_names_the_variable():
    with pytest.raises(ConfigError, match='SIRENA_ACK_DEADLINE: expected seconds, got "10m"'):
        Settings.from_env({"SIRENA_ACK_DEADLINE": "10m"})


def test_unknown_region_is_refused_naming_it():
    with pytest.raises(ConfigError, match="SIRENA_DEFAULT_REGION"):
        Settings.from_env({"SIRENA_DEFAULT_REGION": "XX"})


def test_non_postgres_url_is_refused():
    with pytest.raises(ConfigError, match="SIRENA_DATABASE_URL"):
        Settings.from_env({"SIRENA_DATABASE_URL": "mysql://x@y/z"})


def test_values_are_parsed():
    settings = Settings.from_env({"SIRENA_ACK_DEADLINE": "90", "SIRENA_DEFAULT_REGION": "ar"})
    assert settings.ack_deadline == timedelta(seconds=90)
    assert settings.default_region == "AR"


def test_shown_settings_mask_passwords():
    settings = Settings.from_env({"SIRENA_DATABASE_URL": "postgresql://app:hunter2@db/sirena"})
    shown = settings.shown()
    assert "hunter2" not in str(shown)
    assert shown["SIRENA_DATABASE_URL"] == "postgresql+psycopg2://app:***@db/sirena"


def test_missing_secret_key_file_names_the_setting(tmp_path):
    settings = Settings(secret_key_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match="SIRENA_SECRET_KEY_FILE"):
        settings.secret_key()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_plain_postgres_url_connects_with_the_installed_driver(scheme, settings):
    from sqlalchemy import create_engine, make_url, text

    own = make_url(settings.database_url)
    plain = f"{scheme}://{own.username}@{own.host}:{own.port}/{own.database}"
    parsed = Settings.from_env({"SIRENA_DATABASE_URL": plain})
    engine = create_engine(parsed.database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar() == own.database
    finally:
        engine.dispose()


def test_intake_settings_are_read_once_at_start_and_a_bad_one_stops_it(tmp_path):
    import os
    import subprocess
    import sys

    settings = Settings.from_env({"SIRENA_QUIET_START": "23:30", "SIRENA_CAP_REQUIRE_SIGNATURE": "yes"})
    assert settings.intake.quiet_start.hour == 23 and settings.intake.cap_require_signature
    assert settings.shown()["SIRENA_QUIET_START"] == "23:30"
    env = {**os.environ, "SIRENA_QUIET_START": "10pm"}
    code = "import sys; from alerting.interfaces.cli import main; main(sys.argv[1:])"
    for command in (["scheduler"], ["cap", "export", "1"], ["intake", "smtp"]):
        proc = subprocess.run([sys.executable, "-c", code, *command], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode != 0 and 'SIRENA_QUIET_START: expected HH:MM, got "10pm"' in proc.stderr, command


def test_every_setting_is_in_the_readme_with_an_example():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for variable in Settings().shown():
        assert f"`{variable}`" in readme, variable


def test_a_vocabulary_file_is_read_at_start_and_a_bad_one_is_refused_naming_the_variable(tmp_path):
    good = tmp_path / "vocabulary.toml"
    good.write_text('ack = ["vale"]\n', encoding="utf-8")
    settings = Settings.from_env({"SIRENA_VOCABULARY_FILE": str(good)})
    assert settings.vocabulary_file == good and settings.shown()["SIRENA_VOCABULARY_FILE"] == str(good)
    assert Settings.from_env({}).shown()["SIRENA_VOCABULARY_FILE"] == ""
    for text, reason in (('ack = ["no"]', '"no" already means no'), ("ok = [1]", "unknown meaning"),
                         ("ack = [", "vocabulary:")):
        good.write_text(text, encoding="utf-8")
        expected = f"^SIRENA_VOCABULARY_FILE: {re.escape(str(good))}: .*{re.escape(reason)}"
        with pytest.raises(ConfigError, match=expected):
            Settings.from_env({"SIRENA_VOCABULARY_FILE": str(good)})
    with pytest.raises(ConfigError, match=r"^SIRENA_VOCABULARY_FILE: cannot read .*missing\.toml"):
        Settings.from_env({"SIRENA_VOCABULARY_FILE": str(tmp_path / "missing.toml")})


def test_opt_out_override_lists_priorities_or_none():
    assert Settings.from_env({}).opt_out_override == ("flash",)
    assert Settings.from_env({"SIRENA_OPT_OUT_OVERRIDE": "Flash, high"}).opt_out_override == ("flash", "high")
    assert Settings.from_env({"SIRENA_OPT_OUT_OVERRIDE": "none"}).opt_out_override == ()
    with pytest.raises(ConfigError, match=r'SIRENA_OPT_OUT_OVERRIDE: .*got "urgent"'):
        Settings.from_env({"SIRENA_OPT_OUT_OVERRIDE": "flash,urgent"})
