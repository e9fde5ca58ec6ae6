"""`sirena users create|list|roles|reset-mfa` as an administrator runs them, against a committed database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from alerting.db import transaction


@pytest.fixture
def env(committed_db, tmp_path):  # type: ignore[no-untyped-def]
    return {**os.environ, "SIRENA_DATABASE_URL": committed_db.database_url,
            "SIRENA_DATABASE_OWNER_URL": committed_db.database_owner_url, "SIRENA_REDIS_URL": committed_db.redis_url,
            "SIRENA_SECRET_KEY_FILE": str(committed_db.secret_key_file), "SIRENA_DATA_DIR": str(tmp_path)}


def _sirena(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from alerting.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _json(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_operator_is_created_listed_given_roles_and_re_enrolled(env):
    created = _json(_sirena(env, "users", "create", "carla", "--role", "composer", "--json"))
    assert created["roles"] == ["composer"] and created["totp_uri"].startswith("otpauth://totp/")
    changed = _json(_sirena(env, "users", "roles", "carla", "--role", "composer", "--role", "approver", "--json"))
    assert changed == {"username": "carla", "roles": ["approver", "composer"]}
    reset = _json(_sirena(env, "users", "reset-mfa", "carla", "--json"))
    assert reset["totp_uri"].startswith("otpauth://totp/") and reset["totp_uri"] != created["totp_uri"]
    listed = _json(_sirena(env, "users", "list", "--json"))["operators"]
    assert [(o["username"], o["roles"], o["enrolled"]) for o in listed] == [("carla", ["approver", "composer"], False)]
    with transaction() as s:
        actions = s.execute(text("SELECT action FROM audit.events WHERE subject_type = 'operator' ORDER BY id"))
        assert list(actions.scalars()) == ["operator.created", "operator.roles_changed", "operator.mfa_reset"]


def test_an_unknown_operator_or_role_is_refused_naming_it(env):
    missing = _sirena(env, "users", "roles", "nadie", "--role", "composer")
    assert missing.returncode != 0 and "nadie" in missing.stderr
    bad = _sirena(env, "users", "roles", "nadie", "--role", "jefe")
    assert bad.returncode == 2 and "jefe" in bad.stderr
