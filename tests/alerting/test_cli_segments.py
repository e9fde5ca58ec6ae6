"""`sirena segments`: what an operator sees before sending a text."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import alerting.interfaces.cli
from alerting.base.errors import InvalidInput


@pytest.fixture
def run():
    group = alerting.interfaces.cli._load()
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None):
        return runner.invoke(group, ["segments", *args], input=stdin)

    return invoke


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_segments_is_registered_with_the_sirena_group():
    assert "alerting.interfaces.cli.segments" in alerting.interfaces.cli._MODULES
    assert "segments" in alerting.interfaces.cli._load().commands


def test_json_reports_a_gsm7_text_with_extension_characters(run):
    result = run("Corte de luz {zona 3} 20€", "--json")
    assert result.exit_code == 0, result.output
    assert last_json(result.output) == {
        "encoding": "gsm7",
        "parts": 1,
        "units_per_part": [28],
        "units_left": 132,
        "used_in_last": 28,
        "left_in_last": 132,
        "chars": 25,
        "non_gsm_chars": [],
        "suggestion": None,
        "suggestion_parts": None,
    }


def test_json_suggests_a_transliteration_that_saves_a_part(run):
    text = "Atención: evacúe la zona del río “Salado” — diríjase al refugio más próximo. Información: 103."
    data = last_json(run(text, "--json").output)
    assert (data["encoding"], data["parts"], data["units_per_part"]) == ("ucs2", 2, [67, 27])
    assert data["units_left"] == data["left_in_last"] == 40 and data["used_in_last"] == 27
    assert data["non_gsm_chars"] == ["ó", "ú", "í", "“", "”", "—", "á"]
    assert data["suggestion"].startswith('Atencion: evacue la zona del rio "Salado" - dirijase')
    assert data["suggestion_parts"] == 1


def test_emoji_counts_two_units_and_gets_no_suggestion(run):
    data = last_json(run("Alerta 🚨", "--json").output)
    assert (data["encoding"], data["units_per_part"], data["chars"]) == ("ucs2", [9], 8)
    assert data["suggestion"] is None


def test_human_output_names_encoding_parts_and_room_left(run):
    result = run("a" * 161)
    assert result.exit_code == 0
    assert "encoding: gsm7" in result.output
    assert "parts: 2" in result.output
    assert "septets per part: 153, 8" in result.output
    assert "septets left in the last part: 145" in result.output


def test_dash_reads_the_text_from_stdin(run):
    data = last_json(run("-", "--json", stdin="Evacúe\n").output)
    assert (data["chars"], data["non_gsm_chars"]) == (6, ["ú"])


def test_text_over_255_parts_is_refused_naming_the_text(run):
    result = run("a" * (153 * 255 + 1), "--json")
    assert isinstance(result.exception, InvalidInput)
    assert "256 parts" in result.exception.details["fields"]["text"]


def test_main_exits_2_with_the_field_on_stderr(capsys):
    with pytest.raises(SystemExit) as exit_:
        alerting.interfaces.cli.main(["segments", "a" * (153 * 255 + 1)])
    assert exit_.value.code == 2
    assert "text: too long: 256 parts" in capsys.readouterr().err
