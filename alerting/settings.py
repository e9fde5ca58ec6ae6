"""One Settings object, built once from the environment at process start and passed down.

No other module reads os.environ. Defaults are the demo's: local PostgreSQL, local Redis, the
built-in simulated carriers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path

from alerting.errors import ConfigError

DEFAULT_CARRIERS_FILE = Path(__file__).resolve().parent.parent / "broadcast" / "carriers.demo.toml"


class Secret:
    """A secret value whose repr and str never show it."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _default_config_dir() -> Path:
    return Path.home() / ".config" / "sirena"


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql+psycopg2://sirena_app@127.0.0.1:5432/sirena"
    # Owner of the schema: runs migrations. The app role above cannot alter or disable the
    # audit table's triggers (it does not own it).
    database_owner_url: str = "postgresql+psycopg2://sirena_owner@127.0.0.1:5432/sirena"
    # A superuser connection used only by `sirena setup` to create roles, database and PostGIS.
    database_admin_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    secret_key_file: Path = field(default_factory=lambda: _default_config_dir() / "secret_key")
    carriers_file: Path = DEFAULT_CARRIERS_FILE
    default_region: str = "CL"
    timezone: str = "America/Santiago"
    ack_deadline: timedelta = timedelta(minutes=15)
    audit_checkpoint_dir: Path = field(default_factory=lambda: _default_config_dir() / "checkpoints")
    data_dir: Path = field(default_factory=lambda: Path.home() / ".local" / "share" / "sirena")
    redis_timeout_s: float = 2.0
    # Numbers that may receive exercise/test messages through real carriers (drill phones).
    drill_allowlist: tuple[str, ...] = ()
    reconcile_interval_s: float = 2.0
    # How long a worker's claim on a delivery lasts before the reconciler may hand it to another.
    lease_s: int = 30
    log_level: str = "INFO"
    # Extra reply words per meaning (TOML, `ack = ["vale"]`), added to the built-in Spanish and English.
    vocabulary_file: Path | None = None
    # Priorities whose LIVE alerts reach opted-out contacts too (policy; "none" for no override).
    opt_out_override: tuple[str, ...] = ("flash",)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build from SIRENA_* variables; a malformed value raises ConfigError naming it."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, parse in _PARSERS.items():
            var = f"SIRENA_{name.upper()}"
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{var}: {exc}", variable=var) from None
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check values that need more than parsing; raises ConfigError naming the setting."""
        import phonenumbers

        if self.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                f'SIRENA_DEFAULT_REGION: expected an ISO 3166 region such as CL, got "{self.default_region}"',
                variable="SIRENA_DEFAULT_REGION",
            )
        for var, url, schemes in (
            ("SIRENA_DATABASE_URL", self.database_url, ("postgresql",)),
            ("SIRENA_DATABASE_OWNER_URL", self.database_owner_url, ("postgresql",)),
            ("SIRENA_DATABASE_ADMIN_URL", self.database_admin_url, ("postgresql",)),
            ("SIRENA_REDIS_URL", self.redis_url, ("redis", "rediss", "unix")),
        ):
            if url.split(":", 1)[0].split("+", 1)[0] not in schemes:
                raise ConfigError(f'{var}: expected a {schemes[0]}:// URL, got "{_mask_url(url)}"', variable=var)
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except Exception:
            raise ConfigError(
                f'SIRENA_TIMEZONE: unknown time zone "{self.timezone}"', variable="SIRENA_TIMEZONE"
            ) from None
        if self.vocabulary_file is not None:
            from broadcast.vocabulary import load_vocabulary

            load_vocabulary(self.vocabulary_file)  # a bad file stops start-up, not the first reply

    def secret_key(self) -> Secret:
        """The key that signs sessions and encrypts TOTP seeds, read from secret_key_file."""
        try:
            value = self.secret_key_file.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(
                f"SIRENA_SECRET_KEY_FILE: {self.secret_key_file} does not exist (run `sirena setup`)",
                variable="SIRENA_SECRET_KEY_FILE",
            ) from None
        if len(value) < 32:
            raise ConfigError(
                f"SIRENA_SECRET_KEY_FILE: {self.secret_key_file} holds fewer than 32 characters",
                variable="SIRENA_SECRET_KEY_FILE",
            )
        return Secret(value)

    def shown(self) -> dict[str, str]:
        """Effective settings for `sirena config show`, passwords in URLs masked."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, timedelta):
                text = str(int(value.total_seconds()))
            elif isinstance(value, tuple):
                text = ",".join(value)
            elif value is None:
                text = ""
            elif f.name.endswith("_url"):
                text = _mask_url(str(value))
            else:
                text = str(value)
            out[f"SIRENA_{f.name.upper()}"] = text
        return out


def _mask_url(url: str) -> str:
    """postgresql://user:pw@host/db → postgresql://user:***@host/db."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def _seconds(raw: str) -> timedelta:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f'expected seconds, got "{raw}"') from None
    if value <= 0:
        raise ValueError(f'expected a positive number of seconds, got "{raw}"')
    return timedelta(seconds=value)


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f'expected a number, got "{raw}"') from None
    if value <= 0:
        raise ValueError(f'expected a positive number, got "{raw}"')
    return value


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _region(raw: str) -> str:
    return raw.strip().upper()


def _numbers(raw: str) -> tuple[str, ...]:
    numbers = tuple(n.strip() for n in raw.split(",") if n.strip())
    for number in numbers:
        if not (number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16):
            raise ValueError(f'expected comma-separated E.164 numbers such as +56912345678, got "{number}"')
    return numbers


def _level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f'expected DEBUG, INFO, WARNING or ERROR, got "{raw}"')
    return level


def _priorities(raw: str) -> tuple[str, ...]:
    if raw.strip().lower() == "none":
        return ()
    names = tuple(dict.fromkeys(p.strip().lower() for p in raw.split(",") if p.strip()))
    for name in names:
        if name not in {"flash", "high", "normal", "low"}:
            raise ValueError(f'expected "none" or comma-separated priorities (flash, high, normal, low), got "{name}"')
    return names


def _database_url(raw: str) -> str:
    """A PostgreSQL URL for the installed driver: a bare postgresql:// (or postgres://) gets +psycopg2."""
    url = raw.strip()
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare):]
    return url


_PARSERS: dict[str, Callable[[str], object]] = {
    "database_url": _database_url,
    "database_owner_url": _database_url,
    "database_admin_url": _database_url,
    "redis_url": str,
    "secret_key_file": _path,
    "carriers_file": _path,
    "default_region": _region,
    "timezone": str,
    "ack_deadline": _seconds,
    "audit_checkpoint_dir": _path,
    "data_dir": _path,
    "redis_timeout_s": _positive_float,
    "log_level": _level,
    "drill_allowlist": _numbers,
    "reconcile_interval_s": _positive_float,
    "lease_s": lambda raw: int(_positive_float(raw)),
    "vocabulary_file": _path,
    "opt_out_override": _priorities,
}
