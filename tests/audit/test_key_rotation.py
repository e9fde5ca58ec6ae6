"""Rotating the secret key as runbooks/rotate-secrets.md says: old checkpoint lines, exports, TOTP
seeds and webhook secrets stay readable through SIRENA_SECRET_KEY_PREVIOUS_FILES, and
`sirena secret-key reencrypt` moves seeds and secrets under the new key."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from alerting.base import db as dbmod
from alerting.base import runtime
from alerting.base.db import transaction
from alerting.base.errors import ConfigError, InvalidInput
from alerting.base.models import Operator
from alerting.base.models.intake import WebhookSubscriber
from alerting.base.settings import Settings
from alerting.directory.accounts import create_operator, decrypt_totp
from alerting.webhooks import _fernet, create_subscriber
from audit.actor import Actor
from audit.checkpoints import previous_signing_keys, read_checkpoints, signing_key, write_checkpoint
from audit.export import Scope, verify_export, write_export
from audit.seal import seal_committed
from audit.trail import append

SYSTEM = Actor.system("test")


def _key_file(path: Path) -> Path:
    path.write_text(secrets.token_urlsafe(48))
    path.chmod(0o600)
    return path


@pytest.fixture
def rotated(committed_db: Settings, tmp_path: Path) -> tuple[Settings, Settings]:
    """(settings before the rotation, settings after it with the old key listed as previous)."""
    old = replace(committed_db, secret_key_file=_key_file(tmp_path / "old_key"),
                  audit_checkpoint_dir=tmp_path / "checkpoints")
    new = replace(old, secret_key_file=_key_file(tmp_path / "new_key"),
                  secret_key_previous_files=(old.secret_key_file,))
    return old, new


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ, SIRENA_DATABASE_URL=settings.database_url, SIRENA_REDIS_URL=settings.redis_url,
               SIRENA_DATABASE_OWNER_URL=settings.database_owner_url,
               SIRENA_SECRET_KEY_FILE=str(settings.secret_key_file),
               SIRENA_AUDIT_CHECKPOINT_DIR=str(settings.audit_checkpoint_dir))
    env.pop("SIRENA_SECRET_KEY_PREVIOUS_FILES", None)
    if settings.secret_key_previous_files:
        env["SIRENA_SECRET_KEY_PREVIOUS_FILES"] = ",".join(str(p) for p in settings.secret_key_previous_files)
    return env


def sirena(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from alerting.interfaces.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(settings), capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])


def test_a_missing_previous_key_file_stops_start_up_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="SIRENA_SECRET_KEY_PREVIOUS_FILES"):
        Settings.from_env({"SIRENA_SECRET_KEY_PREVIOUS_FILES": str(tmp_path / "gone")})


def test_old_checkpoint_lines_verify_with_the_previous_key(rotated):
    old, new = rotated
    with transaction() as session:
        append(session, actor=SYSTEM, action="zone.edited", subject_type="zone", subject_id=1)
    write_checkpoint(dbmod.engine(), old)
    database = dbmod.engine().url.database
    good, bad = read_checkpoints(new, database)
    assert len(good) == 1 and bad == []
    good, bad = read_checkpoints(replace(new, secret_key_previous_files=()), database)
    assert good == [] and "signature does not match" in bad[0].reason  # what the rotation broke before
    assert sirena(new, "audit", "verify", "--json").returncode == 0
    without = sirena(replace(new, secret_key_previous_files=()), "audit", "verify", "--json")
    assert without.returncode == 1


def test_an_export_signed_before_the_rotation_verifies(rotated, tmp_path):
    old, new = rotated
    with transaction() as session:
        append(session, actor=SYSTEM, action="zone.edited", subject_type="zone", subject_id=1)
    seal_committed(dbmod.engine())
    path = tmp_path / "export.json"
    with transaction() as session, path.open("w") as fh:
        write_export(session, Scope(), "json", fh, key=signing_key(old))
    assert verify_export(path, engine=None, key=signing_key(new), previous_keys=previous_signing_keys(new)).ok
    assert not verify_export(path, engine=None, key=signing_key(new)).ok


def test_seeds_and_webhook_secrets_are_read_then_reencrypted_under_the_new_key(rotated):
    old, new = rotated
    with transaction() as session:
        seed = decrypt_totp(create_operator(session, "ana", ["approver"], old.secret_key(), SYSTEM)
                            .operator.totp_secret_enc, old.secret_key())
        with runtime.using(settings=old):
            _, hook_secret = create_subscriber(session, "sala", "https://example.org/hook", ["reply.received"],
                                               SYSTEM)
    new_only = replace(new, secret_key_previous_files=())
    with transaction() as session:
        blob = session.scalar(select(Operator.totp_secret_enc).where(Operator.username == "ana"))
        assert decrypt_totp(blob, new.secret_key()) == seed  # readable through the previous key
        with pytest.raises(InvalidInput):
            decrypt_totp(blob, new_only.secret_key())
    done = sirena(new, "secret-key", "reencrypt", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["totp_seeds_reencrypted"] == 1 and report["webhook_secrets_reencrypted"] == 1
    with transaction() as session:
        blob = session.scalar(select(Operator.totp_secret_enc).where(Operator.username == "ana"))
        assert decrypt_totp(blob, new_only.secret_key()) == seed  # the old key is no longer needed for it
        stored = session.scalar(select(WebhookSubscriber.secret_enc).where(WebhookSubscriber.name == "sala"))
        with runtime.using(settings=new_only):
            assert _fernet().decrypt(stored).decode() == hook_secret
    again = json.loads(sirena(new, "secret-key", "reencrypt", "--json").stdout.strip().splitlines()[-1])
    assert again["totp_seeds_reencrypted"] == 0 and again["webhook_secrets_reencrypted"] == 0
