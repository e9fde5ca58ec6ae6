"""`sirena cap import FILE` and `sirena cap export ALERT_ID`: CAP 1.2 in and out."""

from __future__ import annotations

from pathlib import Path

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.group("cap")
def cap_group() -> None:
    """CAP 1.2 alerts in and out (the OASIS schema is checked both ways)."""


@cap_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as", "username", required=True, help="The composer the draft is composed by.")
@click.option("--incident", help="Put the alert in this incident (reference I-2026-000007 or id).")
@json_option
@pass_ctx
def cap_import_cmd(ctx: Context, file: Path, username: str, incident: str | None, as_json: bool) -> None:
    """Import a CAP 1.2 file as an alert pending approval (never a send).

    Update and Cancel messages become a correction or a cancel notice of the alert they reference;
    Test and Exercise never become live. A refused file is kept for review.
    """
    from alerting.alerts import incidents
    from alerting.base.db import transaction
    from alerting.base.errors import SirenaError
    from alerting.directory.accounts import actor_of, get_operator
    from alerting.interfaces.intake.cap_import import import_cap
    from alerting.interfaces.intake.review import keep_for_review, record

    config = ctx.db().intake
    data = file.read_bytes()
    try:
        with transaction() as session:
            actor = actor_of(get_operator(session, username), interface="cli")
            result = import_cap(session, data, actor=actor, config=config)
            if incident is not None and result.alert_id is not None:  # in the same transaction as the draft
                incidents.add_to_incident(session, result.alert_id,
                                          incidents.incident_id_of(session, incident, field="--incident"), actor)
            record(session, "cap-file", sender=username, subject=file.name, raw=data,
                   outcome="duplicate" if result.action == "duplicate" else "draft_created", alert_id=result.alert_id)
    except SirenaError as exc:
        keep_for_review("cap-file", sender=username, subject=file.name, raw=data, outcome="refused",
                        reason=exc.message)
        raise
    lines = [f"{result.action}: {result.reference or '-'} ({result.mode or '-'}, {result.state or '-'})"]
    lines += [f"zone: {z}" for z in result.zones] + [f"warning: {w}" for w in result.warnings]
    if result.signed_by:
        lines.append(f"signature verified: {result.signed_by}")
    emit(as_json, result.as_dict(), "\n".join(lines))


@cap_group.command("export")
@click.argument("alert_id", type=int)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout.")
@pass_ctx
def cap_export_cmd(ctx: Context, alert_id: int, out: Path | None) -> None:
    """Print an alert as a CAP 1.2 document (schema-validated)."""
    from alerting.base.db import transaction
    from alerting.interfaces.intake.cap_export import export_alert

    config = ctx.db().intake
    with transaction() as session:
        data = export_alert(session, alert_id, config)
    if out is None:
        click.echo(data.decode())
    else:
        out.write_bytes(data)
        click.echo(f"wrote {out} ({len(data)} bytes)", err=True)


@cap_group.command("poll")
@click.argument("url")
@click.option("--as", "username", required=True, help="The composer the drafts are composed by.")
@click.option("--every", "every_s", type=float, default=0.0, help="Poll again every N seconds (0: once).")
@json_option
@pass_ctx
def cap_poll_cmd(ctx: Context, url: str, username: str, every_s: float, as_json: bool) -> None:
    """Import new CAP alerts from an Atom/RSS feed (each one pending approval).

    With --every, SIGTERM or SIGINT stops it after the poll in progress (exit 0)."""
    import signal
    import threading

    from alerting.base.db import transaction
    from alerting.directory.accounts import actor_of, get_operator
    from alerting.interfaces.intake.cap_feed import poll_feed

    config = ctx.db().intake
    with transaction() as session:
        actor = actor_of(get_operator(session, username), interface="cap")
    stop = threading.Event()
    if every_s > 0:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    while True:
        report = poll_feed(url, actor=actor, config=config)
        emit(as_json, {"seen": report.seen, "imported": report.imported, "duplicates": report.duplicates,
                       "refused": report.refused},
             f"{report.seen} entries; imported {', '.join(report.imported) or 'none'}; "
             f"{report.duplicates} already known; {len(report.refused)} refused (kept for review)")
        if every_s <= 0 or stop.wait(every_s):
            return
