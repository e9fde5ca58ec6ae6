"""What a page says, and whether any of it is in the other language (issue 20, item 5).

`page_texts(html)` is the text a person reads on a page: text nodes and the attributes a browser
shows (placeholder, title, alt, aria-label, aria-valuetext, a button's value). It leaves out what
is not words of the console: scripts and styles, `<code>` (identifiers: audit actions, field
names, hashes), and any element marked `lang` in another language than the page (an SMS text in
Spanish on an English page, the language switch's "English" on a Spanish one).

`foreign(texts, lang, data)` names what in those texts belongs to the other language:
- on an English page, any Spanish msgstr of the catalogue (that differs from its msgid);
- on a Spanish page, any English msgid that has a translation, and any of ENGLISH_WORDS (words
  of English that no catalogue entry holds alone: an untranslated string shows them).
Each catalogue string is matched as a whole phrase (word boundaries; a `%(name)s` part matches
anything), after the test's own data (names, titles, texts it typed) is blanked out.
"""

from __future__ import annotations

import re
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

from babel.messages.pofile import read_po

PO = Path(__file__).resolve().parents[2] / "alerting/interfaces/web/translations/es/LC_MESSAGES/messages.po"
SHOWN_ATTRIBUTES = ("placeholder", "title", "alt", "aria-label", "aria-valuetext")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SKIPPED = {"script", "style", "code"}
# English words an untranslated string would show on a Spanish page, that no entry holds alone.
ENGLISH_WORDS = (
    "the", "and", "of", "is", "are", "not", "none", "yes", "True", "False", "with", "from", "for", "this", "that",
    "draft", "pending", "approved", "approval", "approvals", "sending", "sent", "completed", "rejected", "cancelled",
    "superseded", "scheduled", "queued", "submitted", "delivered", "failed", "expired", "retrying", "answer",
    "recipients", "located", "left", "override", "saved", "stopped", "Senders", "Address", "Keyword", "Report",
    "members", "member", "group", "zone", "phones", "alert", "alerts", "reply", "replies", "unmatched", "carrier",
    "carriers", "healthy", "degraded", "receipts", "disabled", "Enable", "Disable", "revoked", "never", "password",
    "unknown", "required", "static", "dynamic", "composer", "approver", "admin", "Drill", "Lang", "dry run",
    "opted out", "opted in", "poll", "free text", "no answer", "flash", "high", "low", "Sign", "Search", "page",
)
# Strings the two languages share (a Spanish word that is English too), never a sign of a leak.
SHARED = {"Panel", "Roles", "normal", "auditor", "Total", "Error", "SMS", "SMS/s", "ACK", "NO", "A", "en", "sí"}


class _Reader(HTMLParser):
    def __init__(self, lang: str) -> None:
        super().__init__(convert_charrefs=True)
        self.lang, self.texts, self.stack = lang, [], []

    def _skipping(self) -> bool:
        return any(skip for _, skip in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        other_lang = values.get("lang") not in (None, "", self.lang)
        skip = tag in SKIPPED or other_lang
        if not (skip or self._skipping()):
            self.texts += [values[a] or "" for a in SHOWN_ATTRIBUTES if values.get(a)]
            if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
                self.texts.append(values["value"] or "")
        if tag not in VOID:
            self.stack.append((tag, skip))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if data.strip() and not self._skipping():
            self.texts.append(" ".join(data.split()))


def page_texts(html: str) -> tuple[str, list[str]]:
    """(the page's `<html lang>`, the texts a person reads on it)."""
    match = re.search(r'<html lang="(\w+)"', html)
    lang = match.group(1) if match else ""
    reader = _Reader(lang)
    reader.feed(html)
    return lang, reader.texts


def _phrase(text: str) -> re.Pattern[str]:
    parts = re.split(r"%\(\w+\)s", text)
    body = r".+?".join(re.escape(p) for p in parts)
    return re.compile(rf"(?<![\w]){body}(?![\w])")


@cache
def markers(lang: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """What gives the other language away on a page in `lang`."""
    with PO.open("rb") as fh:
        catalog = read_po(fh, locale="es")
    found: dict[str, re.Pattern[str]] = {}
    for message in catalog:
        if not message.id or not isinstance(message.id, str) or not message.string or message.string == message.id:
            continue
        other = message.string if lang == "en" else message.id
        fixed = re.sub(r"%\(\w+\)s", "", other).strip(" .,:;()·→-")
        if other in SHARED or len(fixed) < 3 or not re.search(r"[A-Za-zÁÉÍÓÚáéíóúñÑ]{2}", fixed):
            continue
        found[other] = _phrase(other)
    if lang == "es":
        for word in ENGLISH_WORDS:
            found.setdefault(word, re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])"))
    return tuple(found.items())


def foreign(texts: list[str], lang: str, data: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(marker, the text it was found in) for each string of the other language on the page."""
    hits = []
    for text in texts:
        for value in sorted(data, key=len, reverse=True):
            text = text.replace(value, " ")
        for marker, pattern in markers(lang):
            if pattern.search(text):
                hits.append((marker, text))
    return hits
