"""`sirena secret-key reencrypt`: after rotating the secret key, move what the old one encrypted."""

from __future__ import annotations

import sys

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.group("secret-key")
def secret_key_group() -> None:
    """The secret key (SIRENA_SECRET_KEY_FILE) and its rotation (runbooks/rotate-secrets.md)."""


@secret_key_group.command("reencrypt")
@json_option
@pass_ctx
def reencrypt_cmd(ctx: Context, as_json: bool) -> None:
    """Re-encrypt TOTP seeds and webhook secrets under the current key.

    Reads them with the current key or one in SIRENA_SECRET_KEY_PREVIOUS_FILES. Exit 1 if some
    cannot be read with any of them (listed).
    """
    import getpass

    from alerting.base.db import transaction
    from alerting.secret_keys import reencrypt_secrets
    from audit.actor import Actor

    settings = ctx.db()
    with transaction() as session:
        result = reencrypt_secrets(session, settings.secret_key(),
                                   Actor(kind="system", name=f"cli:{getpass.getuser()}", interface="cli"))
    lines = [f"{result['totp_seeds_reencrypted']} TOTP seed(s) and {result['webhook_secrets_reencrypted']} webhook "
             f"secret(s) re-encrypted under the current key ({result['previous_keys']} previous key(s) configured)"]
    lines += [f"unreadable with every key: operator {n} (re-enrol)" for n in result["unreadable_operators"]]
    lines += [f"unreadable with every key: subscriber {n} (add it again)" for n in result["unreadable_subscribers"]]
    emit(as_json, result, "\n".join(lines))
    if result["unreadable_operators"] or result["unreadable_subscribers"]:
        sys.exit(1)
