"""What a phone will show: the mode prefix and the per-recipient placeholders.

Placeholders: `{codigo}` (the alert's reply code), `{referencia}` (its reference) and contact
fields (`{nombre}`, any attribute such as `{unidad}`), each of the latter with a default after a
bar: `{nombre|vecino}`. A contact placeholder without a default is refused at compose: an SMS
must never reach a phone reading "{nombre}".

On a shared short code the carrier routes a reply to us only by its first word, the keyword, so
the system writes the keyword into the text's reply instruction (`with_reply_keyword`): the
composer writes "Responda ACK {codigo}", the phone shows "Responda BOMBEROS ACK 4821".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from alerting.base.errors import InvalidInput
from alerting.base.models.alerts import Alert, AlertMode

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


# Words a text tells people to send before the code ("Responda ACK {codigo}", "SI {codigo}"). A word
# written in capitals before {codigo} counts too ("CONFIRMO {codigo}").
REPLY_WORDS = frozenset({"ack", "si", "sí", "no", "ok", "yes", "ayuda", "help", "sos", "listo", "confirmo"})
_INSTRUCTION = re.compile(r"(?<![\w{])([^\W\d_]+)(\s+)(?=\{(?:codigo|code)\})", re.IGNORECASE)
_APPENDED = {"es": "Responda {keyword} ACK {{codigo}}.", "en": "Reply {keyword} ACK {{codigo}}."}


def with_reply_keyword(body: str, keyword: str | None, language: str, *, ask_reply: bool) -> str:
    """`body` (as written, placeholders unfilled) with a shared code's `keyword` written before each
    reply word of its instruction: "Responda ACK {codigo} o AYUDA {codigo}" → "Responda BOMBEROS ACK
    {codigo} o BOMBEROS AYUDA {codigo}". A word already preceded by the keyword is left alone. A text
    with no instruction gets one at its end ("Responda BOMBEROS ACK {codigo}.") when the alert asks
    for replies (`ask_reply`: an ACK deadline), so every answer reaches us. No keyword: `body` as is.
    """
    if not keyword:
        return body
    found = False

    def insert(match: re.Match[str]) -> str:
        nonlocal found
        word = match.group(1)
        if not (word.isupper() or word.lower() in REPLY_WORDS) or word.upper() == keyword.upper():
            return match.group(0)
        found = True
        before = body[:match.start()].rstrip().rsplit(None, 1)
        if before and before[-1].upper() == keyword.upper():
            return match.group(0)  # the composer wrote it already
        return f"{keyword} {word}{match.group(2)}"

    out = _INSTRUCTION.sub(insert, body)
    if found or not ask_reply:
        return out
    ending = _APPENDED.get(language, _APPENDED["es"]).format(keyword=keyword)
    out = out.rstrip()
    return f"{out}{'' if out.endswith(('.', '!', '?', '…')) else '.'} {ending}"


def texts_for_phones(alert: Alert, keyword: str | None) -> dict[str, str]:
    """The alert's text per language as it goes out, placeholders unfilled: with its sender's
    `keyword` (a shared code's, else None) in the reply instruction; an instruction is added when
    the alert is chased for answers (an ACK deadline, not a poll). The gateway, re-sends and the
    approval page all take the text from here, so the approver sees what phones get."""
    ask_reply = alert.ack_deadline_s is not None and not alert.poll_options
    return {language: with_reply_keyword(body, keyword, language, ask_reply=ask_reply)
            for language, body in alert.texts.items()}


def is_personalised(body: str) -> bool:
    """Whether the text differs between recipients: a placeholder other than the alert's own
    ({codigo}, {referencia}: the same for everyone)."""
    return any(m.group(1).lower() not in ALERT_FIELDS for m in PLACEHOLDER.finditer(body))


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
