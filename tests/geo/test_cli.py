"""`sirena zones …` and `sirena target preview` through the real command group, on the test database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from shapely.geometry import box, mapping

import alerting.interfaces.cli
from alerting.base.errors import InvalidInput, NotFound
from alerting.interfaces.cli.app import Context

CENTRO = box(-70.67, -33.46, -70.63, -33.43)


@pytest.fixture
def sirena(db, settings):
    """Invoke `sirena ARGS…` in-process; its transactions join the test's rolled-back one."""
    group = alerting.interfaces.cli._load()

    def invoke(*args: str):
        ctx = Context()
        ctx._settings = settings
        ctx._db_ready = True
        return CliRunner().invoke(group, list(args), obj=ctx)

    return invoke


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_commands_are_registered():
    registered = set(alerting.interfaces.cli._MODULES)
    assert {"alerting.interfaces.cli.zones_cmd", "alerting.interfaces.cli.target_cmd"} <= registered
    commands = alerting.interfaces.cli._load().commands
    assert {"import", "export", "list"} <= set(commands["zones"].commands)
    assert "preview" in commands["target"].commands


def test_import_list_export_and_preview(sirena, directory, tmp_path):
    path = tmp_path / "centro.geojson"
    path.write_text(json.dumps({"type": "Feature", "geometry": mapping(CENTRO), "properties": {"name": "Centro"}}))
    result = sirena("zones", "import", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert last_json(result.output)["zones"][0]["name"] == "Centro"

    listed = sirena("zones", "list", "--json")
    assert [z["name"] for z in last_json(listed.output)["zones"]] == ["Centro"]
    exported = sirena("zones", "export", "Centro")
    assert json.loads(exported.output)["properties"]["version"] == 1

    directory.contacts([(-70.65, -33.45)] * 3, attributes={"role": "vecino"})
    directory.group("brigadas", directory.contacts([(-70.5, -33.3)]))
    preview = sirena("target", "preview", "--zone", "Centro", "--group", "brigadas",
                     "--where", '{"attr": "role", "eq": "vecino"}', "--text", "Evacúe", "--json")
    assert preview.exit_code == 0, preview.output
    report = last_json(preview.output)
    assert report["total"] == 3 and report["removed_by_criteria"] == 1 and report["sms"]["total_sms"] == 3
    human = sirena("target", "preview", "--zone", "Centro")
    assert "recipients: 3" in human.output


def test_preview_for_a_live_flash_alert_shows_the_opt_out_override(sirena, directory):
    from geo.zones import save_zone

    save_zone(directory.db, "Centro", CENTRO, "geojson")
    directory.contacts([(-70.65, -33.45)] * 2)
    directory.contacts([(-70.65, -33.45)], opted_out=True)
    flash = last_json(sirena("target", "preview", "--zone", "Centro", "--priority", "flash", "--json").output)
    assert (flash["total"], flash["opted_out_included"]) == (3, 1)
    assert flash["opt_out_policy"]["reason"] == "policy: live flash alerts override opt-outs"
    normal = sirena("target", "preview", "--zone", "Centro", "--priority", "normal")
    assert "recipients: 2" in normal.output
    assert "opt-out policy: live flash alerts reach opted-out contacts" in normal.output


def test_invalid_polygon_is_refused_naming_where(sirena, tmp_path):
    path = tmp_path / "bowtie.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [[[-70.7, -33.5], [-70.6, -33.4],
                                                                    [-70.6, -33.5], [-70.7, -33.4], [-70.7, -33.5]]]}))
    result = sirena("zones", "import", str(path), "--name", "Mala")
    assert isinstance(result.exception, InvalidInput) and result.exception.exit_code == 2
    assert "self-intersection at -33.4500, -70.6500" in result.exception.details["fields"]["geometry"]
    repaired = sirena("zones", "import", str(path), "--name", "Mala", "--repair")
    assert repaired.exit_code == 0 and "repaired: geometry: self-intersection" in repaired.output


def test_unknown_zone_is_not_found(sirena):
    result = sirena("target", "preview", "--zone", "Atlantida")
    assert isinstance(result.exception, NotFound) and result.exception.exit_code == 3
    assert 'unknown zone "Atlantida"' in str(result.exception)


def test_bad_where_is_refused_naming_the_key(sirena):
    result = sirena("target", "preview", "--group", "x", "--where", '{"attr": "a", "like": 1}')
    assert isinstance(result.exception, InvalidInput)
    assert "target.criteria.like" in result.exception.details["fields"]


def test_a_big_zone_file_is_saved_in_batches_with_progress(sirena, db, tmp_path):
    from sqlalchemy import text

    from tests.api.test_directory import _squares

    path = tmp_path / "manzanas.geojson"
    path.write_text(json.dumps(_squares(60)))
    result = sirena("zones", "import", str(path), "--batch", "25", "--json")
    assert result.exit_code == 0, result.output
    out = last_json(result.output)
    assert (out["saved"], out["created"], len(out["zones"])) == (60, 60, 60)
    assert "60 zone(s) checked" in result.stderr and "saved 60 of 60 (100 %)" in result.stderr
    saved = db.execute(text("SELECT count(*), min(actor_name) FROM audit.events WHERE action = 'zone.saved'")).one()
    assert saved[0] == 60 and saved[1].startswith("cli:")
    again = last_json(sirena("zones", "import", str(path), "--json").output)
    assert (again["saved"], again["created"]) == (60, 0)  # a second run after a stop changes nothing
