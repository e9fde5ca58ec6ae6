"""`sirena audit verify|checkpoint|export`: check the trail, record its head outside, export a timeline."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from alerting.base.errors import ConfigError, InvalidInput
from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx
from audit.actor import Actor

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _cli_actor() -> Actor:
    import getpass

    return Actor(kind="system", name=f"cli:{getpass.getuser()}", interface="cli")


@cli.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail: verify it, checkpoint its head, export timelines."""


@audit_group.command("verify")
@click.option("--export", "export_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Check an export file instead of the trail.")
@click.option("--offline", is_flag=True, help="With --export: check the file alone, without the database.")
@json_option
@pass_ctx
def verify_cmd(ctx: Context, export_file: Path | None, offline: bool, as_json: bool) -> None:
    """Recompute the whole chain and check it against the checkpoints.

    Exit 0 with the count and head hash; exit 1 naming the first bad event and what is wrong.
    """
    from alerting.base.db import engine
    from audit.checkpoints import previous_signing_keys, signing_key
    from audit.export import verify_export
    from audit.verify import verify_chain

    settings = ctx.settings if export_file and offline else ctx.db()
    note = None
    if export_file:
        try:
            key: bytes | None = signing_key(settings)
            previous = previous_signing_keys(settings)
        except ConfigError:
            key, previous, note = None, (), "signature not checked: no secret key on this machine"
        verdict = verify_export(export_file, engine=None if offline else engine(), key=key, previous_keys=previous)
        subject = f"export {export_file}"
    else:
        verdict = verify_chain(engine(), settings)
        subject = "audit trail"
    data = verdict.as_dict()
    if export_file:
        data["export"] = str(export_file)
        data["signature_checked"] = note is None
    first = verdict.first
    warnings = "".join(f"\nwarning: {w}" for w in data.get("warnings") or [])
    if first is None:
        human = (f"{subject} OK: {verdict.count} events, head seq {verdict.head.seq} "
                 f"hash {verdict.head.hash_hex}, {verdict.checkpoints} checkpoints checked "
                 f"({verdict.elapsed_s:.2f} s)" + (f"; {note}" if note else "") + warnings)
        emit(as_json, data, human)
        return
    lines = [f"{subject} FAILED: {len(verdict.problems)}{'+' if verdict.more_problems else ''} problem(s)",
             *(f"  {p.kind}: {p.message}" for p in verdict.problems[:20])]
    emit(as_json, data, "\n".join(lines))
    where = f"event {first.seq}" if first.seq is not None else "checkpoints"
    click.echo(f"error: {subject}: first bad {where}: {first.kind}: {first.message}", err=True)
    # sys.exit, not click's Exit: main() runs click with standalone_mode=False, which returns
    # Exit's code instead of exiting with it.
    sys.exit(1)


@audit_group.command("checkpoint")
@json_option
@pass_ctx
def checkpoint_cmd(ctx: Context, as_json: bool) -> None:
    """Write a signed checkpoint of the chain's head now (to SIRENA_AUDIT_CHECKPOINT_DIR)."""
    from alerting.base.db import engine
    from audit.checkpoints import checkpoint_file, write_checkpoint

    settings = ctx.db()
    cp = write_checkpoint(engine(), settings)
    path = checkpoint_file(settings, cp.database)
    emit(as_json, {**cp.body(), "file": str(path)},
         f"checkpoint written: seq {cp.seq} hash {cp.hash_hex} → {path}")


def _when(settings_tz: str, raw: str | None, option: str) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{option}: expected an ISO 8601 time such as 2026-11-27T14:00, got {raw!r}",
                           fields={option: "expected an ISO 8601 time"}) from None
    # A time without offset is the operators' local time (SIRENA_TIMEZONE), as shown in the console.
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(settings_tz))


@audit_group.command("export")
@click.option("--alert", "alert_ref", help="The alert whose timeline to export (with its corrections): its "
                                            "reference (A-2026-000001) or id.")
@click.option("--since", help="From this time (ISO 8601; without offset: SIRENA_TIMEZONE).")
@click.option("--until", help="Up to (not including) this time.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="json", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: standard output).")
@json_option
@pass_ctx
def export_cmd(ctx: Context, alert_ref: str | None, since: str | None, until: str | None, fmt: str,
               output: Path | None, as_json: bool) -> None:
    """Export an incident timeline, or a time range, with hashes (check it with `audit verify --export`).

    The export is itself audited (action audit.exported) before it is written.
    """
    from alerting.alerts.drafts import alert_id_of
    from alerting.base.db import engine, transaction
    from audit.checkpoints import signing_key
    from audit.export import Scope, record_export, write_export
    from audit.seal import seal_committed

    settings = ctx.db()
    if alert_ref is None and since is None and until is None:
        raise InvalidInput("say what to export: --alert A-2026-000001 (or its id) and/or --since/--until",
                           fields={"--alert": "required unless --since or --until is given"})
    scope = Scope(since=_when(settings.timezone, since, "--since"), until=_when(settings.timezone, until, "--until"))
    key = signing_key(settings)
    alert_id = None
    with transaction() as session:
        if alert_ref is not None:
            alert_id = alert_id_of(session, alert_ref, field="--alert")
            ids = _with_corrections(session, alert_id)
            scope = Scope(alert_ids=ids, since=scope.since, until=scope.until)
        record_export(session, _cli_actor(), scope, fmt, str(output) if output else "stdout", alert_id=alert_id)
    seal_committed(engine())  # only sealed events have their place in the chain, and are exported
    with transaction() as session:
        if output is None:
            summary = write_export(session, scope, fmt, sys.stdout, key=key)
            return
        tmp = output.with_name(output.name + ".part")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            summary = write_export(session, scope, fmt, fh, key=key)
        os.replace(tmp, output)
    emit(as_json, {"file": str(output), "format": fmt, "count": summary.count, "scope": scope.as_dict(),
                   "head_seq": summary.head.seq, "head_hash": summary.head.hash_hex},
         f"exported {summary.count} events to {output} ({fmt})")


def _with_corrections(session: Session, alert_id: int) -> tuple[int, ...]:
    """The alert and every alert correcting it, transitively: one incident's timeline."""
    from sqlalchemy import select

    from alerting.base.models import Alert

    ids, frontier = [alert_id], [alert_id]
    while frontier:
        found = session.execute(select(Alert.id).where(Alert.corrects_alert_id.in_(frontier))).scalars().all()
        frontier = [i for i in found if i not in ids]
        ids.extend(frontier)
    return tuple(ids)
