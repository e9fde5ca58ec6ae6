"""The `sirena` command group and what every command shares: settings, JSON output, errors."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from alerting.base.runtime import Runtime
from alerting.base.settings import Settings


class Context:
    """Built lazily so `sirena --help` works even when settings are broken."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._db_ready = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    def db(self) -> Settings:
        """Settings, with this process's runtime started on them (once): the database; no Redis, a
        command's jobs are queued from PostgreSQL by the scheduler's next pass."""
        if not self._db_ready:
            self.start("sirena-cli", redis=False)
        return self.settings

    def start(self, name: str, *, redis: bool = True) -> Runtime:
        """Start this process's runtime (alerting/base/runtime.py) under `name`: the database and,
        with `redis`, a Redis client with short timeouts. The one start-up call of a command."""
        from alerting.base import runtime

        started = runtime.start(self.settings, name=name, redis=runtime.CONNECT if redis else None)
        self._db_ready = True
        return started


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Sirena: emergency mass alerts by SMS."""
    ctx.ensure_object(Context)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")


def emit(as_json: bool, data: dict[str, Any], human: str | None = None) -> None:
    """Print a human summary, or (with --json) one JSON object as the last line."""
    if as_json:
        click.echo(json.dumps(data, default=str, ensure_ascii=False))
    else:
        click.echo(human if human is not None else "\n".join(f"{k}: {v}" for k, v in data.items()))


def fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
