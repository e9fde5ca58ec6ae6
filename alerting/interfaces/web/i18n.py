"""Console language (Spanish or English, per operator) through Flask-Babel, and local times.

Templates call `_("English text")`; the Spanish is in `translations/es/LC_MESSAGES/messages.po`,
compiled in memory once per process (`ConsoleBabel`), so the repository holds no generated `.mo`
file. A missing entry shows the English. Times are shown in the operations centre's zone
(settings.timezone), whatever the operator's language.

The services speak English (their messages go to the API, the CLI and the logs too). What they
say reaches the console through `translate_message`: the catalogue holds each message as a
pattern, its variable parts written `%(name)s` (`alert %(alert_id)s does not exist`), so a
message made with an f-string is still found; a value inside it that is a stored state or
priority is shown in the operator's words too (alerting/interfaces/web/labels.py). Numbers go through
`number` (Babel's grouping for the language; the pages' scripts use Intl.NumberFormat with the
page's `lang` and the same grouping, so a live update never changes how a number is written).
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from functools import cache, cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, Domain, format_decimal, format_percent, get_locale, gettext

from alerting.directory.accounts import LANGUAGES
from alerting.interfaces.web.labels import value_word

TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def language() -> str:
    """The signed-in operator's language; before sign-in, the browser's choice between the two
    (Accept-Language), else Spanish (the operations centre's)."""
    operator = g.get("operator")
    lang = getattr(operator, "language", None)
    if lang is None and has_request_context():
        lang = request.accept_languages.best_match(LANGUAGES)
    return lang if lang in LANGUAGES else LANGUAGES[0]


def compile_catalogue(lang: str) -> NullTranslations:
    """The `.po` of `lang` compiled in memory; no translation (English) when there is none."""
    po = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


class _PoDomain(Domain):
    def get_translations(self) -> NullTranslations:
        locale = get_locale()
        key = locale.language if locale is not None else "en"
        if key not in self.cache:
            self.cache[key] = compile_catalogue(key)
        return self.cache[key]


class ConsoleBabel(Babel):
    """Flask-Babel whose catalogues come from the `.po` sources."""

    @cached_property
    def domain_instance(self) -> Domain:
        return _PoDomain(translation_directories=[str(TRANSLATIONS)])


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _regex(msgid: str) -> re.Pattern[str]:
    """A msgid with `%(name)s` parts as a pattern that captures each part (a repeated name must
    repeat its value)."""
    parts, seen, at = [], set(), 0
    for match in _PLACEHOLDER.finditer(msgid):
        parts.append(re.escape(msgid[at:match.start()]))
        name = match.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
        at = match.end()
    parts.append(re.escape(msgid[at:]))
    return re.compile("".join(parts), re.DOTALL)


@cache
def _patterns(lang: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The catalogue's messages with variable parts, most specific (most fixed text) first."""
    po = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return ()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    found = [(m.id, m.string) for m in catalog
             if isinstance(m.id, str) and m.id and "%(" in m.id and isinstance(m.string, str) and m.string
             and not m.context]
    found.sort(key=lambda pair: -len(_PLACEHOLDER.sub("", pair[0])))
    return tuple((_regex(msgid), msgstr) for msgid, msgstr in found)


_COUNT = re.compile(r"\d{1,3}(,\d{3})+|\d+")
_STATED = re.compile(r"([^,;()]+) \((\w+)\)")  # "A-2026-000012 (sending)"
_DEPTH = 6  # messages nest: a refusal's reason names users, a list of alerts, each with its state


def _word(value: str, depth: int) -> str:
    """A value inside a message, in the operator's words: a count grouped as their language groups
    it (the services write 12,345), a stored state or priority by its label (also in parentheses
    after a reference: `A-1 (sending)`), a phrase or message of its own (a reason inside a
    refusal), a list of such (joined by "; " or ", "); else as it is. A single word is an
    identifier (a field, an operator like `in`): left alone."""

    if _COUNT.fullmatch(value):
        return number(int(value.replace(",", "")))
    word = value_word(value)
    if word is not None or depth > _DEPTH:
        return word or value
    stated = _STATED.fullmatch(value)
    if stated and value_word(stated[2]):
        return f"{stated[1]} ({value_word(stated[2])})"
    if " " in value.strip():
        shown = _translated(value, depth + 1)
        if shown != value:
            return shown
    for joint in ("; ", ", "):
        if joint in value:
            return joint.join(_word(part, depth + 1) for part in value.split(joint))
    return value


def _by_pattern(text: str, depth: int) -> str | None:
    locale = get_locale()
    for pattern, msgstr in _patterns(locale.language if locale is not None else "en"):
        match = pattern.fullmatch(text)
        if match:
            return msgstr % {name: _word(value, depth) for name, value in match.groupdict().items()}
    return None


def _translated(text: str, depth: int) -> str:
    exact = gettext(text)
    if exact != text:
        return exact
    return _by_pattern(text, depth) or text


def translate_message(message: object) -> str:
    """A service's English message (an error, a refusal, a note) in the operator's language: the
    catalogue's entry for it, or for the pattern it fits, its variable parts translated in turn;
    as it is when the catalogue has neither."""
    text = "" if message is None else str(message)
    locale = get_locale()
    if not text or locale is None or locale.language == "en":
        return text
    return _translated(text, 0)


def number(value: object) -> str:
    """A count as the operator's language writes it (12,345 or 12.345); None is 0."""
    return format_decimal(int(value or 0))  # type: ignore[call-overload]


def decimal(value: float | None, pattern: str = "#,##0.##") -> str:
    """A measure (an area, seconds) with up to two decimals (or as `pattern` says: "#,##0.0" for
    exactly one), as the operator's language writes it."""
    return format_decimal(value or 0, format=pattern)


def percent(value: float | None) -> str:
    """A share (0.62) as the operator's language writes it (62% or 62 %), in whole percent rounded
    down: 99.6 % of an alert sent is not "100 %"."""
    return format_percent(int((value or 0) * 100 + 1e-9) / 100)


def duration(seconds: float | None) -> str:
    """A time span as the live page shows it, the same in both languages: `45 s`, `12 min 03 s`,
    `2 h 05 min`; `—` when there is none."""
    if seconds is None:
        return "—"
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def install(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "es")
    ConsoleBabel(app, locale_selector=language)


def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC datetime shown in the operations centre's time zone (settings.timezone)."""
    if value is None:
        return "—"
    zone = ZoneInfo(current_app.config["SIRENA_TIMEZONE"])
    return value.astimezone(zone).strftime(fmt)
