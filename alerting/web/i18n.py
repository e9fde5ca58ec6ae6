"""Console language (Spanish or English, per operator) through Flask-Babel, and local times.

Templates call `_("English text")`; the Spanish is in `translations/es/LC_MESSAGES/messages.po`,
compiled in memory once per process (`ConsoleBabel`), so the repository holds no generated `.mo`
file. A missing entry shows the English. Times are shown in the operations centre's zone
(settings.timezone), whatever the operator's language.
"""

from __future__ import annotations

import io
from datetime import datetime
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, current_app, g
from flask_babel import Babel, Domain, get_locale

LANGUAGES = ("es", "en")
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def language() -> str:
    """The signed-in operator's language; Spanish before sign-in (the operations centre's)."""
    operator = g.get("operator")
    lang = getattr(operator, "language", None) or "es"
    return lang if lang in LANGUAGES else "es"


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
    def domain_instance(self) -> Domain:  # type: ignore[override]
        return _PoDomain(translation_directories=[str(TRANSLATIONS)])


def install(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "es")
    ConsoleBabel(app, locale_selector=language)


def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC datetime shown in the operations centre's time zone (settings.timezone)."""
    if value is None:
        return "—"
    zone = ZoneInfo(current_app.config["SIRENA_TIMEZONE"])
    return value.astimezone(zone).strftime(fmt)
