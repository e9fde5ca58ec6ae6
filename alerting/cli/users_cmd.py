"""`sirena users create` and `sirena tokens create|revoke`."""

from __future__ import annotations

import sys

import click

from alerting.cli.app import Context, cli, emit, json_option, pass_ctx
from audit.actor import Actor


def _cli_actor() -> Actor:
    import getpass

    return Actor(kind="system", name=f"cli:{getpass.getuser()}", interface="cli")


@cli.group("users")
def users_group() -> None:
    """Console operators."""


@users_group.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["composer", "approver", "admin", "auditor"]), help="Repeat for several roles.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@pass_ctx
def users_create(ctx: Context, name: str, roles: tuple[str, ...], password_stdin: bool, as_json: bool) -> None:
    """Create an operator; prints the password (unless given) and the TOTP enrolment URI, once."""
    from alerting.accounts import create_operator
    from alerting.db import transaction

    settings = ctx.db()
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with transaction() as session:
        new = create_operator(session, name, list(roles), settings.secret_key(), _cli_actor(), password=password)
    data = {"username": new.operator.username, "roles": new.operator.roles, "totp_uri": new.totp_uri}
    if not password_stdin:
        data["password"] = new.password
    human = "\n".join([f"operator {name} created with roles {', '.join(roles)}",
                       *( [f"password (shown once): {new.password}"] if not password_stdin else []),
                       f"TOTP enrolment URI (shown once): {new.totp_uri}"])
    emit(as_json, data, human)


@cli.group("tokens")
def tokens_group() -> None:
    """API bearer tokens."""


@tokens_group.command("create")
@click.option("--user", "username", required=True)
@click.option("--scope", "scopes", multiple=True, required=True, help="Repeat: read, alerts:draft, ...")
@click.option("--name", default="")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650))
@json_option
@pass_ctx
def tokens_create(ctx: Context, username: str, scopes: tuple[str, ...], name: str, days: int,
                  as_json: bool) -> None:
    """Create a token acting as USER; printed once, stored hashed."""
    from datetime import timedelta

    from alerting.accounts import create_token
    from alerting.db import transaction

    ctx.db()
    with transaction() as session:
        row, token = create_token(session, username, list(scopes), _cli_actor(), name=name,
                                  expires_in=timedelta(days=days))
    emit(as_json, {"id": row.id, "token": token, "scopes": row.scopes, "expires_at": row.expires_at},
         f"token {row.id} for {username} ({', '.join(row.scopes)}), shown once:\n{token}")


@tokens_group.command("revoke")
@click.argument("token_id", type=int)
@pass_ctx
def tokens_revoke(ctx: Context, token_id: int) -> None:
    """Revoke a token at once."""
    from alerting.accounts import revoke_token
    from alerting.db import transaction

    ctx.db()
    with transaction() as session:
        revoke_token(session, token_id, _cli_actor())
    click.echo(f"token {token_id} revoked")
