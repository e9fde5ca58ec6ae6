"""The carriers file: which SMSCs we bind to, how, and which senders each one carries.

A TOML file (see `broadcast/carriers.demo.toml`) parsed once at start into frozen dataclasses.
Anything wrong stops start-up with a ConfigError naming the line (syntax) or the table path and
key (`carriers.alpha.bindz: unknown key`). Passwords never live in the file: each carrier names
an environment variable (`password_env`) whose value is looked up in the mapping the caller
passes in (the process environment, handed down from the entry point like Settings).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from alerting.base.errors import ConfigError
from alerting.base.models.senders import SenderKind
from alerting.base.settings import Secret

# TON/NPI values used here (SMPP 3.4 §5.2.5, §5.2.6).
TON_INTERNATIONAL, TON_NETWORK_SPECIFIC, TON_ALPHANUMERIC = 1, 3, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1


# How message ids compare between submit_sm_resp and receipts (see broadcast/receipts.py).
RECEIPT_ID_STYLES = ("string", "hex", "decimal", "hex:decimal", "decimal:hex")


class BindMode(StrEnum):
    TRANSCEIVER = "transceiver"  # one connection both ways
    TRANSMITTER_RECEIVER = "transmitter_receiver"  # a transmitter plus a receiver per bind


@dataclass(frozen=True)
class SenderConfig:
    """Where an SMS comes from. `address` is what goes in source_addr (no '+')."""

    name: str
    kind: SenderKind
    address: str
    ton: int | None  # None: the carrier's short_code_ton/npi apply
    npi: int | None
    keyword: str | None = None
    daily_cap: int | None = None  # submit_sm PDUs (parts) per UTC day, long numbers only
    tps: float | None = None  # parts per second across every carrier, long numbers only


@dataclass(frozen=True)
class CarrierConfig:
    """One SMSC account. `tps` is the whole account's; each of its `binds` gets tps / binds."""

    name: str
    host: str
    port: int
    system_id: str
    password: Secret = field(repr=False)
    password_env: str
    senders: tuple[str, ...]
    system_type: str = ""
    bind_mode: BindMode = BindMode.TRANSCEIVER
    binds: int = 1
    tps: float = 100.0
    window: int = 10
    data_coding_gsm7: int = 0  # 0 = "SMSC default alphabet" (most carriers), some want 1
    dest_ton: int = TON_INTERNATIONAL
    dest_npi: int = NPI_ISDN
    short_code_ton: int = TON_NETWORK_SPECIFIC
    short_code_npi: int = NPI_UNKNOWN
    registered_delivery: int = 1
    service_type: str = ""
    validity_period: str | None = None  # SMPP relative time "YYMMDDhhmmss000R"
    test: bool = False  # a simulator or test account: the only kind exercise alerts may use
    enquire_link_s: float = 30.0
    response_timeout_s: float = 10.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 10.0
    reconnect_max_s: float = 30.0
    receipt_id_style: str = "string"  # how ids compare: string|hex|decimal|hex:decimal|decimal:hex (receipts.py)

    @property
    def bind_tps(self) -> float:
        return self.tps / self.binds


@dataclass(frozen=True)
class CarriersConfig:
    """Every carrier and sender, and which carriers carry which sender."""

    carriers: tuple[CarrierConfig, ...]
    senders: Mapping[str, SenderConfig]
    source: str = "<string>"
    # What the console offers first: `default_sender` in the file, else the first short code, then
    # long number (a dedicated two-way code: replies to a shared one need its keyword).
    default_sender: str | None = None

    def carrier(self, name: str) -> CarrierConfig:
        """The carrier called `name`; raises ConfigError naming the known ones."""
        for carrier in self.carriers:
            if carrier.name == name:
                return carrier
        known = ", ".join(c.name for c in self.carriers)
        raise ConfigError(f'unknown carrier "{name}" (known: {known})', carrier=name)

    def carriers_for(self, sender: str) -> tuple[CarrierConfig, ...]:
        """Carriers that carry `sender` (for a shared code: where its keyword is registered)."""
        return tuple(c for c in self.carriers if sender in c.senders)


def source_ton_npi(carrier: CarrierConfig, sender: SenderConfig) -> tuple[int, int]:
    """TON/NPI for `sender` on `carrier`: short codes follow the carrier, the rest the sender."""
    if sender.ton is None or sender.npi is None:
        return carrier.short_code_ton, carrier.short_code_npi
    return sender.ton, sender.npi


_CARRIER_KEYS: dict[str, type | tuple[type, ...]] = {
    "host": str,
    "port": int,
    "system_id": str,
    "password_env": str,
    "senders": list,
    "system_type": str,
    "bind_mode": str,
    "binds": int,
    "tps": (int, float),
    "window": int,
    "data_coding_gsm7": int,
    "dest_ton": int,
    "dest_npi": int,
    "short_code_ton": int,
    "short_code_npi": int,
    "registered_delivery": int,
    "service_type": str,
    "validity_period_s": int,
    "test": bool,
    "enquire_link_s": (int, float),
    "response_timeout_s": (int, float),
    "breaker_failures": int,
    "breaker_cooldown_s": (int, float),
    "reconnect_max_s": (int, float),
    "receipt_id_style": str,
}
_CARRIER_REQUIRED = ("host", "port", "system_id", "password_env", "senders")
_SENDER_KEYS: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "address": str,
    "keyword": str,
    "daily_cap": int,
    "tps": (int, float),
    "ton": int,
    "npi": int,
}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_carriers(path: Path, env: Mapping[str, str] | None) -> CarriersConfig:
    """Read and validate the carriers file at `path`; passwords are looked up in `env`.

    `env=None` reads senders and routes only (what `sirena setup` writes to the database): the
    password variables need not be set, and the carriers' passwords are empty, so such a config
    can never bind. Raises ConfigError naming the file and the line or key that is wrong.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"carriers file {path}: {exc.strerror}", file=str(path)) from None
    return parse_carriers(text, env, source=str(path))


def parse_carriers(text: str, env: Mapping[str, str] | None, *, source: str = "<string>") -> CarriersConfig:
    """Validate carriers-file TOML `text` (`env=None`: without passwords, see load_carriers).
    Raises ConfigError naming the line or key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}", file=source) from None
    problem = _Problems(text, source)
    problem.unknown_keys(data, {"carriers", "senders", "default_sender"}, "")
    senders_raw = _table(data, "senders", problem)
    carriers_raw = _table(data, "carriers", problem)
    if not carriers_raw:
        problem.fail("carriers", "at least one [carriers.NAME] table is needed")
    senders = {name: _sender(name, raw, problem) for name, raw in senders_raw.items()}
    _refuse_duplicate_senders(senders, problem)
    carriers = tuple(_carrier(name, raw, senders, env, problem) for name, raw in carriers_raw.items())
    return CarriersConfig(carriers=carriers, senders=senders, source=source,
                          default_sender=_default_sender(data.get("default_sender"), senders, problem))


def _default_sender(raw: Any, senders: Mapping[str, SenderConfig], problem: _Problems) -> str | None:
    """The file's `default_sender`, checked: a dedicated two-way code. Absent: the first short code
    declared, else the first long number, else none."""
    if raw is None:
        for kind in (SenderKind.SHORT, SenderKind.LONG):
            found = next((name for name, s in senders.items() if s.kind is kind), None)
            if found is not None:
                return found
        return None
    if not isinstance(raw, str) or raw not in senders:
        problem.fail("default_sender", f"expected the name of a [senders.NAME] table, got {raw!r}")
    kind = senders[raw].kind
    if kind is SenderKind.SHARED:
        problem.fail("default_sender", f"{raw} is a shared short code: replies to it are lost without its keyword "
                                       f"{senders[raw].keyword}; name a dedicated short code or long number")
    if kind is SenderKind.ALPHANUMERIC:
        problem.fail("default_sender", f"{raw} is an alphanumeric sender: nobody can reply to it; name a "
                                       "dedicated short code or long number")
    return str(raw)


class _Problems:
    """Builds ConfigErrors naming `table.key` and, when it can find it, the line."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def fail(self, path: str, reason: str) -> None:
        line = self._line_of(path)
        where = f"{self.source}:{line}" if line else self.source
        raise ConfigError(f"{where}: {path}: {reason}", file=self.source, key=path, line=line)

    def unknown_keys(self, table: Mapping[str, Any], known: Any, path: str) -> None:
        for key in table:
            if key not in known:
                self.fail(f"{path}.{key}" if path else key, "unknown key")

    def _line_of(self, path: str) -> int | None:
        """Best effort: the line of `key = ` inside `[table]`, or of the `[table]` header itself."""
        *table_parts, key = path.split(".")
        table = ".".join(table_parts)
        current = ""
        for number, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            if line.startswith("["):
                current = line.strip("[] ").replace('"', "")
                if current == path:
                    return number
            elif current == table and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
                return number
        return None


def _table(data: Mapping[str, Any], key: str, problem: _Problems) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        problem.fail(key, "expected a table")
    for name, sub in value.items():
        if not isinstance(sub, dict):
            problem.fail(f"{key}.{name}", "expected a table")
        if not _NAME.match(name):
            problem.fail(f"{key}.{name}", "names are 1-32 letters, digits, '-' or '_'")
    return value


def _typed(raw: Mapping[str, Any], spec: Mapping[str, Any], path: str, problem: _Problems) -> None:
    problem.unknown_keys(raw, spec, path)
    for key, value in raw.items():
        expected = spec[key]
        # bool is an int in Python; a `true` where a number belongs is a mistake.
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            types = (expected,) if isinstance(expected, type) else expected
            names = " or ".join(t.__name__ for t in types)
            problem.fail(f"{path}.{key}", f"expected {names}, got {value!r}")


def _sender(name: str, raw: Mapping[str, Any], problem: _Problems) -> SenderConfig:
    path = f"senders.{name}"
    _typed(raw, _SENDER_KEYS, path, problem)
    for key in ("kind", "address"):
        if key not in raw:
            problem.fail(f"{path}.{key}", "required")
    try:
        kind = SenderKind(raw["kind"])
    except ValueError:
        problem.fail(f"{path}.kind", f'expected long, short, shared or alphanumeric, got "{raw["kind"]}"')
    address: str = raw["address"]
    keyword = raw.get("keyword")
    if kind is SenderKind.LONG:
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", address):
            problem.fail(f"{path}.address", f'a long number is E.164 like "+56911112222", got "{address}"')
        address, ton, npi = address[1:], TON_INTERNATIONAL, NPI_ISDN
    elif kind in (SenderKind.SHORT, SenderKind.SHARED):
        if not re.fullmatch(r"[0-9]{3,8}", address):
            problem.fail(f"{path}.address", f'a short code is 3-8 digits, got "{address}"')
        ton, npi = None, None
    else:
        # GSM 03.38 allows 11 alphanumeric characters in the originating address.
        if not re.fullmatch(r"[A-Za-z0-9 ._-]{1,11}", address) or address.isdigit():
            problem.fail(f"{path}.address", f'an alphanumeric sender is 1-11 letters/digits, got "{address}"')
        ton, npi = TON_ALPHANUMERIC, NPI_UNKNOWN
    if kind is SenderKind.SHARED:
        if not keyword or not re.fullmatch(r"[A-Za-z0-9]{2,20}", keyword):
            problem.fail(f"{path}.keyword", "a shared short code needs a keyword of 2-20 letters/digits")
        keyword = str(keyword).upper()
    elif keyword is not None:
        problem.fail(f"{path}.keyword", "only a shared short code has a keyword")
    for key in ("daily_cap", "tps"):
        if key in raw and kind is not SenderKind.LONG:
            problem.fail(f"{path}.{key}", "only long numbers have a daily cap and a TPS of their own")
        if key in raw and raw[key] <= 0:
            problem.fail(f"{path}.{key}", f"expected a positive number, got {raw[key]}")
    return SenderConfig(
        name=name,
        kind=kind,
        address=address,
        ton=raw.get("ton", ton),
        npi=raw.get("npi", npi),
        keyword=keyword,
        daily_cap=raw.get("daily_cap"),
        tps=float(raw["tps"]) if "tps" in raw else None,
    )


def _refuse_duplicate_senders(senders: Mapping[str, SenderConfig], problem: _Problems) -> None:
    seen: dict[tuple[str, str | None], str] = {}
    for name, sender in senders.items():
        # Two shared senders may share the short code; the keyword tells their replies apart.
        key = (sender.address.upper(), sender.keyword)
        if key in seen:
            what = f'address "{sender.address}"' + (f' keyword "{sender.keyword}"' if sender.keyword else "")
            problem.fail(f"senders.{name}", f'duplicate sender: same {what} as "{seen[key]}"')
        seen[key] = name
    shared_codes = {s.address for s in senders.values() if s.kind is SenderKind.SHARED}
    for name, sender in senders.items():
        if sender.kind is SenderKind.SHORT and sender.address in shared_codes:
            problem.fail(f"senders.{name}", f'short code "{sender.address}" is also declared shared')


def _carrier(
    name: str,
    raw: Mapping[str, Any],
    senders: Mapping[str, SenderConfig],
    env: Mapping[str, str] | None,
    problem: _Problems,
) -> CarrierConfig:
    path = f"carriers.{name}"
    _typed(raw, _CARRIER_KEYS, path, problem)
    for key in _CARRIER_REQUIRED:
        if key not in raw:
            problem.fail(f"{path}.{key}", "required")
    if not 0 < raw["port"] < 65536:
        problem.fail(f"{path}.port", f"expected 1-65535, got {raw['port']}")
    if not 1 <= len(raw["system_id"]) <= 15:
        problem.fail(f"{path}.system_id", "SMPP allows 1-15 characters")
    env_name = raw["password_env"]
    if not _ENV_NAME.match(env_name):
        problem.fail(f"{path}.password_env", f'expected an environment variable name, got "{env_name}"')
    password = "" if env is None else env.get(env_name)
    if password is None:
        problem.fail(f"{path}.password_env", f"environment variable {env_name} is not set")
    why = smpp_password_problem(password)  # type: ignore[arg-type]
    if why:
        problem.fail(f"{path}.password_env", f"{env_name} {why}")
    carried = raw["senders"]
    if not carried or not all(isinstance(s, str) for s in carried):
        problem.fail(f"{path}.senders", "expected a non-empty list of sender names")
    for sender in carried:
        if sender not in senders:
            problem.fail(f"{path}.senders", f'unknown sender "{sender}" (no [senders.{sender}] table)')
    if len(set(carried)) != len(carried):
        dup = next(s for s in carried if carried.count(s) > 1)
        problem.fail(f"{path}.senders", f'duplicate sender "{dup}"')
    try:
        mode = BindMode(raw.get("bind_mode", BindMode.TRANSCEIVER))
    except ValueError:
        got = raw["bind_mode"]
        problem.fail(f"{path}.bind_mode", f'expected transceiver or transmitter_receiver, got "{got}"')
    style = raw.get("receipt_id_style", "string")
    if style not in RECEIPT_ID_STYLES:
        problem.fail(f"{path}.receipt_id_style", f"expected one of {', '.join(RECEIPT_ID_STYLES)}, got {style!r}")
    _check_ranges(raw, path, problem)
    options = {k: raw[k] for k in _CARRIER_KEYS if k in raw and k not in _NOT_FIELDS}
    for key in ("tps", "enquire_link_s", "response_timeout_s", "breaker_cooldown_s", "reconnect_max_s"):
        if key in options:
            options[key] = float(options[key])
    return CarrierConfig(
        name=name,
        password=Secret(password),  # type: ignore[arg-type]
        senders=tuple(carried),
        bind_mode=mode,
        validity_period=relative_validity(raw["validity_period_s"]) if "validity_period_s" in raw else None,
        **options,
    )


def smpp_password_problem(password: str) -> str | None:
    """Why SMPP cannot carry `password`, or None. bind's password is a C-Octet String of at most 9
    octets with its NUL (SMPP 3.4 §4.1.1): 8 characters, and plain ASCII so a character is an octet.
    The simulator, standing for a carrier, checks its accounts by the spec too (smsc_sim.pdu:
    the product does not import the simulator); tests/broadcast/test_carriers.py holds both to
    the same answers."""
    if not password.isascii() or any(not ch.isprintable() for ch in password):
        return "holds characters other than printable ASCII (SMPP's password is a C-Octet String)"
    if len(password) > 8:
        return f"is {len(password)} characters long; SMPP allows at most 8 (a C-Octet String of 9 octets with its NUL)"
    return None


def password_problems(config: CarriersConfig, env: Mapping[str, str]) -> list[str]:
    """For `sirena status` and the like: each carrier password variable of `config` that is unset in
    `env`, or holds a password SMPP cannot carry, said in a sentence naming the variable."""
    out = []
    for carrier in config.carriers:
        value = env.get(carrier.password_env)
        if value is None:
            out.append(f"{carrier.password_env} (carrier {carrier.name}'s password) is not set in this shell")
        elif why := smpp_password_problem(value):
            out.append(f"{carrier.password_env} (carrier {carrier.name}'s password) {why}")
    return out


_NOT_FIELDS = {"senders", "bind_mode", "validity_period_s"}
_RANGES = {
    "binds": (1, 64),
    "window": (1, 1000),
    "tps": (0.01, 1_000_000),
    "data_coding_gsm7": (0, 1),
    "dest_ton": (0, 6),
    "dest_npi": (0, 18),
    "short_code_ton": (0, 6),
    "short_code_npi": (0, 18),
    "registered_delivery": (0, 31),
    "validity_period_s": (60, 99 * 86400),
    "enquire_link_s": (1, 3600),
    "response_timeout_s": (0.1, 600),
    "breaker_failures": (1, 1000),
    "breaker_cooldown_s": (0.1, 3600),
    "reconnect_max_s": (0.1, 3600),
}


def _check_ranges(raw: Mapping[str, Any], path: str, problem: _Problems) -> None:
    for key, (low, high) in _RANGES.items():
        if key in raw and not low <= raw[key] <= high:
            problem.fail(f"{path}.{key}", f"expected {low} to {high}, got {raw[key]}")
    if len(raw.get("service_type", "")) > 5:
        problem.fail(f"{path}.service_type", "SMPP allows up to 5 characters")
    if len(raw.get("system_type", "")) > 12:
        problem.fail(f"{path}.system_type", "SMPP allows up to 12 characters")


def relative_validity(seconds: int) -> str:
    """SMPP 3.4 relative time (§7.1.1) "YYMMDDhhmmss000R" for a validity of `seconds`."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"
