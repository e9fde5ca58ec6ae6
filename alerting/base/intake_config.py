"""Settings of the machine ways in (e-mail intake, CAP, schedules), from SIRENA_* variables.

Part of alerting.base.settings.Settings (`settings.intake`): built once at process start by
`Settings.from_env`, never read at import time or per task. A malformed value raises ConfigError
naming the variable, so a process refuses to start with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

from alerting.base.errors import ConfigError


@dataclass(frozen=True)
class IntakeConfig:
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    # The address mail must be sent to; anything else is refused at RCPT time.
    intake_address: str = "alertas@sirena.localhost"
    relay_host: str = "127.0.0.1"  # where reply mail goes (the site's SMTP relay)
    relay_port: int = 25
    reply_from: str = "sirena-no-reply@sirena.localhost"
    max_message_bytes: int = 5 * 1024 * 1024
    max_recipients: int = 10_000  # numbers listed in one mail
    sms_sender: str = "SIRENA-SC"  # the Sirena sender name drafts from e-mail and CAP use
    cap_sender_id: str = "sirena@sirena.localhost"  # <sender> of the CAP we publish
    cap_trusted_certs: tuple[Path, ...] = ()  # PEM files; a signed CAP must verify against one
    cap_require_signature: bool = False
    cap_drill_groups: tuple[str, ...] = ()  # where CAP Test/Exercise drafts go (empty: every drill group)
    quiet_start: time = time(22, 0)  # tests and drills are refused from quiet_start to quiet_end
    quiet_end: time = time(7, 0)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IntakeConfig:
        values: dict[str, Any] = {}  # each parsed by its _VARS parser, to its field's type
        for name, (var, parse) in _VARS.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{var}: {exc}", variable=var) from None
        return cls(**values)

    def shown(self) -> dict[str, str]:
        """Effective values by variable name, for `sirena config show`."""
        out = {}
        for name, (var, _parse) in _VARS.items():
            value = getattr(self, name)
            if isinstance(value, tuple):
                out[var] = ",".join(str(v) for v in value)
            elif isinstance(value, time):
                out[var] = value.strftime("%H:%M")
            else:
                out[var] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


def _port(raw: str) -> int:
    value = int(raw) if raw.isdigit() else -1
    if not 1 <= value <= 65535:
        raise ValueError(f'expected a TCP port 1-65535, got "{raw}"')
    return value


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f'expected a positive whole number, got "{raw}"')
    return int(raw)


def _paths(raw: str) -> tuple[Path, ...]:
    paths = tuple(Path(p.strip()).expanduser() for p in raw.split(",") if p.strip())
    for path in paths:
        if not path.is_file():
            raise ValueError(f'"{path}" is not a readable file')
    return paths


def _names(raw: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in raw.split(",") if n.strip())


def _flag(raw: str) -> bool:
    if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
        raise ValueError(f'expected true or false, got "{raw}"')
    return raw.lower() in {"1", "true", "yes"}


def _clock(raw: str) -> time:
    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise ValueError(f'expected HH:MM, got "{raw}"') from None


def _address(raw: str) -> str:
    if "@" not in raw or " " in raw.strip():
        raise ValueError(f'expected an e-mail address, got "{raw}"')
    return raw.strip().lower()


_VARS: dict[str, tuple[str, Callable[[str], object]]] = {
    "smtp_host": ("SIRENA_INTAKE_SMTP_HOST", str),
    "smtp_port": ("SIRENA_INTAKE_SMTP_PORT", _port),
    "intake_address": ("SIRENA_INTAKE_ADDRESS", _address),
    "relay_host": ("SIRENA_INTAKE_RELAY_HOST", str),
    "relay_port": ("SIRENA_INTAKE_RELAY_PORT", _port),
    "reply_from": ("SIRENA_INTAKE_REPLY_FROM", _address),
    "max_message_bytes": ("SIRENA_INTAKE_MAX_BYTES", _positive),
    "sms_sender": ("SIRENA_INTAKE_SMS_SENDER", str),
    "cap_sender_id": ("SIRENA_CAP_SENDER_ID", str),
    "cap_trusted_certs": ("SIRENA_CAP_TRUSTED_CERTS", _paths),
    "cap_require_signature": ("SIRENA_CAP_REQUIRE_SIGNATURE", _flag),
    "cap_drill_groups": ("SIRENA_CAP_DRILL_GROUPS", _names),
    "quiet_start": ("SIRENA_QUIET_START", _clock),
    "quiet_end": ("SIRENA_QUIET_END", _clock),
}
