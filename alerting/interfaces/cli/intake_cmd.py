"""`sirena intake smtp` (the e-mail intake service), allowlisted senders and the review queue."""

from __future__ import annotations

import signal
import threading

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.group("intake")
def intake_group() -> None:
    """Alerts by e-mail: the SMTP service, its allowed senders, and mail kept for review."""


@intake_group.command("smtp")
@pass_ctx
def intake_smtp(ctx: Context) -> None:
    """Run the SMTP intake service until interrupted (settings: SIRENA_INTAKE_*)."""
    from alerting.interfaces.intake.smtp import start

    settings = ctx.db()
    config = settings.intake
    controller = start(config, settings)
    click.echo(f"intake listening on {config.smtp_host}:{config.smtp_port} for {config.intake_address}; "
               f"replies via {config.relay_host}:{config.relay_port}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()


@intake_group.command("allow")
@click.argument("address")
@click.option("--user", "username", required=True, help="The operator (composer) the sender acts as.")
@json_option
@pass_ctx
def intake_allow(ctx: Context, address: str, username: str, as_json: bool) -> None:
    """Allow ADDRESS to e-mail alerts; prints its secret subject token once (a new one each time)."""
    from alerting.base.db import transaction
    from alerting.interfaces.intake.mailbox import add_sender
    from audit.actor import Actor

    ctx.db()
    with transaction() as session:
        token = add_sender(session, address, username, Actor(kind="operator", name="cli", interface="cli"))
    emit(as_json, {"address": address.lower(), "user": username, "token": token},
         f"{address.lower()} may send alerts as {username}.\nPut [{token}] in the subject. Shown once.")


@intake_group.command("review")
@json_option
@pass_ctx
def intake_review(ctx: Context, as_json: bool) -> None:
    """List refused and malformed mail and CAP documents not reviewed yet."""
    from alerting.base.db import transaction
    from alerting.interfaces.intake.review import pending_review

    ctx.db()
    with transaction() as session:
        rows = [{"id": r.id, "channel": r.channel, "sender": r.sender, "subject": r.subject, "outcome": r.outcome,
                 "reason": r.reason, "received_at": r.received_at.isoformat()} for r in pending_review(session)]
    emit(as_json, {"pending": rows},
         "\n".join(f"{r['id']} {r['received_at']} {r['channel']} {r['sender']} {r['outcome']}: {r['reason']}"
                   for r in rows) or "nothing to review")
