"""`sirena webhooks add|list`: subscribers of signed event POSTs (see alerting/webhooks.py for the signature)."""

from __future__ import annotations

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.group("webhooks")
def webhooks_group() -> None:
    """Webhook subscribers and their delivery log."""


@webhooks_group.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--event", "events", multiple=True, required=True,
              help="alert.state_changed, reply.received or delivery.state_changed (repeatable).")
@click.option("--as", "username", required=True, help="The admin adding it (audited).")
@json_option
@pass_ctx
def webhooks_add(ctx: Context, name: str, url: str, events: tuple[str, ...], username: str, as_json: bool) -> None:
    """Subscribe URL to events; prints the signing secret once."""
    from alerting.base.db import transaction
    from alerting.directory.accounts import actor_of, get_operator
    from alerting.webhooks import create_subscriber

    ctx.db()
    with transaction() as session:
        row, secret = create_subscriber(session, name, url, list(events),
                                        actor_of(get_operator(session, username), interface="cli"))
    emit(as_json, {"id": row.id, "name": row.name, "url": row.url, "events": row.events, "secret": secret},
         f"subscriber {row.id} {row.name} → {row.url}\nsigning secret (shown once): {secret}")


@webhooks_group.command("list")
@json_option
@pass_ctx
def webhooks_list(ctx: Context, as_json: bool) -> None:
    """Subscribers with their delivered, pending and given-up counts."""
    from sqlalchemy import text

    from alerting.base.db import transaction

    ctx.db()
    with transaction() as session:
        rows = session.execute(text(
            "SELECT s.id, s.name, s.url, s.active, "
            "count(*) FILTER (WHERE d.state = 'delivered'), count(*) FILTER (WHERE d.state = 'pending'), "
            "count(*) FILTER (WHERE d.state = 'gave_up') FROM webhook_subscribers s "
            "LEFT JOIN webhook_deliveries d ON d.subscriber_id = s.id GROUP BY s.id ORDER BY s.id")).all()
    data = [{"id": r[0], "name": r[1], "url": r[2], "active": r[3], "delivered": r[4], "pending": r[5],
             "gave_up": r[6]} for r in rows]
    emit(as_json, {"subscribers": data}, "\n".join(
        f"{d['id']} {d['name']} {d['url']} delivered={d['delivered']} pending={d['pending']} gave_up={d['gave_up']}"
        for d in data) or "no subscribers")
