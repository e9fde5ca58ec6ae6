"""`sirena users create|list|roles|reset-mfa` as an administrator runs them, against a committed database."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.base.db import transaction
from tests.conftest import cli_env
from tests.conftest import last_json_line as _json
from tests.conftest import run_sirena as _sirena


@pytest.fixture
def env(committed_db, tmp_path):  # type: ignore[no-untyped-def]
    return cli_env(committed_db, tmp_path)




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


def test_tokens_create_refuses_a_scope_the_operators_roles_cannot_hold_naming_both(env):
    _json(_sirena(env, "users", "create", "dario", "--role", "composer", "--json"))
    refused = _sirena(env, "tokens", "create", "--user", "dario", "--scope", "read", "--scope", "groups:write")
    assert refused.returncode == 5
    assert "scope groups:write needs the admin role" in refused.stderr and "composer" in refused.stderr
    made = _json(_sirena(env, "tokens", "create", "--user", "dario", "--scope", "read", "--scope", "alerts:draft",
                         "--json"))
    assert made["scopes"] == ["alerts:draft", "read"]
    with transaction() as s:
        outcomes = s.execute(text("SELECT action, outcome FROM audit.events WHERE action LIKE '%token%' ORDER BY id"))
        assert outcomes.all() == [("cli.tokens.create", "refused"), ("token.created", "done")]
