"""`sirena users create` and `sirena tokens create|revoke`."""

from __future__ import annotations

import sys
from typing import Any

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx
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
    from alerting.base.db import transaction
    from alerting.directory.accounts import create_operator

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


def _operator_id(name: str) -> int:
    from alerting.base.db import transaction
    from alerting.directory.accounts import get_operator

    with transaction() as session:
        return get_operator(session, name).id


@users_group.command("list")
@json_option
@pass_ctx
def users_list(ctx: Context, as_json: bool) -> None:
    """Operators: roles, whether enrolled in TOTP, disabled, last sign-in."""
    from sqlalchemy import select

    from alerting.base.db import transaction
    from alerting.base.models import Operator

    ctx.db()
    with transaction() as session:
        rows: list[dict[str, Any]] = [
            {"username": o.username, "roles": sorted(o.roles), "enrolled": o.totp_enrolled_at is not None,
             "disabled": bool(o.disabled), "last_login_at": o.last_login_at}
            for o in session.scalars(select(Operator).order_by(Operator.username))]
    human = "\n".join(f"{r['username']:<20} {','.join(r['roles']):<30} "
                      f"{'enrolled' if r['enrolled'] else 'not enrolled':<13}{' DISABLED' if r['disabled'] else ''}"
                      for r in rows) or "no operators"
    emit(as_json, {"operators": rows}, human)


@users_group.command("roles")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["composer", "approver", "admin", "auditor"]), help="Repeat for several roles.")
@json_option
@pass_ctx
def users_roles(ctx: Context, name: str, roles: tuple[str, ...], as_json: bool) -> None:
    """Replace an operator's roles (audited with before and after; the last admin keeps admin)."""
    from alerting.base.db import transaction
    from alerting.directory.accounts import set_roles

    ctx.db()
    operator_id = _operator_id(name)
    with transaction() as session:
        operator = set_roles(session, operator_id, list(roles), _cli_actor())
        data = {"username": operator.username, "roles": sorted(operator.roles)}
    emit(as_json, data, f"{name} now has the roles {', '.join(data['roles'])}")


@users_group.command("reset-mfa")
@click.argument("name")
@json_option
@pass_ctx
def users_reset_mfa(ctx: Context, name: str, as_json: bool) -> None:
    """A new TOTP seed for an operator who lost their phone; prints the enrolment URI once (audited)."""
    from alerting.base.db import transaction
    from alerting.directory.accounts import reset_mfa

    settings = ctx.db()
    operator_id = _operator_id(name)
    with transaction() as session:
        uri = reset_mfa(session, operator_id, settings.secret_key(), _cli_actor())
    emit(as_json, {"username": name, "totp_uri": uri},
         f"{name}: the old authenticator no longer works; new TOTP enrolment URI (shown once): {uri}")


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

    from alerting.base.db import transaction
    from alerting.directory.accounts import create_token

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
    from alerting.base.db import transaction
    from alerting.directory.accounts import revoke_token

    ctx.db()
    with transaction() as session:
        revoke_token(session, token_id, _cli_actor())
    click.echo(f"token {token_id} revoked")
