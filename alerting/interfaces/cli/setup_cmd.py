"""`sirena setup`, `sirena db upgrade`, `sirena config show`."""

from __future__ import annotations

import time

import click
from sqlalchemy.engine import make_url

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.command("setup")
@click.option("--browser", is_flag=True, help="Also install Chromium (for the console's browser tests).")
@json_option
@pass_ctx
def setup(ctx: Context, browser: bool, as_json: bool) -> None:
    """Install and start what is missing (PostGIS, Redis), create the database, migrate. Idempotent."""
    from alerting.interfaces.provision import run_setup

    started = time.monotonic()
    say = (lambda _m: None) if as_json else click.echo
    report = run_setup(ctx.settings, say, browser=browser)
    seconds = round(time.monotonic() - started, 2)
    human = "setup: nothing to do" if not report.actions else f"setup: {len(report.actions)} change(s)"
    emit(as_json, {"changed": bool(report.actions), "actions": report.actions, "seconds": seconds},
         f"{human} ({seconds} s)")


@cli.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Run the Alembic migrations to head, as the schema owner."""
    from alerting.base import migrate

    migrate.upgrade(ctx.settings.database_owner_url)
    click.echo("database at " + ", ".join(sorted(migrate.script_heads())))


@cli.group("config")
def config_group() -> None:
    """Effective settings."""


@config_group.command("show")
@json_option
@pass_ctx
def config_show(ctx: Context, as_json: bool) -> None:
    """Print the effective settings, secrets masked."""
    shown = ctx.settings.shown()
    shown["database"] = make_url(ctx.settings.database_url).database or ""
    emit(as_json, shown, "\n".join(f"{k}={v}" for k, v in shown.items()))
