"""What a resident who texts ALTA/JOIN reads back, in Spanish or English (the language of the word
they used). Plain GSM-7 (no accents), one SMS each where the keywords fit: a resident on an old
phone must be able to read and answer it.

On a shared short code every instruction starts with the code's keyword (`VECINOS SI`): without
it the carrier would not route the answer to us.
"""

from __future__ import annotations

from collections.abc import Sequence

# The word a resident answers to confirm, per language (both are ACK words in the vocabulary).
CONFIRM_WORD = {"es": "SI", "en": "YES"}
LEAVE_WORD = {"es": "BAJA", "en": "STOP"}
MAX_LISTED = 8  # published keywords named in a refusal; more would not fit one SMS


def _lang(language: str) -> str:
    return language if language in CONFIRM_WORD else "es"


def _say(shared_keyword: str | None, word: str) -> str:
    return f"{shared_keyword.upper()} {word}" if shared_keyword else word


def _hours(seconds: int) -> str:
    hours = seconds / 3600
    return f"{hours:.0f} h" if hours >= 1 else f"{max(1, seconds // 60)} min"


def confirmation_request(language: str, target: str | None, confirm_within_s: int, shared_keyword: str | None) -> str:
    """The double opt-in question, sent to a number that asked to register."""
    lang = _lang(language)
    yes = _say(shared_keyword, CONFIRM_WORD[lang])
    within = _hours(confirm_within_s)
    if lang == "en":
        what = f" for {target.upper()}" if target else ""
        return (f"Sirena: to get emergency alerts{what} on this number, reply {yes} within {within}. "
                "If you did not ask, ignore this message.")
    what = f" de {target.upper()}" if target else ""
    return (f"Sirena: para recibir alertas de emergencia{what} en este numero responda {yes} antes de {within}. "
            "Si no lo pidio, ignore este mensaje.")


def welcome(language: str, target: str | None, shared_keyword: str | None) -> str:
    """Sent once the number confirmed: it is a contact now."""
    lang = _lang(language)
    leave = _say(shared_keyword, LEAVE_WORD[lang])
    if lang == "en":
        what = f" for {target.upper()}" if target else ""
        return f"Sirena: you are registered{what}. You will get this service's alerts. Reply {leave} to leave."
    what = f" para {target.upper()}" if target else ""
    return f"Sirena: registro confirmado{what}. Recibira las alertas de este servicio. Para salir responda {leave}."


def already_registered(language: str, target: str | None, shared_keyword: str | None) -> str:
    """Sent to a contact who asks to register again (and is subscribed to what the keyword named)."""
    lang = _lang(language)
    leave = _say(shared_keyword, LEAVE_WORD[lang])
    if lang == "en":
        more = f" You will also get the alerts for {target.upper()}." if target else ""
        return f"Sirena: this number is already registered.{more} Reply {leave} to leave."
    more = f" Tambien recibira las alertas de {target.upper()}." if target else ""
    return f"Sirena: este numero ya esta registrado.{more} Para salir responda {leave}."


def unknown_keyword(language: str, word: str, target: str, published: Sequence[str],
                    shared_keyword: str | None) -> str:
    """A keyword nobody published: say which ones exist (or to text the word alone)."""
    lang = _lang(language)
    ask = _say(shared_keyword, word.upper())
    listed = ", ".join(k.upper() for k in sorted(published)[:MAX_LISTED])
    if len(published) > MAX_LISTED:
        listed += ", ..."
    if lang == "en":
        if not published:
            return f"Sirena: {target.upper()} is not a zone or group you can join. Send {ask} alone to register."
        return f"Sirena: {target.upper()} is not a zone or group you can join. Send {ask} and one of: {listed}"
    if not published:
        return f"Sirena: {target.upper()} no es una zona ni un grupo disponible. Envie solo {ask} para registrarse."
    return f"Sirena: {target.upper()} no es una zona ni un grupo disponible. Envie {ask} y uno de: {listed}"


def declined(language: str, word: str, shared_keyword: str | None) -> str:
    """A pending number answered NO."""
    lang = _lang(language)
    ask = _say(shared_keyword, word.upper())
    if lang == "en":
        return f"Sirena: you were not registered. Send {ask} to ask again."
    return f"Sirena: no se completo el registro. Puede pedirlo de nuevo con {ask}."


def withdrawn(language: str, word: str, shared_keyword: str | None) -> str:
    """A pending number answered STOP/BAJA: nothing more is sent to it."""
    lang = _lang(language)
    ask = _say(shared_keyword, word.upper())
    if lang == "en":
        return f"Sirena: request cancelled; you will get no messages from this service. Send {ask} to register."
    return f"Sirena: solicitud cancelada; no recibira mensajes de este servicio. Para registrarse envie {ask}."


def expired(language: str, word: str, shared_keyword: str | None) -> str:
    """A confirmation that came after the time limit."""
    lang = _lang(language)
    ask = _say(shared_keyword, word.upper())
    if lang == "en":
        return f"Sirena: your request expired. Send {ask} again to register."
    return f"Sirena: su solicitud vencio. Envie {ask} de nuevo para registrarse."
