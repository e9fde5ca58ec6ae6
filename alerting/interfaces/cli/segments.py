"""`sirena segments TEXT`: how a text will travel as SMS, before anyone sends it."""

from __future__ import annotations

import sys

import click

from alerting.base.errors import InvalidInput
from alerting.base.sms_text.encoding import MAX_PARTS, SegmentInfo, analyze, suggest_transliteration
from alerting.interfaces.cli.app import cli, emit, json_option


@cli.command("segments")
@click.argument("text")
@json_option
def segments(text: str, as_json: bool) -> None:
    """Show the encoding (gsm7/ucs2), parts, units per part and units left in the last part of TEXT.

    TEXT "-" reads the text from standard input. Units are GSM-7 septets (extension characters
    such as € { } count two) or UTF-16 code units (an emoji counts two). If a GSM-7 spelling
    (á→a, “→") needs fewer parts it is shown as a suggestion; the text itself is never changed.
    """
    if text == "-":
        text = sys.stdin.read().removesuffix("\n")
    info = analyze(text)
    if info.parts > MAX_PARTS:
        raise InvalidInput(
            f"text needs {info.parts} parts; an SMS can have at most {MAX_PARTS}",
            fields={"text": f"too long: {info.parts} parts, at most {MAX_PARTS}"},
        )
    suggestion = suggest_transliteration(text)
    suggested = analyze(suggestion) if suggestion is not None else None
    data = {
        "encoding": info.encoding,
        "parts": info.parts,
        "units_per_part": info.units_per_part,
        "units_left": info.units_left_in_last,
        # DESIGN's "characters used/left in the last part", in the encoding's units (septets: an
        # escaped GSM-7 character such as € takes two; UCS-2 code units: an emoji takes two).
        "used_in_last": info.units_per_part[-1] if info.units_per_part else 0,
        "left_in_last": info.units_left_in_last,
        "chars": info.chars,
        "non_gsm_chars": info.non_gsm_chars,
        "suggestion": suggestion,
        "suggestion_parts": suggested.parts if suggested else None,
    }
    emit(as_json, data, _human(info, suggestion, suggested))


def _human(info: SegmentInfo, suggestion: str | None, suggested: SegmentInfo | None) -> str:
    unit = "septets" if info.encoding == "gsm7" else "UTF-16 units"
    lines = [
        f"encoding: {info.encoding}",
        f"parts: {info.parts}",
        f"{unit} per part: {', '.join(map(str, info.units_per_part))}",
        f"{unit} left in the last part: {info.units_left_in_last}",
        f"characters: {info.chars}",
    ]
    if info.non_gsm_chars:
        lines.append("not in GSM-7: " + " ".join(repr(c) for c in info.non_gsm_chars))
    if suggestion is not None and suggested is not None:
        parts = f"{suggested.parts} part{'s' * (suggested.parts != 1)}"
        lines.append(f"suggestion ({suggested.encoding}, {parts}; the text is unchanged): {suggestion}")
    return "\n".join(lines)
