"""`sirena cap import|export` and `sirena intake allow` as a user runs them: a real process on a real database."""

from __future__ import annotations

import json

import pytest

from alerting.base.db import transaction
from alerting.base.models import Operator, Sender, SenderKind
from alerting.interfaces.intake import cap
from tests.conftest import cli_env
from tests.conftest import run_sirena as _sirena
from tests.intake.conftest import CAP_DIR, resident_in_the_circle


@pytest.fixture
def env(committed_db, tmp_path):  # type: ignore[no-untyped-def]
    with transaction() as session:
        session.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True))
        session.add(Operator(username="ana", password_hash="x", roles=["composer"]))
        resident_in_the_circle(session)
    return cli_env(committed_db, tmp_path)



def test_cap_import_then_export_round_trips_through_the_cli(env, tmp_path):
    done = _sirena(env, "cap", "import", str(CAP_DIR / "australia-circle.xml"), "--as", "ana", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["action"] == "drafted" and result["state"] == "pending_approval"
    out = tmp_path / "out.xml"
    exported = _sirena(env, "cap", "export", str(result["alert_id"]), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    doc, _ = cap.load(out.read_bytes())
    assert doc.identifier == result["reference"] and doc.status == "Actual"


def test_a_refused_cap_file_exits_2_naming_the_reason(env, tmp_path):
    hostile = tmp_path / "evil.xml"
    hostile.write_bytes(b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><alert>&x;</alert>')
    done = _sirena(env, "cap", "import", str(hostile), "--as", "ana")
    assert done.returncode == 2 and "DTD or entit" in done.stderr


def test_an_unknown_reference_exits_2_naming_it(env):
    done = _sirena(env, "cap", "import", str(CAP_DIR / "ipaws-cancel.xml"), "--as", "ana")
    assert done.returncode == 2 and "1017033100951096-517189320160225203219800" in done.stderr


def test_intake_allow_prints_the_token_once(env):
    done = _sirena(env, "intake", "allow", "Ana@Municipio.cl", "--user", "ana", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown["address"] == "ana@municipio.cl" and shown["token"].startswith("mail_")
