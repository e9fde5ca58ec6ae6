"""`sirena` entry point: loads the command modules and maps domain errors to exit codes.

| raised | exit |  NotFound 3 · InvalidInput 2 · InvalidTransition 4 · Refused 5 · anything else 1
"""

from __future__ import annotations

import importlib
import logging
import sys
import uuid

import click

from alerting.base.errors import Refused, SirenaError
from alerting.base.logs import configure_logging
from alerting.interfaces.cli.app import cli
from smsc_sim.errors import SimError

log = logging.getLogger("sirena.cli")

# Each module adds its commands to `cli` when imported.
_MODULES = [
    "alerting.interfaces.cli.setup_cmd",
    "alerting.interfaces.cli.smsc_sim",
    "alerting.interfaces.cli.segments",
    "alerting.interfaces.cli.users_cmd",
    "alerting.interfaces.cli.workers_cmd",
    "alerting.interfaces.cli.status_cmd",
    "alerting.interfaces.cli.demo_cmd",
    "alerting.interfaces.cli.contacts_cmd",
    "alerting.interfaces.cli.zones_cmd",
    "alerting.interfaces.cli.target_cmd",
    "alerting.interfaces.cli.web_cmd",
    "alerting.interfaces.cli.audit_cmd",
    "alerting.interfaces.cli.report_cmd",
    "alerting.interfaces.cli.send_test",
    "alerting.interfaces.cli.cap_cmd",
    "alerting.interfaces.cli.intake_cmd",
    "alerting.interfaces.cli.webhooks_cmd",
    "alerting.interfaces.cli.schedules_cmd",
    "alerting.interfaces.cli.secret_key_cmd",
    "alerting.interfaces.cli.templates_cmd",
    "alerting.interfaces.cli.compose_cmd",
    "alerting.interfaces.cli.areas_cmd",
    "alerting.interfaces.cli.registration_cmd",
]


def _load() -> click.Group:
    for name in _MODULES:
        importlib.import_module(name)
    return cli


def _audit_refusal(exc: Refused, argv: list[str]) -> None:
    """A refused command is audited like a refused click or API call (the command's own work rolled back)."""
    import getpass

    from audit.actor import Actor
    from audit.trail import audit_refusal

    words = [a for a in argv if not a.startswith("-")][:2]
    subject_type, subject_id = exc.details.get("subject_type"), exc.details.get("subject_id")
    audit_refusal(Actor(kind="system", name=f"cli:{getpass.getuser()}", interface="cli"), "cli." + ".".join(words),
                  subject_type if isinstance(subject_type, str) else None,
                  subject_id if isinstance(subject_id, int | str) else None, exc.message,
                  payload={"argv": argv[:20], "code": exc.code})


def main(argv: list[str] | None = None) -> None:
    """Run `sirena`; a SirenaError (or the simulator's SimError) → its message on stderr and its exit code."""
    configure_logging("WARNING")  # JSON lines (alerting/base/logs.py); commands raise the level from the settings
    group = _load()
    try:
        code = group.main(args=argv, prog_name="sirena", standalone_mode=False)
        if isinstance(code, int) and code:  # click returns the code of an Exit when not standalone
            sys.exit(code)
    except (SirenaError, SimError) as exc:
        if isinstance(exc, Refused):
            _audit_refusal(exc, argv if argv is not None else sys.argv[1:])
        click.echo(f"error: {exc.message}", err=True)
        fields = exc.details.get("fields")
        for field, reason in fields.items() if isinstance(fields, dict) else ():
            click.echo(f"  {field}: {reason}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception:
        error_id = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s", error_id)
        click.echo(f"error: internal error (error id {error_id}); see the log", err=True)
        sys.exit(1)
    finally:
        _seal_what_was_written()


def _seal_what_was_written() -> None:
    """A command that used the database seals the audit events it committed as it ends, so they
    get their link in the chain even when no web app, worker or scheduler runs. Never fails the
    command: a failure is logged and left to the next sealer."""
    from alerting.base import runtime
    from alerting.base.db import engine

    if runtime.settings() is None:
        return
    from audit.seal import seal_committed

    try:
        seal_committed(engine(), wait=False)
    except Exception as exc:
        log.warning("could not seal the audit trail as the command ended: %s", exc)
