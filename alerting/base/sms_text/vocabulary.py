"""What a reply means: the words (Spanish and English, configurable), the keyword, the code.

Texts are compared case- and accent-insensitively. A word within a small edit distance of one
meaning's word is taken as that meaning (`recibdo` → ack), but only for words long enough that a
typo is plausible, never for opt-out/opt-in (a guess must not unsubscribe anyone), and never when
the word is also close to another meaning's word: then the reply is kept as free text.
"""

from __future__ import annotations

import enum
import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

from alerting.base.errors import ConfigError


class ReplyMeaning(enum.StrEnum):
    """What a reply means (the `replies.meaning` column); the words for each are below."""

    ACK = "ack"
    NO = "no"
    HELP = "help"
    POLL = "poll"
    STOP = "stop"
    START = "start"
    VERIFY_YES = "verify_yes"
    FREE_TEXT = "free_text"


DEFAULT_WORDS: dict[ReplyMeaning, tuple[str, ...]] = {
    ReplyMeaning.ACK: ("ack", "ok", "okay", "oka", "recibido", "recibida", "enterado", "enterada", "si", "yes",
                       "yep", "confirmo", "confirmado", "received", "roger", "listo", "👍", "✅", "👌"),
    ReplyMeaning.NO: ("no", "nope", "negativo", "👎"),
    ReplyMeaning.HELP: ("help", "ayuda", "auxilio", "socorro", "sos", "🆘"),
    ReplyMeaning.STOP: ("stop", "baja", "alto", "unsubscribe", "cancelar"),
    ReplyMeaning.START: ("start", "alta", "subscribe", "unstop"),
}
# Opt-out and opt-in change who is reached in an emergency: exact words only.
EXACT_ONLY = frozenset({ReplyMeaning.STOP, ReplyMeaning.START})
# Words that ask to be registered when a number we do not know texts them (`ALTA`, `JOIN CENTRO`),
# each with the language it is in: the new contact's language is guessed from the word used. The
# START words ask it too (ALTA is both: back in for a contact, registration for a stranger).
# Exact words only, like opt-in.
DEFAULT_REGISTER: dict[str, str] = {"join": "en", "register": "en", "signup": "en", "enroll": "en",
                                    "registro": "es", "registrar": "es", "registrarme": "es",
                                    "inscribir": "es", "inscribirme": "es", "suscribir": "es", "suscribirme": "es"}
START_LANGUAGES: dict[str, str] = {"alta": "es", "start": "en", "subscribe": "en", "unstop": "en"}
REGISTER_LANGUAGES = ("es", "en")  # the languages the registration answers are written in
_TOKEN = re.compile(r"[^\W_]+|[\U0001F000-\U0001FAFF\u2600-\u27BF]", re.UNICODE)
_CODE = re.compile(r"^\d{4}$")


def fold(value: str) -> str:
    """Lower case without accents, emoji skin tones or variation selectors: how words are compared."""
    decomposed = unicodedata.normalize("NFKD", value.lower())
    return "".join(ch for ch in decomposed
                   if not unicodedata.combining(ch) and not ("\U0001F3FB" <= ch <= "\U0001F3FF") and ch != "\ufe0f")


def tokens(value: str) -> list[str]:
    return _TOKEN.findall(fold(value))


@lru_cache(maxsize=8192)
def _piece_tokens(piece: str) -> tuple[str, ...]:
    return tuple(tokens(piece))


def cached_tokens(value: str) -> list[str]:
    """tokens(value), folding each whitespace-separated piece once per process (replies repeat the
    same few words: every inbound batch reads each text twice, for registrations and as a reply)."""
    return [t for piece in value.split() for t in _piece_tokens(piece)]


def edit_distance(a: str, b: str, limit: int = 3) -> int:
    """Optimal-string-alignment distance (a swap of neighbours counts 1), capped at `limit`."""
    if abs(len(a) - len(b)) >= limit:
        return limit
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return min(prev[-1], limit)


def _allowed_typos(word: str) -> int:
    return 0 if len(word) < 5 else 1 if len(word) < 8 else 2


@dataclass(frozen=True)
class Reading:
    """What a text says: its meaning, the code it quotes, a poll option, the words after them."""

    meaning: ReplyMeaning
    code: str | None = None
    poll_answer: str | None = None
    keyword: str | None = None


@dataclass(frozen=True)
class RegistrationText:
    """A text that asks to be registered: `[KEYWORD] ALTA [CENTRO]`."""

    word: str  # the registration word, folded
    language: str  # the language of that word
    target: str | None  # the zone or group keyword after it, folded
    keyword: str | None  # the shared code's keyword the text started with


@dataclass(frozen=True)
class Vocabulary:
    words: Mapping[ReplyMeaning, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_WORDS))
    # Registration words beyond the START ones: folded word → language (es or en).
    register: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_REGISTER))

    @classmethod
    def from_toml(cls, text: str) -> Vocabulary:
        """Extra words per meaning, added to the defaults: `ack = ["vale", "copiado"]`; extra
        registration words per language in a `[register]` table (`es = ["apuntarme"]`). Raises ConfigError."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"vocabulary: {exc}") from None
        words = {m: list(w) for m, w in DEFAULT_WORDS.items()}
        register = _register_words(data.pop("register", {}), words)
        for key, extra in data.items():
            meaning = next((m for m in DEFAULT_WORDS if m.value == key), None)
            if meaning is None:
                raise ConfigError(f"vocabulary.{key}: unknown meaning (one of ack, no, help, stop, start; "
                                  "registration words go in a [register] table)")
            if not isinstance(extra, list) or not all(isinstance(w, str) and w.strip() for w in extra):
                raise ConfigError(f"vocabulary.{key}: expected a list of words")
            for word in extra:
                if tokens(word) != [fold(word).strip()]:  # replies are read word by word
                    raise ConfigError(f'vocabulary.{key}: "{word}" is not one word')
                other = next((m for m, ws in words.items() if m is not meaning and fold(word) in map(fold, ws)), None)
                if other is not None:  # one word, two meanings: a reply would be read either way
                    raise ConfigError(f'vocabulary.{key}: "{word}" already means {other.value}')
                if fold(word) in register:
                    raise ConfigError(f'vocabulary.{key}: "{word}" already asks to register')
                words[meaning].append(fold(word))
        return cls({m: tuple(dict.fromkeys(w)) for m, w in words.items()}, register)

    @cached_property
    def registration_languages(self) -> dict[str, str]:
        """Every registration word (the START ones too), folded → the language it is in."""
        starts = {fold(w): START_LANGUAGES.get(fold(w), "es") for w in self.words.get(ReplyMeaning.START, ())}
        return {**starts, **{fold(w): lang for w, lang in self.register.items()}}

    def read_registration(self, body: str, *, keywords: Sequence[str] = ()) -> RegistrationText | None:
        """The registration a text asks for, or None: a registration word (exact), optionally one
        keyword after it, nothing more; after the shared code's keyword when `keywords` are given
        (then the first word must be one of them). Longer texts are not requests ("alta la
        marea en el centro")."""
        words = cached_tokens(body)
        keyword = None
        if keywords:
            folded = {fold(k): k for k in keywords}
            if not words or words[0] not in folded:
                return None
            keyword, words = folded[words[0]], words[1:]
        if not words or len(words) > 2:
            return None
        language = self.registration_languages.get(words[0])
        if language is None:
            return None
        return RegistrationText(words[0], language, words[1] if len(words) == 2 else None, keyword)

    @cached_property
    def _exact(self) -> dict[str, ReplyMeaning]:
        index: dict[str, ReplyMeaning] = {}
        for meaning, words in self.words.items():
            for word in words:
                index.setdefault(fold(word), meaning)
        return index

    @cached_property
    def _memo(self) -> dict[str, ReplyMeaning | None]:
        return {}

    def exact_meaning(self, word: str) -> ReplyMeaning | None:
        """The meaning of `word` when it is one of the vocabulary's words as written (no typo rule)."""
        return self._exact.get(fold(word))

    def meaning_of(self, word: str) -> ReplyMeaning | None:
        """The meaning of one folded word, exact or within the typo rule; None when unknown or ambiguous."""
        if word in self._exact:
            return self._exact[word]
        if word in self._memo:
            return self._memo[word]
        if len(self._memo) > 50_000:  # replies repeat the same few words; a flood of others must not grow it
            self._memo.clear()
        meaning = self._memo[word] = self._guess(word)
        return meaning

    def _guess(self, word: str) -> ReplyMeaning | None:
        allowed = _allowed_typos(word)
        if not allowed:
            return None
        near: set[ReplyMeaning] = set()
        close: set[ReplyMeaning] = set()
        for meaning, words in self.words.items():
            distance = min(edit_distance(word, fold(w), limit=allowed + 2) for w in words)
            if meaning in EXACT_ONLY:
                if distance <= allowed + 1:
                    return None  # close to an opt-out/opt-in word: never guess
            elif distance <= allowed:
                near.add(meaning)
            elif distance <= allowed + 1:
                close.add(meaning)
        # Also one typo further from another meaning's word: too risky to guess.
        if len(near) == 1 and not close:
            return next(iter(near))
        return None

    def read(self, body: str, *, keywords: Sequence[str] = (), poll_options: Sequence[str] | None = None) -> Reading:
        """Interpret a reply. `keywords`: a shared code's keywords (the first word must be one).

        HELP anywhere in the text wins (a missed call for help is worse than a false one); else
        the first word decides; a poll option (number or word) wins over the vocabulary.
        """
        words = tokens(body)
        keyword = None
        folded_keywords = {fold(k): k for k in keywords}
        if words and words[0] in folded_keywords:
            keyword = folded_keywords[words[0]]
            words = words[1:]
        code = next((w for w in words if _CODE.match(w)), None)
        rest = [w for w in words if w != code]
        meanings = [self.meaning_of(w) for w in rest]
        if ReplyMeaning.HELP in meanings:
            return Reading(ReplyMeaning.HELP, code, None, keyword)
        if poll_options and rest:
            answer = _poll_answer(rest, poll_options)
            if answer is not None:
                return Reading(ReplyMeaning.POLL, code, answer, keyword)
        if not rest:
            return Reading(ReplyMeaning.ACK if code else ReplyMeaning.FREE_TEXT, code, None, keyword)
        first = meanings[0]
        if first in (ReplyMeaning.STOP, ReplyMeaning.START) and len(rest) > 2:
            first = None  # "no quiero que alto el fuego…": opt-out only as a short command
        return Reading(first or ReplyMeaning.FREE_TEXT, code, None, keyword)


def _register_words(table: object, words: Mapping[ReplyMeaning, list[str]]) -> dict[str, str]:
    """DEFAULT_REGISTER plus a TOML `[register]` table of language → words. Raises ConfigError."""
    if not isinstance(table, dict):
        raise ConfigError('vocabulary.register: expected a table such as es = ["apuntarme"]')
    register = dict(DEFAULT_REGISTER)
    for language, extra in table.items():
        if language not in REGISTER_LANGUAGES:
            raise ConfigError(f"vocabulary.register.{language}: unknown language (one of es, en)")
        if not isinstance(extra, list) or not all(isinstance(w, str) and w.strip() for w in extra):
            raise ConfigError(f"vocabulary.register.{language}: expected a list of words")
        for word in extra:
            if tokens(word) != [fold(word).strip()]:
                raise ConfigError(f'vocabulary.register.{language}: "{word}" is not one word')
            other = next((m for m, ws in words.items() if fold(word) in map(fold, ws)), None)
            if other is not None:
                raise ConfigError(f'vocabulary.register.{language}: "{word}" already means {other.value}')
            register[fold(word)] = language
    return register


def _poll_answer(words: list[str], options: Sequence[str]) -> str | None:
    """The option a reply picks: its number (1-based) or its words (typos within the rule)."""
    first = words[0]
    if first.isdigit() and len(first) <= 2:
        index = int(first) - 1
        return options[index] if 0 <= index < len(options) else None
    folded = [fold(o) for o in options]
    phrase = " ".join(words)
    if phrase in folded:
        return options[folded.index(phrase)]
    near = [i for i, o in enumerate(folded) if edit_distance(phrase, o) <= _allowed_typos(o)]
    if len(near) == 1:
        return options[near[0]]
    return None


DEFAULT = Vocabulary()
VARIABLE = "SIRENA_VOCABULARY_FILE"


def load_vocabulary(path: Path | None) -> Vocabulary:
    """The built-in words plus those of the TOML file at `path` (none: the built-in ones).

    Raises ConfigError naming SIRENA_VOCABULARY_FILE, the file and what is wrong in it.
    """
    if path is None:
        return DEFAULT
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{VARIABLE}: cannot read {path}: {reason}", variable=VARIABLE) from None
    try:
        return Vocabulary.from_toml(text)
    except ConfigError as exc:
        raise ConfigError(f"{VARIABLE}: {path}: {exc}", variable=VARIABLE) from None
