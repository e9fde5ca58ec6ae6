"""`sirena templates list|show|history|create|edit|submit|approve|reject|retire`: the template library.

Every rule (the checks, the two approvers who did not write it, an edit back to draft) is in
alerting/alerts/templates.py; each command parses, opens one transaction and calls one service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx

as_option = click.option("--as", "username", required=True, help="The operator doing it (audited).")


@cli.group("templates")
def templates_group() -> None:
    """Pre-scripted message templates, approved by two operators who did not write them."""


def _human(view: dict[str, Any]) -> str:
    hints = ", ".join(f"{k.removesuffix('_hint')} {view[k]}" for k in ("priority_hint", "mode_hint") if view[k])
    lines = [f"{view['name']}  v{view['version']}  [{view['state']}]" + (f"  ({hints})" if hints else ""),
             *(f"  title {lang}: {title}" for lang, title in sorted(view["titles"].items())),
             *(f"  text {lang}: {body}" for lang, body in sorted(view["texts"].items()))]
    for p in view["placeholders"]:
        lines.append(f"  placeholder {{{p['name']}}}" + (f" (default: {p['default']})" if p.get("default") else
                                                         " (required)"))
    if view["approval_hash"]:
        lines.append(f"  approval hash: {view['approval_hash']}")
    lines.append(f"  approvals: {len(view['approvals'])}/{view['required_approvals']}"
                 + (f" ({', '.join(view['approvals'])})" if view["approvals"] else "")
                 + f"; authors: {', '.join(view['authors']) or 'none'}")
    if view["reason"]:
        lines.append(f"  reason: {view['reason']}")
    return "\n".join(lines)


def _actor(session: Any, username: str) -> Any:
    from alerting.directory.accounts import actor_of, get_operator

    return actor_of(get_operator(session, username), interface="cli")


@templates_group.command("list")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["draft", "pending_approval", "approved", "rejected", "retired"]),
              help="Only templates in this state (repeatable).")
@json_option
@pass_ctx
def templates_list(ctx: Context, states: tuple[str, ...], as_json: bool) -> None:
    """Templates by name, with their state and version."""
    from alerting.alerts import templates
    from alerting.base.db import transaction
    from alerting.base.models import TemplateState

    ctx.db()
    with transaction() as session:
        rows = [templates.summary(session, t) for t in
                templates.list_templates(session, states={TemplateState(s) for s in states} or None)]
    human = "\n".join(f"{r['name']:<24} v{r['version']:<3} {r['state']:<17} {r['titles'].get('es') or ''}"
                      for r in rows) or "no templates"
    emit(as_json, {"templates": rows}, human)


@templates_group.command("show")
@click.argument("template")
@json_option
@pass_ctx
def templates_show(ctx: Context, template: str, as_json: bool) -> None:
    """A template's words, placeholders, state, approval hash and approvals."""
    from alerting.alerts import templates
    from alerting.base.db import transaction

    ctx.db()
    with transaction() as session:
        view = templates.summary(session, templates.get_template(session, template))
    emit(as_json, view, _human(view))


@templates_group.command("history")
@click.argument("template")
@json_option
@pass_ctx
def templates_history(ctx: Context, template: str, as_json: bool) -> None:
    """Every version, newest first: who wrote it, when, who approved it."""
    from alerting.alerts import templates
    from alerting.base.db import transaction

    ctx.db()
    with transaction() as session:
        rows = [{"version": h.version, "written_by": h.written_by, "written_at": h.written_at,
                 "approved_at": h.approved_at, "approvers": h.approvers, "content_hash": h.content_hash,
                 **h.spec.material()} for h in templates.history(session, template)]
    human = "\n".join(f"v{r['version']}  {r['written_at']:%Y-%m-%d %H:%M}  by {r['written_by'] or 'the system'}"
                      + (f"  approved by {', '.join(r['approvers'])}" if r["approved_at"] else "")
                      for r in rows)
    emit(as_json, {"template": template, "versions": rows}, human)


def _spec_options(func: Any) -> Any:
    options = [
        click.option("--file", "spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="JSON with name, titles, texts, placeholders, priority_hint, mode_hint."),
        click.option("--title-es"), click.option("--title-en"),
        click.option("--text-es", help="Text in Spanish; declared placeholders written {name}."),
        click.option("--text-en", help="Text in English."),
        click.option("--placeholder", "placeholders", multiple=True, metavar="NAME[=DEFAULT]",
                     help="A declared placeholder, with its default after = (repeatable)."),
        click.option("--priority-hint", type=click.Choice(["flash", "high", "normal", "low", "none"])),
        click.option("--mode-hint", type=click.Choice(["live", "exercise", "test", "none"])),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _spec(base: dict[str, Any], spec_file: Path | None, given: dict[str, Any]) -> Any:
    """The spec: `base` (the current words, for edit), then the file, then each option given."""
    from alerting.alerts.templates import TemplateSpec
    from alerting.base.json_limits import parse_json

    data = dict(base)
    if spec_file is not None:
        loaded = parse_json(spec_file.read_bytes(), field="file", max_bytes=256 * 1024)
        if not isinstance(loaded, dict):
            raise click.BadParameter("expected a JSON object", param_hint="--file")
        data.update(loaded)
    for key in ("titles", "texts"):
        data[key] = dict(data.get(key) or {})
        for lang in ("es", "en"):
            value = given.get(f"{key[:-1]}_{lang}")
            if value is not None:
                data[key][lang] = value
    if given.get("placeholders"):
        data["placeholders"] = [{"name": p.split("=", 1)[0], "default": p.split("=", 1)[1] if "=" in p else None}
                                for p in given["placeholders"]]
    for key in ("priority_hint", "mode_hint"):
        if given.get(key) is not None:
            data[key] = None if given[key] == "none" else given[key]
    return TemplateSpec(name=str(data.get("name") or ""), titles=data["titles"], texts=data["texts"],
                        placeholders=list(data.get("placeholders") or []), priority_hint=data.get("priority_hint"),
                        mode_hint=data.get("mode_hint"))


@templates_group.command("create")
@click.argument("name")
@_spec_options
@as_option
@json_option
@pass_ctx
def templates_create(ctx: Context, name: str, spec_file: Path | None, username: str, as_json: bool,
                     **given: Any) -> None:
    """Write a new template (a draft). Example: --text-es "Ruta {ruta} cortada." --placeholder ruta"""
    from alerting.alerts import templates
    from alerting.base.db import transaction

    ctx.db()
    with transaction() as session:
        spec = _spec({"name": name}, spec_file, given)
        spec.name = name
        view = templates.summary(session, templates.create_template(session, spec, _actor(session, username)))
    emit(as_json, view, _human(view))


@templates_group.command("edit")
@click.argument("template")
@click.option("--name", "new_name", help="A new name.")
@_spec_options
@as_option
@json_option
@pass_ctx
def templates_edit(ctx: Context, template: str, new_name: str | None, spec_file: Path | None, username: str,
                   as_json: bool, **given: Any) -> None:
    """Save a new version: what is not given stays; it goes back to draft and needs two approvals again."""
    from alerting.alerts import templates
    from alerting.base.db import transaction

    ctx.db()
    with transaction() as session:
        current = templates.get_template(session, template)
        spec = _spec(templates.spec_of(current).material(), spec_file, given)
        if new_name:
            spec.name = new_name
        view = templates.summary(session, templates.update_template(session, current.id, spec,
                                                                    _actor(session, username)))
    emit(as_json, view, _human(view))


@templates_group.command("submit")
@click.argument("template")
@as_option
@json_option
@pass_ctx
def templates_submit(ctx: Context, template: str, username: str, as_json: bool) -> None:
    """Ask two approvers (who did not write it) to approve it; prints the approval hash they review."""
    _step(ctx, template, username, as_json, "submit")


@templates_group.command("approve")
@click.argument("template")
@click.option("--seen-hash", required=True, help="The approval hash `templates show` printed (what you reviewed).")
@as_option
@json_option
@pass_ctx
def templates_approve(ctx: Context, template: str, seen_hash: str, username: str, as_json: bool) -> None:
    """Approve the version you reviewed; the second approval makes it usable."""
    _step(ctx, template, username, as_json, "approve", seen_hash=seen_hash)


@templates_group.command("reject")
@click.argument("template")
@click.option("--reason", required=True)
@as_option
@json_option
@pass_ctx
def templates_reject(ctx: Context, template: str, reason: str, username: str, as_json: bool) -> None:
    """Send a pending template back to its authors with a reason."""
    _step(ctx, template, username, as_json, "reject", reason=reason)


@templates_group.command("retire")
@click.argument("template")
@click.option("--reason", required=True)
@as_option
@json_option
@pass_ctx
def templates_retire(ctx: Context, template: str, reason: str, username: str, as_json: bool) -> None:
    """Stop offering a template (editing it later brings it back as a draft)."""
    _step(ctx, template, username, as_json, "retire", reason=reason)


def _step(ctx: Context, template: str, username: str, as_json: bool, verb: str, **extra: str) -> None:
    from alerting.alerts import templates
    from alerting.base.db import transaction

    ctx.db()
    with transaction() as session:
        actor = _actor(session, username)
        if verb == "submit":
            row = templates.submit_template(session, template, actor)
        elif verb == "approve":
            row = templates.approve_template(session, template, actor, seen_hash=extra["seen_hash"])
        elif verb == "reject":
            row = templates.reject_template(session, template, actor, extra["reason"])
        else:
            row = templates.retire_template(session, template, actor, extra["reason"])
        view = templates.summary(session, row)
    emit(as_json, view, _human(view))
