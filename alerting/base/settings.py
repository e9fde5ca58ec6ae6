"""One Settings object, built once from the environment at process start and passed down.

No other module reads SIRENA_* variables (the carriers loader reads only the password variables
the carriers file names). Defaults are the demo's: local PostgreSQL, local Redis, the built-in
simulated carriers. A malformed value raises ConfigError naming the variable, at start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path

from alerting.base.errors import ConfigError
from alerting.base.intake_config import IntakeConfig
from alerting.base.sms_text.vocabulary import load_vocabulary

DEFAULT_CARRIERS_FILE = Path(__file__).resolve().parents[2] / "broadcast" / "carriers.demo.toml"


# Approvals a live alert needs before it is sent, per priority: the floor SIRENA_APPROVALS may
# raise but never lower (issue 9: "configurable per priority only upward").
MIN_APPROVALS: dict[str, int] = {"flash": 2, "high": 1, "normal": 1, "low": 1}
MAX_APPROVALS = 5


class Secret:
    """A secret value whose repr and str never show it.

    `previous` holds older values of the same secret after a rotation: they may still be used to
    read (decrypt a TOTP seed or a webhook secret, verify an old checkpoint line), never to write.
    """

    def __init__(self, value: str, previous: tuple[Secret, ...] = ()) -> None:
        self._value = value
        self.previous = previous

    def reveal(self) -> str:
        return self._value

    def all_values(self) -> list[str]:
        """The current value first, then the previous ones (newest first)."""
        return [self._value, *(p.reveal() for p in self.previous)]

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
    # How long an idle gateway worker's blocking wait on the queues lasts before it renews its RQ
    # heartbeat and waits again (a job wakes it at once). Its Redis socket timeout is this + 10 s.
    worker_idle_wait_s: int = 5
    # The longest a stored receipt's interpretation waits while send batches are queued (0: never).
    receipts_max_hold_s: int = 30
    log_level: str = "INFO"
    # Approvals per priority for live alerts, e.g. (("flash", 2), ("high", 2), ...); never below MIN_APPROVALS.
    approvals: tuple[tuple[str, int], ...] = tuple(MIN_APPROVALS.items())
    # Secret key files in use before a rotation: they still read what they wrote (see Secret).
    secret_key_previous_files: tuple[Path, ...] = ()
    # Base-map tile URL template for the console's maps; none: zones on a plain background (offline).
    tile_url: str | None = None
    # REST API requests a minute per token (0: no limit).
    api_rate_per_min: int = 600
    # E-mail intake, CAP and quiet hours (SIRENA_INTAKE_*, SIRENA_CAP_*, SIRENA_QUIET_*).
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    # Extra reply words per meaning (TOML, `ack = ["vale"]`), added to the built-in Spanish and English.
    vocabulary_file: Path | None = None
    # Priorities whose LIVE alerts reach opted-out contacts too (policy; "none" for no override).
    opt_out_override: tuple[str, ...] = ("flash",)
    # The group told at once, by SMS, of a HELP whose alert names no supervisors (or that matched
    # no alert); none: such a HELP reaches only the console (`sirena status` warns).
    oncall_group: str | None = None

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
        values["intake"] = IntakeConfig.from_env(env)
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
        table = dict(self.approvals)
        for priority, floor in MIN_APPROVALS.items():
            if table.get(priority, floor) < floor:
                raise ConfigError(f"SIRENA_APPROVALS: {priority}={table[priority]} is below the built-in minimum "
                                  f"{priority}={floor} (approvals can only be raised)", variable="SIRENA_APPROVALS")
        for path in self.secret_key_previous_files:
            if not path.is_file():
                raise ConfigError(f'SIRENA_SECRET_KEY_PREVIOUS_FILES: "{path}" is not a readable file',
                                  variable="SIRENA_SECRET_KEY_PREVIOUS_FILES")
        if self.vocabulary_file is not None:
            load_vocabulary(self.vocabulary_file)  # a bad file stops start-up, not the first reply

    def required_approvals(self, priority: str) -> int:
        """Approvals a live alert of `priority` needs (SIRENA_APPROVALS, never below MIN_APPROVALS)."""
        return max(dict(self.approvals).get(priority, 1), MIN_APPROVALS.get(priority, 1))

    def secret_key(self) -> Secret:
        """The key that signs sessions and encrypts TOTP seeds, read from secret_key_file, carrying
        the keys of SIRENA_SECRET_KEY_PREVIOUS_FILES as `previous` (read-only use)."""
        previous = tuple(Secret(_read_key(p, "SIRENA_SECRET_KEY_PREVIOUS_FILES"))
                         for p in self.secret_key_previous_files)
        return Secret(_read_key(self.secret_key_file, "SIRENA_SECRET_KEY_FILE"), previous)

    def shown(self) -> dict[str, str]:
        """Effective settings for `sirena config show`, passwords in URLs masked."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, IntakeConfig):
                out.update(value.shown())
                continue
            if isinstance(value, timedelta):
                text = str(int(value.total_seconds()))
            elif f.name == "approvals":
                text = ",".join(f"{k}={v}" for k, v in value)
            elif isinstance(value, tuple):
                text = ",".join(str(v) for v in value)
            elif value is None:
                text = ""
            elif f.name.endswith("_url"):
                text = _mask_url(str(value))
            else:
                text = str(value)
            out[f"SIRENA_{f.name.upper()}"] = text
        return out


def _read_key(path: Path, var: str) -> str:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"{var}: {path} does not exist (run `sirena setup`)", variable=var) from None
    if len(value) < 32:
        raise ConfigError(f"{var}: {path} holds fewer than 32 characters", variable=var)
    return value


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


def _whole_seconds(raw: str, low: int, high: int) -> int:
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise ValueError(f'expected whole seconds from {low} to {high}, got "{raw}"')
    return int(raw)


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


def _group_name(raw: str) -> str:
    name = raw.strip()
    if not 1 <= len(name) <= 100:
        raise ValueError(f'expected a group name of 1-100 characters, got "{raw}"')
    return name


def _database_url(raw: str) -> str:
    """A PostgreSQL URL for the installed driver: a bare postgresql:// (or postgres://) gets +psycopg2."""
    url = raw.strip()
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare):]
    return url


def _approvals(raw: str) -> tuple[tuple[str, int], ...]:
    """"flash=2,high=1": approvals per priority; unnamed priorities keep their built-in minimum."""
    table = dict(MIN_APPROVALS)
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        name, sep, count = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in MIN_APPROVALS or not count.strip().isdigit():
            raise ValueError(f'expected priority=count pairs such as "flash=2,high=1,normal=1,low=1", got "{item}"')
        value = int(count)
        if value < MIN_APPROVALS[name]:
            raise ValueError(f"{name}={value} is below the built-in minimum {name}={MIN_APPROVALS[name]} "
                             "(approvals can only be raised)")
        if value > MAX_APPROVALS:
            raise ValueError(f"{name}={value}: at most {MAX_APPROVALS} approvals")
        table[name] = value
    return tuple(table.items())


def _paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(p.strip()).expanduser() for p in raw.split(",") if p.strip())


def _tile_url(raw: str) -> str:
    url = raw.strip()
    if not url.startswith(("https://", "http://")) or not all(p in url for p in ("{z}", "{x}", "{y}")):
        raise ValueError(f'expected an http(s) URL template with {{z}}, {{x}} and {{y}}, got "{raw}"')
    return url


def _rate(raw: str) -> int:
    if not raw.strip().isdigit():
        raise ValueError(f'expected a whole number of requests a minute (0: no limit), got "{raw}"')
    return int(raw)


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
    "worker_idle_wait_s": lambda raw: _whole_seconds(raw, 1, 300),
    "receipts_max_hold_s": lambda raw: _whole_seconds(raw, 0, 600),
    "approvals": _approvals,
    "secret_key_previous_files": _paths,
    "tile_url": _tile_url,
    "api_rate_per_min": _rate,
    "vocabulary_file": _path,
    "opt_out_override": _priorities,
    "oncall_group": _group_name,
}
