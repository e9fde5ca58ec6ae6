"""`sirena compose`: a draft alert from the command line, typed or from an approved template.

The same services as the console and the API: alerting/alerts/template_use.py fills the template,
alerting/alerts/lifecycle.py composes (an operator bounded to an area is held to it), and with
--submit the same lifecycle submits it; a different operator approves it.
"""

from __future__ import annotations

from typing import Any

import click

from alerting.alerts import drafts
from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


def _values(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f'"{pair}": expected NAME=VALUE', param_hint="--set")
        name, value = pair.split("=", 1)
        out[name.strip().lower()] = value
    return out


@cli.command("compose")
@click.option("--template", "template", help="An approved template (name or id) to start from.")
@click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE",
              help="A value for one of the template's placeholders (repeatable).")
@click.option("--text-es", help="Text in Spanish (instead of, or changing, the template's: then the "
                                "priority's approvals apply).")
@click.option("--text-en", help="Text in English.")
@click.option("--mode", required=True, type=click.Choice(["live", "exercise", "test"]),
              help="Never assumed: exercise and test reach only drill groups.")
@click.option("--priority", type=click.Choice(["flash", "high", "normal", "low"]),
              help="Default: the template's hint, else normal.")
@click.option("--sender", help="Sender name (default: the carriers file's default sender).")
@click.option("--zone", "zones", multiple=True, help="Zone to reach (repeatable).")
@click.option("--group", "groups", multiple=True, help="Group to reach (repeatable).")
@click.option("--title", default="", help="Default: the template's title.")
@click.option("--submit", is_flag=True, help="Submit it for approval at once.")
@click.option("--as", "username", required=True, help="The composer (audited; held to their area).")
@json_option
@pass_ctx
def compose(ctx: Context, template: str | None, pairs: tuple[str, ...], text_es: str | None, text_en: str | None,
            mode: str, priority: str | None, sender: str | None, zones: tuple[str, ...], groups: tuple[str, ...],
            title: str, submit: bool, username: str, as_json: bool) -> None:
    """Compose a draft alert; with --template, an approved template's words with its placeholders filled.

    Example: sirena compose --template cierre-ruta --set ruta=68 --mode live --zone "Comuna A" --as ana --submit
    """
    from alerting.alerts import lifecycle, template_use
    from alerting.base.db import transaction
    from alerting.base.errors import InvalidInput
    from alerting.base.models import AlertMode, Priority
    from alerting.directory.accounts import actor_of, get_operator
    from alerting.directory.senders import default_sender_name

    ctx.db()
    typed = {lang: t for lang, t in (("es", text_es), ("en", text_en)) if t is not None}
    if template is None and (pairs or not typed):
        raise InvalidInput("give --template (with --set for its placeholders) or --text-es/--text-en",
                           fields={"template": "or a text", "texts": "or a template"})
    with transaction() as session:
        actor = actor_of(get_operator(session, username), interface="cli")
        use = template_use.use_template(session, template, _values(pairs)) if template is not None else None
        extra: dict[str, Any] = {}
        if use is not None:
            extra = {"template_id": use.template_id, "template_version": use.version,
                     "template_values": use.values}
        draft = drafts.AlertDraft(
            texts={**(use.texts if use else {}), **typed}, mode=AlertMode(mode),
            sender_name=sender or default_sender_name(session) or "",
            priority=Priority(priority or (use.priority_hint if use else None) or "normal"),
            title=title or (use.title() if use else ""), target=_target(zones, groups), origin="cli", **extra)
        alert = lifecycle.compose(session, draft, actor)
        if submit:
            lifecycle.submit(session, alert.id, actor)
        view = {"id": alert.id, "reference": alert.reference, "state": alert.state.value, "mode": alert.mode.value,
                "priority": alert.priority.value, "texts": alert.texts, "target": alert.target,
                "template": use.name if use else None, "template_version": alert.template_version,
                "template_values": alert.template_values, "required_approvals": alert.required_approvals,
                "approval_hash": alert.approval_hash}
    human = (f"{view['reference']} {view['state']} ({view['mode']}, {view['priority']})"
             + (f" from template {view['template']} v{view['template_version']}" if use else "")
             + f"; approvals needed: {view['required_approvals']}")
    emit(as_json, view, human)


def _target(zones: tuple[str, ...], groups: tuple[str, ...]) -> dict[str, list[str]]:
    target = {}
    if zones:
        target["zones"] = list(dict.fromkeys(zones))
    if groups:
        target["groups"] = list(dict.fromkeys(groups))
    return target
