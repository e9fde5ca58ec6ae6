"""The served app, as gunicorn builds it in Docker and elsewhere: one factory, settings from the environment."""

from __future__ import annotations

import runpy
from datetime import time
from pathlib import Path

import pytest

from alerting.base import runtime
from alerting.base.errors import ConfigError

DOCKER_WSGI = Path(__file__).resolve().parents[2] / "docker" / "wsgi.py"


@pytest.fixture
def served_env(settings, monkeypatch):  # type: ignore[no-untyped-def]
    for name, value in {"SIRENA_DATABASE_URL": settings.database_url, "SIRENA_REDIS_URL": settings.redis_url,
                        "SIRENA_SECRET_KEY_FILE": str(settings.secret_key_file), "SIRENA_LOG_LEVEL": "WARNING",
                        "SIRENA_CAP_REQUIRE_SIGNATURE": "true", "SIRENA_QUIET_START": "21:30",
                        "SIRENA_QUIET_END": "06:15", "SIRENA_API_RATE_PER_MIN": "7",
                        "SIRENA_TILE_URL": "https://tiles.example.org/{z}/{x}/{y}.png"}.items():
        monkeypatch.setenv(name, value)
    yield monkeypatch
    runtime.use_database(settings, name="sirena-test")  # the factory bound the process's database
    runtime.use_redis(None)


def test_the_docker_app_has_the_intake_config_from_the_environment(served_env):
    app = runpy.run_path(str(DOCKER_WSGI))["app"]
    app.extensions["sirena_sealer"].stop()  # the served app seals the trail in the background; not here
    intake = app.config["SIRENA_INTAKE_CONFIG"]
    assert intake.cap_require_signature is True  # an unsigned CAP alert is refused in Docker too
    assert (intake.quiet_start, intake.quiet_end) == (time(21, 30), time(6, 15))
    assert app.config["SIRENA_API_RATE_PER_MIN"] == 7
    assert app.config["SIRENA_TILE_URL"] == "https://tiles.example.org/{z}/{x}/{y}.png"
    assert "img-src 'self' https://tiles.example.org" in app.test_client().get("/login").headers[
        "Content-Security-Policy"]


def test_a_malformed_intake_value_stops_the_served_app_naming_it(served_env):
    served_env.setenv("SIRENA_QUIET_START", "10pm")
    with pytest.raises(ConfigError, match='SIRENA_QUIET_START: expected HH:MM, got "10pm"'):
        runpy.run_path(str(DOCKER_WSGI))
