"""`sirena contacts …` and `sirena groups …` through click, on the real test database."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import alerting.interfaces.cli
from alerting.base import db as dbmod
from alerting.base.models import Contact, ContactImport
from alerting.base.settings import Settings
from alerting.interfaces.cli.app import Context


@pytest.fixture(autouse=True)
def _valid_join_mode() -> None:
    # tests/conftest.py's `db` teardown leaves join_transaction_mode="conservative_savepoint", which
    # SQLAlchemy 2.1 rejects; the same workaround as tests/audit/conftest.py until it is fixed there.
    dbmod._sessions.configure(join_transaction_mode="conditional_savepoint")


@pytest.fixture
def sirena(db: Session, settings: Settings) -> Callable[..., Result]:
    """Invoke `sirena ARGS` in-process; its transactions join the test's (rolled back afterwards)."""
    group = alerting.interfaces.cli._load()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        ctx = Context()
        ctx._settings, ctx._db_ready = settings, True
        return runner.invoke(group, list(args), obj=ctx)

    return invoke


def last_json(result: Result) -> dict:
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output.strip().splitlines()[-1])


def csv_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "contactos.csv"
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_contacts_commands_are_registered() -> None:
    assert "alerting.interfaces.cli.contacts_cmd" in alerting.interfaces.cli._MODULES
    commands = alerting.interfaces.cli._load().commands
    assert {"import", "optout", "optin", "show"} <= set(commands["contacts"].commands)  # type: ignore[attr-defined]
    assert {"create", "list", "add"} <= set(commands["groups"].commands)  # type: ignore[attr-defined]


def test_import_json_last_line_reports_counts_and_the_rejects_file(sirena, db: Session, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "nombre;teléfono;grupo\nAna;961234567;brigadas\nBeto;12;\nAna bis;+56961234567;\n")
    data = last_json(sirena("contacts", "import", path, "--json"))
    assert (data["rows_read"], data["inserted"], data["rejected"], data["duplicates"]) == (3, 1, 1, 1)
    assert data["groups_created"] == ["brigadas"] and data["dry_run"] is False
    assert Path(data["rejects_path"]).read_text(encoding="utf-8").startswith("row,column,value,reason,outcome")
    assert db.scalar(select(Contact.name).where(Contact.msisdn == "+56961234567")) == "Ana bis"
    assert db.get(ContactImport, data["import_id"]) is not None


def test_import_prints_a_summary_without_a_progress_bar_when_not_on_a_terminal(sirena, tmp_path: Path) -> None:
    result = sirena("contacts", "import", csv_file(tmp_path, "telefono\n961234567\n"))
    assert result.exit_code == 0, result.output
    assert "Imported 1 contacts" in result.output and "every row was accepted" in result.output
    assert "Reading" not in result.output


def test_import_dry_run_writes_nothing(sirena, db: Session, tmp_path: Path) -> None:
    result = sirena("contacts", "import", csv_file(tmp_path, "telefono\n961234567\n"), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Would import 1 contacts" in result.output and "nothing was written" in result.output
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_import_with_group_adds_everyone_to_it(sirena, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "telefono\n961234567\n961234568\n")
    data = last_json(sirena("contacts", "import", path, "--group", "Defensa Civil", "--json"))
    assert data["groups_created"] == ["Defensa Civil"] and data["memberships"] == 2
    groups = last_json(sirena("groups", "list", "--json"))["groups"]
    assert [(g["name"], g["kind"], g["members"]) for g in groups] == [("Defensa Civil", "static", 2)]


def test_groups_create_list_and_add(sirena, tmp_path: Path) -> None:
    sirena("contacts", "import", csv_file(tmp_path, "telefono,rol\n961234567,brigadista\n"))
    created = last_json(sirena("groups", "create", "brigadas", "--drill-allowed", "--json"))
    assert (created["kind"], created["drill_allowed"]) == ("static", True)
    dynamic = last_json(sirena("groups", "create", "rol brigadista", "--criterion",
                               '{"attr": "rol", "eq": "brigadista"}', "--json"))
    assert dynamic["kind"] == "dynamic" and dynamic["criterion"] == {"attr": "rol", "eq": "brigadista"}
    assert last_json(sirena("groups", "add", "brigadas", "9 6123 4567", "--json"))["added"] == 1
    listed = {g["name"]: g for g in last_json(sirena("groups", "list", "--json"))["groups"]}
    assert listed["brigadas"]["members"] == 1 and listed["rol brigadista"]["members"] is None


def test_groups_create_refuses_a_criterion_that_is_not_json(sirena) -> None:
    result = sirena("groups", "create", "x", "--criterion", "{rol: brigadista")
    assert result.exit_code != 0
    assert result.exception.details["fields"]["criterion"].startswith("not valid JSON: ")  # type: ignore[union-attr]


def test_optout_then_show_then_optin(sirena, tmp_path: Path) -> None:
    sirena("contacts", "import", csv_file(tmp_path, "telefono,lat,lon\n961234567,-33.45,-70.66\n"))
    out = last_json(sirena("contacts", "optout", "+56961234567", "--reason", "respondió STOP", "--json"))
    assert out["reason"] == "respondió STOP"
    shown = last_json(sirena("contacts", "show", "961234567", "--json"))
    assert shown["opted_out_reason"] == "respondió STOP"
    assert shown["locations"] == [{"label": "home", "lon": -70.66, "lat": -33.45}]
    assert last_json(sirena("contacts", "optin", "+56961234567", "--json")) == {"msisdn": "+56961234567",
                                                                               "opted_out": False}


def test_sirena_main_refuses_a_binary_file_on_stderr_with_exit_2(committed_db: Settings, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIRENA_DATABASE_URL", committed_db.database_url)
    monkeypatch.setenv("SIRENA_DATABASE_OWNER_URL", committed_db.database_owner_url)
    monkeypatch.setenv("SIRENA_DATA_DIR", str(tmp_path / "data"))
    binary = tmp_path / "foto.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    with pytest.raises(SystemExit) as exit_:
        alerting.interfaces.cli.main(["contacts", "import", str(binary), "--json"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "file: this is a binary file" in err


def test_the_rejects_report_quotes_cells_a_spreadsheet_would_evaluate(sirena, tmp_path: Path) -> None:
    import csv

    from alerting.directory.contact_import import read_rejects

    path = csv_file(tmp_path, "nombre;teléfono\nAna;961234567\n@SUM(1+1);=1+2\nBeto;-5\nCarla;+1 (800) GOOG\n")
    data = last_json(sirena("contacts", "import", path, "--json"))
    assert data["rejected"] == 3
    with open(data["rejects_path"], newline="", encoding="utf-8") as fh:
        raw = list(csv.reader(fh))  # as a spreadsheet reads it
    values = [row[2] for row in raw[1:]]
    assert values == ["'=1+2", "'-5", "'+1 (800) GOOG"], raw
    assert not [c for row in raw for c in row if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert [r["value"] for r in read_rejects(data["rejects_path"])] == ["=1+2", "-5", "+1 (800) GOOG"]  # the API's


def test_import_with_second_and_third_numbers_and_show_by_any_of_them(sirena, db: Session, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "nombre;teléfono;teléfono 2;teléfono 3\n"
                              "Ana Soto;9 6123 8001;9 6123 8002;+56 9 6123 8003\n"
                              "Beto;961238011;hola;\n")
    human = sirena("contacts", "import", path)
    assert human.exit_code == 0 and "second and third numbers 2" in human.output
    report = last_json(sirena("contacts", "import", path, "--json"))
    assert (report["numbers"], report["unchanged"], report["warnings"]) == (0, 2, 1)  # again: nothing moved
    shown = last_json(sirena("contacts", "show", "+56961238003", "--json"))
    assert (shown["msisdn"], shown["more_numbers"]) == ("+56961238001", ["+56961238002", "+56961238003"])
