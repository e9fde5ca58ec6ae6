"""`sirena incidents open|add|remove|close|list` and `sirena report incident ID`: group an event's
alerts, and write its after-action report (HTML, CSV or JSON) with the signed trail inside."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

import click

from alerting.alerts import drafts
from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx
from audit.actor import Actor


def _actor(username: str | None) -> Actor:
    """The operator named by --as (their roles apply, and the trail names them), else this shell's user."""
    if username is None:
        return Actor(kind="system", name=f"cli:{getpass.getuser()}", interface="cli")
    from alerting.base.db import transaction
    from alerting.directory.accounts import actor_of, get_operator

    with transaction() as session:
        return actor_of(get_operator(session, username), interface="cli")


as_option = click.option("--as", "username", help="The operator doing it (default: this shell's user, as the system).")


@cli.group("incidents")
def incidents_group() -> None:
    """Incidents: the alerts, corrections and cancellations of one event, reviewed together."""


@incidents_group.command("open")
@click.argument("title")
@click.option("--description", default="", help="What happened, in a few words.")
@as_option
@json_option
@pass_ctx
def open_cmd(ctx: Context, title: str, description: str, username: str | None, as_json: bool) -> None:
    """Open an incident (audited); prints its reference (I-2026-000007)."""
    from alerting.alerts import incidents
    from alerting.base.db import transaction

    ctx.db()
    actor = _actor(username)
    with transaction() as session:
        incident = incidents.open_incident(session, title, actor, description=description)
    emit(as_json, {"id": incident.id, "reference": incident.reference, "title": incident.title},
         f"incident {incident.reference} opened: {incident.title}")


@incidents_group.command("add")
@click.argument("incident")
@click.argument("alert")
@as_option
@json_option
@pass_ctx
def add_cmd(ctx: Context, incident: str, alert: str, username: str | None, as_json: bool) -> None:
    """Put ALERT (reference or id), with its corrections, in INCIDENT (reference or id)."""
    from alerting.alerts import incidents
    from alerting.base.db import transaction

    ctx.db()
    actor = _actor(username)
    with transaction() as session:
        incident_id = incidents.incident_id_of(session, incident)
        alert_id = drafts.alert_id_of(session, alert)
        moved = incidents.add_to_incident(session, alert_id, incident_id, actor)
        reference = incidents.get_incident(session, incident_id).reference
    emit(as_json, {"incident": reference, "alert_ids": moved},
         f"{len(moved)} alert(s) added to {reference}" if moved else f"already in {reference}")


@incidents_group.command("remove")
@click.argument("alert")
@as_option
@json_option
@pass_ctx
def remove_cmd(ctx: Context, alert: str, username: str | None, as_json: bool) -> None:
    """Take ALERT, with its corrections, out of its incident."""
    from alerting.alerts import incidents
    from alerting.base.db import transaction

    ctx.db()
    actor = _actor(username)
    with transaction() as session:
        removed = incidents.remove_from_incident(session, drafts.alert_id_of(session, alert), actor)
    emit(as_json, {"alert_ids": removed}, f"{len(removed)} alert(s) taken out of their incident")


@incidents_group.command("close")
@click.argument("incident")
@click.option("--reopen", is_flag=True, help="Reopen a closed incident instead.")
@as_option
@json_option
@pass_ctx
def close_cmd(ctx: Context, incident: str, reopen: bool, username: str | None, as_json: bool) -> None:
    """Close INCIDENT: no alert joins it by hand any more (corrections of its alerts still do)."""
    from alerting.alerts import incidents
    from alerting.base.db import transaction

    ctx.db()
    actor = _actor(username)
    with transaction() as session:
        row = incidents.close_incident(session, incidents.incident_id_of(session, incident), actor, reopen=reopen)
    emit(as_json, {"reference": row.reference, "closed_at": row.closed_at},
         f"incident {row.reference} {'reopened' if reopen else 'closed'}")


@incidents_group.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only incidents still open.")
@json_option
@pass_ctx
def list_cmd(ctx: Context, open_only: bool, as_json: bool) -> None:
    """The latest incidents, newest first."""
    from alerting.alerts import incidents
    from alerting.base.db import transaction

    ctx.db()
    with transaction() as session:
        rows = incidents.list_incidents(session, open_only=open_only)
    items = [{"id": r.id, "reference": r.reference, "title": r.title, "alerts": r.alerts,
              "opened_at": r.created_at, "closed_at": r.closed_at} for r in rows]
    emit(as_json, {"incidents": items},
         "\n".join(f"{r.reference}  {r.alerts:>3} alert(s)  {'closed' if r.closed_at else 'open  '}  {r.title}"
                   for r in rows) or "no incidents")


@cli.group("report")
def report_group() -> None:
    """Reports: an incident's after-action report."""


@report_group.command("incident")
@click.argument("incident")
@click.option("--format", "fmt", type=click.Choice(["html", "csv", "json"]), default="html", show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE (default: standard output).")
@click.option("--lang", type=click.Choice(["es", "en"]), default="es", show_default=True,
              help="The language of the HTML report.")
@json_option
@pass_ctx
def report_incident_cmd(ctx: Context, incident: str, fmt: str, out: Path | None, lang: str, as_json: bool) -> None:
    """Write INCIDENT's after-action report (reference or id): delivery and answer curves, times to
    50/90/99 % delivered per carrier and zone, HELPs, non-responders, operator actions, and the
    incident's part of the audit trail, signed (check it with `sirena audit verify --export FILE`).

    HTML is one self-contained file (charts included, nothing fetched); CSV is the figures table;
    JSON is everything. The export is itself audited (incident.report_exported) before it is made.
    """
    from alerting.alerts import incidents
    from alerting.base.db import transaction
    from alerting.interfaces.web import incident_report
    from alerting.interfaces.web.app import create_app

    settings = ctx.db()
    with transaction() as session:
        incident_id = incidents.incident_id_of(session, incident, field="INCIDENT")
    actor = _actor(None)
    app = create_app(settings, configure_services=False)  # the console's templates and words
    with app.app_context():
        made = incident_report.make(incident_id, actor, fmt, str(out) if out else "stdout", settings, lang=lang,
                                    name=out.name if out else None)
    if out is None:
        sys.stdout.write(made.body)
        return
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(made.body, encoding="utf-8", newline="")
    os.replace(tmp, out)
    emit(as_json, _summary(made, out, fmt), f"after-action report of {made.report.incident['reference']} "
                                            f"written to {out} ({fmt}, {made.report.elapsed_s:.2f} s); "
                                            f"check it: {made.report.verification['command']}"
         if made.report.verification else f"written to {out}")


def _summary(made: Any, out: Path, fmt: str) -> dict[str, Any]:
    rep = made.report
    whole = rep.figure(None) or {}
    verification = rep.verification or {}
    return {"file": str(out), "format": fmt, "incident": rep.incident["reference"],
            "alerts": [a["reference"] for a in rep.alerts],
            **{k: whole.get(k) for k in ("recipients", "sent", "delivered", "failed", "answered", "t50_s", "t90_s",
                                         "t99_s", "ack_t50_s", "ack_t90_s")},
            "people_never_answered": rep.silent_people, "helps": rep.help_summary["helps"],
            "helps_open": rep.help_summary["open"], "head_seq": verification.get("head_seq"),
            "head_hash": verification.get("head_hash"), "audit_events": verification.get("events"),
            "events_digest": verification.get("events_digest"), "signed": verification.get("signed"),
            "verify_command": verification.get("command"), "elapsed_s": rep.elapsed_s}
