"""The console's one catalogue: every string the console asks for has its Spanish, and no Spanish
asks for a value its English does not give (a `%(name)s` the page cannot fill would be an error
page, or a KeyError inside one)."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from alerting.interfaces.web.labels import LABELS

WEB = Path(__file__).resolve().parents[2] / "alerting" / "interfaces" / "web"
PO = WEB / "translations" / "es" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_": None, "gettext": None, "lazy_gettext": None, "pgettext": ((1, "c"), 2)}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _catalogue() -> dict[tuple[str | None, str], str]:
    with PO.open("rb") as fh:
        return {(m.context, m.id): m.string for m in read_po(fh, locale="es") if m.id}


def _asked() -> dict[tuple[str | None, str], str]:
    """Every (context, msgid) the templates and the console's Python ask for, and every label."""
    asked = {}
    for name, line, msgid, _comments, context in extract_from_dir(
            str(WEB), method_map=[("templates/**.html", "jinja2"), ("**.py", "python")], keywords=KEYWORDS):
        asked.setdefault((context, msgid), f"{name}:{line}")
    for context, values in LABELS.items():
        for english in values.values():
            asked.setdefault((context, english), f"labels {context}")
    return asked


def test_every_console_string_has_its_spanish() -> None:
    catalogue, asked = _catalogue(), _asked()
    assert len(asked) > 400  # the extraction found the console's strings, not nothing
    missing = {where: key for key, where in asked.items() if not catalogue.get(key)}
    assert missing == {}


def test_no_spanish_asks_for_a_value_its_english_does_not_give() -> None:
    wrong = {msgid: msgstr for (_, msgid), msgstr in _catalogue().items()
             if not set(PLACEHOLDER.findall(msgstr)) <= set(PLACEHOLDER.findall(msgid))}
    assert wrong == {}
