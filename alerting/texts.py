"""What a phone will show: the mode prefix and the per-recipient placeholders.

Placeholders: `{codigo}` (the alert's reply code), `{referencia}` (its reference) and contact
fields (`{nombre}`, any attribute such as `{unidad}`), each of the latter with a default after a
bar: `{nombre|vecino}`. A contact placeholder without a default is refused at compose: an SMS
must never reach a phone reading "{nombre}".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from alerting.errors import InvalidInput
from alerting.models.alerts import AlertMode

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?:\|([^{}]*))?\}", re.IGNORECASE)
ALERT_FIELDS = {"codigo", "code", "referencia", "reference"}

# The marker must open part 1 so no truncation can remove it. Never "not a drill".
MODE_PREFIX = {
    (AlertMode.EXERCISE, "es"): "SIMULACRO: ",
    (AlertMode.EXERCISE, "en"): "EXERCISE: ",
    (AlertMode.TEST, "es"): "PRUEBA: ",
    (AlertMode.TEST, "en"): "TEST: ",
}


def mode_prefix(mode: AlertMode, language: str) -> str:
    """The prefix exercise and test messages carry ("" for live)."""
    if mode is AlertMode.LIVE:
        return ""
    return MODE_PREFIX.get((mode, language), MODE_PREFIX[(mode, "es")])


def check_placeholders(texts: Mapping[str, str]) -> set[str]:
    """Validate placeholders in every language; returns the contact fields used.

    Raises InvalidInput naming the language's text field and the placeholder without a default.
    """
    used: set[str] = set()
    problems: dict[str, str] = {}
    for language, body in texts.items():
        for match in PLACEHOLDER.finditer(body):
            name, default = match.group(1).lower(), match.group(2)
            if name in ALERT_FIELDS:
                continue
            if default is None:
                problems[f"texts.{language}"] = (
                    f"placeholder {{{name}}} needs a default for contacts that lack it, e.g. {{{name}|vecino}}"
                )
            used.add(name)
        stray = PLACEHOLDER.sub("", body)
        if "{" in stray or "}" in stray:
            problems.setdefault(f"texts.{language}", "unbalanced or malformed { } placeholder")
    if problems:
        raise InvalidInput("the text has placeholders that cannot be filled for every recipient", fields=problems)
    return used


def has_placeholders(body: str) -> bool:
    return PLACEHOLDER.search(body) is not None


def render(body: str, *, mode: AlertMode, language: str, code: str, reference: str,
           contact_name: str | None = None, attributes: Mapping[str, Any] | None = None) -> str:
    """The exact text one recipient's phone shows: mode prefix + placeholders filled."""
    attributes = attributes or {}

    def fill(match: re.Match[str]) -> str:
        name, default = match.group(1).lower(), match.group(2) or ""
        if name in {"codigo", "code"}:
            return code
        if name in {"referencia", "reference"}:
            return reference
        if name in {"nombre", "name"}:
            return contact_name or default
        value = attributes.get(name)
        return default if value in (None, "") else str(value)

    return mode_prefix(mode, language) + PLACEHOLDER.sub(fill, body)
