"""Simulator configuration: carriers, their receipts, handsets and faults; loaded from TOML.

A carrier in the file:

    [[carriers]]
    name = "alpha"
    port = 2775                 # 0 = any free port (reported at start)
    system_id = "alpha"
    password_env = "ALPHA_PW"   # or password = "literal"
    system_type = ""            # if set, binds must present it
    max_binds = 4
    message_id_style = "hex"    # or "decimal"
    deliver_window = 10         # deliver_sm outstanding per receiver (0 = no limit)
    [carriers.receipts]
    style = "text"              # "text" (appendix B), "tlv" (TLVs only), "both"
    id_style = "same"           # receipt shows the id: "same", "decimal", "upper", "padded"
    delay_s = [0.5, 2.0]
    failures = { UNDELIV = 0.05, EXPIRED = 0.01, REJECTD = 0.0 }
    errors = { UNDELIV = 1 }
    [carriers.handsets]
    reply_share = 0.3
    delay_s = [1.0, 10.0]
    texts = [{ text = "ACK {code}", weight = 5 }, { text = "SI", weight = 1 }]
    [[carriers.faults]]
    kind = "throttle"
    every_nth = 5
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smsc_sim import pdu
from smsc_sim.errors import ConfigError

RECEIPT_STYLES = ("text", "tlv", "both")
RECEIPT_ID_STYLES = ("same", "decimal", "upper", "padded")
MESSAGE_ID_STYLES = ("hex", "decimal")
FAILURE_STATES = ("EXPIRED", "UNDELIV", "REJECTD")
# Matches "ACK 4821", "código 4821", "code: 4821", "ref 4821".
DEFAULT_CODE_REGEX = r"(?i)\b(?:ack|c[óo]digo|code|ref(?:erencia)?)\W{0,3}(\d{4})\b"


@dataclass
class ReceiptConfig:
    """How a carrier reports delivery: form, id spelling, delay range, failure shares."""

    style: str = "text"
    id_style: str = "same"
    delay_s: tuple[float, float] = (0.0, 0.0)
    failures: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=lambda: {"EXPIRED": 0, "UNDELIV": 1, "REJECTD": 2})

    def validate(self, where: str) -> None:
        _one_of(where, "style", self.style, RECEIPT_STYLES)
        _one_of(where, "id_style", self.id_style, RECEIPT_ID_STYLES)
        _range(where, "delay_s", self.delay_s)
        for state, share in self.failures.items():
            _one_of(where, "failures", state, FAILURE_STATES)
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"{where}.failures.{state}: expected a share 0..1, got {share}")
        if sum(self.failures.values()) > 1.0:
            raise ConfigError(f"{where}.failures: shares add up to more than 1")


@dataclass
class HandsetConfig:
    """Simulated recipients: a share replies after a random delay with a weighted text.

    Texts may hold `{code}` (the 4-digit code found in the alert by `code_regex`) and
    `{wrong_code}` (a different 4-digit code).
    """

    reply_share: float = 0.0
    delay_s: tuple[float, float] = (1.0, 5.0)
    texts: list[tuple[str, float]] = field(default_factory=lambda: [("ACK {code}", 1.0)])
    code_regex: str = DEFAULT_CODE_REGEX

    def validate(self, where: str) -> None:
        if not 0.0 <= self.reply_share <= 1.0:
            raise ConfigError(f"{where}.reply_share: expected a share 0..1, got {self.reply_share}")
        _range(where, "delay_s", self.delay_s)
        if self.reply_share and not self.texts:
            raise ConfigError(f"{where}.texts: at least one text is needed when reply_share > 0")
        try:
            re.compile(self.code_regex)
        except re.error as exc:
            raise ConfigError(f"{where}.code_regex: {exc}") from exc


@dataclass
class FaultSpec:
    """A fault active from start (see faults.KINDS for kinds and parameters)."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class CarrierConfig:
    """One simulated carrier: one listening port, one account (system_id/password)."""

    name: str
    port: int = 0
    system_id: str = ""
    password: str = ""
    system_type: str | None = None
    max_binds: int = 10
    message_id_style: str = "hex"
    receipts: ReceiptConfig = field(default_factory=ReceiptConfig)
    handsets: HandsetConfig = field(default_factory=HandsetConfig)
    faults: list[FaultSpec] = field(default_factory=list)
    gsm7_codings: tuple[int, ...] = (0, 1)
    deliver_window: int = 0  # deliver_sm outstanding per receiver bind; 0 = no limit
    pw_source: str = "password"  # where the password came from, named when it is refused

    def __post_init__(self) -> None:
        if not self.system_id:
            self.system_id = self.name

    def validate(self) -> None:
        where = f"carriers.{self.name}"
        if not self.name:
            raise ConfigError("carriers: every carrier needs a name")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{where}.port: expected 0..65535, got {self.port}")
        if self.deliver_window < 0:
            raise ConfigError(f"{where}.deliver_window: expected >= 0, got {self.deliver_window}")
        if self.max_binds < 1:
            raise ConfigError(f"{where}.max_binds: expected >= 1, got {self.max_binds}")
        why = pdu.password_problem(self.password)
        if why:
            raise ConfigError(f"{where}: {self.pw_source} {why}", variable=self.pw_source)
        if not 1 <= len(self.system_id) <= 15:
            raise ConfigError(f"{where}.system_id: SMPP allows 1-15 characters, got {len(self.system_id)}")
        _one_of(where, "message_id_style", self.message_id_style, MESSAGE_ID_STYLES)
        self.receipts.validate(where + ".receipts")
        self.handsets.validate(where + ".handsets")


@dataclass
class SimConfig:
    """The whole simulator: carriers, optional control port, optional PDU log file."""

    carriers: list[CarrierConfig]
    host: str = "127.0.0.1"
    control_port: int | None = None
    log_path: Path | None = None
    keep_records: bool = True
    seed: int | None = None

    def validate(self) -> None:
        if not self.carriers:
            raise ConfigError("carriers: at least one carrier is needed")
        names = [c.name for c in self.carriers]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(f"carriers.{name}: duplicate carrier name")
        ports = [c.port for c in self.carriers if c.port]
        for port in ports:
            if ports.count(port) > 1:
                raise ConfigError(f"carriers: port {port} used twice")
        for carrier in self.carriers:
            carrier.validate()


def _one_of(where: str, key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}.{key}: expected one of {', '.join(allowed)}, got {value!r}")


def _range(where: str, key: str, value: tuple[float, float]) -> None:
    low, high = value
    if low < 0 or high < low:
        raise ConfigError(f"{where}.{key}: expected [min, max] with 0 <= min <= max, got {list(value)}")


# ---- TOML -------------------------------------------------------------------------------
_TOP_KEYS = {"carriers", "host", "control_port", "log", "keep_records", "seed"}
_CARRIER_KEYS = {"name", "port", "system_id", "password", "password_env", "system_type", "max_binds",
                 "message_id_style", "receipts", "handsets", "faults", "gsm7_codings", "deliver_window"}
_RECEIPT_KEYS = {"style", "id_style", "delay_s", "failures", "errors"}
_HANDSET_KEYS = {"reply_share", "delay_s", "texts", "code_regex"}


def load_config(path: Path, env: Mapping[str, str]) -> SimConfig:
    """Read a simulator TOML file. Raises ConfigError naming the key that is wrong.

    `env` resolves `password_env` (the caller passes the process environment).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return config_from_dict(data, env, source=str(path))


def config_from_dict(data: Mapping[str, Any], env: Mapping[str, str], source: str = "config") -> SimConfig:
    """Build and validate a SimConfig from parsed TOML. Raises ConfigError."""
    _no_unknown(source, data, _TOP_KEYS)
    carriers = [_carrier(f"{source}: carriers[{i}]", raw, env) for i, raw in enumerate(data.get("carriers", []))]
    log = data.get("log")
    config = SimConfig(
        carriers=carriers,
        host=str(data.get("host", "127.0.0.1")),
        control_port=data.get("control_port"),
        log_path=Path(log) if log else None,
        keep_records=bool(data.get("keep_records", True)),
        seed=data.get("seed"),
    )
    try:
        config.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from exc
    return config


def _carrier(where: str, raw: Mapping[str, Any], env: Mapping[str, str]) -> CarrierConfig:
    _no_unknown(where, raw, _CARRIER_KEYS)
    if "name" not in raw:
        raise ConfigError(f"{where}.name: missing")
    password = raw.get("password", "")
    if "password_env" in raw:
        var = raw["password_env"]
        if var not in env:
            raise ConfigError(f"{where}.password_env: environment variable {var} is not set")
        password = env[var]
    receipts_raw = raw.get("receipts", {})
    _no_unknown(where + ".receipts", receipts_raw, _RECEIPT_KEYS)
    receipts = ReceiptConfig(
        style=receipts_raw.get("style", "text"),
        id_style=receipts_raw.get("id_style", "same"),
        delay_s=_pair(where + ".receipts.delay_s", receipts_raw.get("delay_s", 0.0)),
        failures={k.upper(): float(v) for k, v in receipts_raw.get("failures", {}).items()},
        errors={**ReceiptConfig().errors, **{k.upper(): int(v) for k, v in receipts_raw.get("errors", {}).items()}},
    )
    handsets_raw = raw.get("handsets", {})
    _no_unknown(where + ".handsets", handsets_raw, _HANDSET_KEYS)
    texts = [(t["text"], float(t.get("weight", 1.0))) if isinstance(t, dict) else (str(t), 1.0)
             for t in handsets_raw.get("texts", [{"text": "ACK {code}"}])]
    handsets = HandsetConfig(
        reply_share=float(handsets_raw.get("reply_share", 0.0)),
        delay_s=_pair(where + ".handsets.delay_s", handsets_raw.get("delay_s", [1.0, 5.0])),
        texts=texts,
        code_regex=handsets_raw.get("code_regex", DEFAULT_CODE_REGEX),
    )
    faults = []
    for i, fault in enumerate(raw.get("faults", [])):
        if "kind" not in fault:
            raise ConfigError(f"{where}.faults[{i}].kind: missing")
        faults.append(FaultSpec(fault["kind"], {k: v for k, v in fault.items() if k != "kind"}))
    return CarrierConfig(
        name=str(raw["name"]),
        port=int(raw.get("port", 0)),
        system_id=str(raw.get("system_id", raw["name"])),
        password=str(password),
        system_type=raw.get("system_type") or None,
        max_binds=int(raw.get("max_binds", 10)),
        message_id_style=raw.get("message_id_style", "hex"),
        receipts=receipts,
        handsets=handsets,
        faults=faults,
        gsm7_codings=tuple(raw.get("gsm7_codings", (0, 1))),
        deliver_window=int(raw.get("deliver_window", 0)),
        pw_source=str(raw["password_env"]) if "password_env" in raw else "password",
    )


def _pair(where: str, value: Any) -> tuple[float, float]:
    if isinstance(value, int | float):
        return float(value), float(value)
    if isinstance(value, list) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise ConfigError(f"{where}: expected seconds or [min, max], got {value!r}")


def _no_unknown(where: str, raw: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
