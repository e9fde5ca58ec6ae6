"""The library of message templates, and their two-person approval.

A template is a pre-scripted SMS per language (es, en) with a title per language, declared
placeholders (`{lugar}`, each with an optional default; filled once per alert when composing)
and hints for the priority and mode compose preselects. Per-recipient placeholders keep working
as in any alert text (`{codigo}`, `{nombre|vecino}`).

It is approved like a flash alert (FIELD.md requirements 1 and 10): two operators other than its
authors (whoever created, edited or submitted any version) approve it, each bound to the approval
hash they reviewed, which covers the name, titles, texts, placeholders and hints. Any edit makes a
new version, sends the template back to draft and voids the approvals (they covered the old
words). draft → pending_approval → approved; rejected (with a reason) and retired (no longer
offered) are left by editing. Every step is audited; every version is kept for the history page.

What an approved template is good for (compose starts from it; the one-approver rule) is in
alerting/alerts/template_use.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.base import runtime
from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, InvalidTransition, NotFound, Refused, TwoPersonRuleViolated
from alerting.base.models import (
    AlertMode,
    MessageTemplate,
    Operator,
    Priority,
    TemplateApproval,
    TemplateAuthor,
    TemplateState,
    TemplateVersion,
)
from alerting.base.sms_text.rendering import ALERT_FIELDS, PLACEHOLDER, check_placeholders
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor

T = TemplateState
LANGUAGES = ("es", "en")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PLACEHOLDER_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")
RESERVED = ALERT_FIELDS | {"nombre", "name"}  # filled per alert or per recipient by the system
MAX_TITLE = 100
MAX_TEXT = 2000  # a pre-scripted text; about 13 SMS parts at most
MAX_VALUE = 160  # one placeholder's value ("Sector Norte", "18:00")
MAX_PLACEHOLDERS = 20
APPROVALS = 2  # like a flash alert: two people other than its authors (more if SIRENA_APPROVALS asks it of flash)
EDITABLE = frozenset({T.DRAFT, T.PENDING_APPROVAL, T.REJECTED, T.APPROVED, T.RETIRED})


@dataclass
class TemplateSpec:
    """What an author writes, from any interface. Checked by `check_spec`."""

    name: str
    titles: dict[str, str]
    texts: dict[str, str]
    placeholders: list[dict[str, Any]] = field(default_factory=list)
    priority_hint: str | None = None
    mode_hint: str | None = None

    def material(self) -> dict[str, Any]:
        return {"name": self.name, "titles": self.titles, "texts": self.texts, "placeholders": self.placeholders,
                "priority_hint": self.priority_hint, "mode_hint": self.mode_hint}


def content_hash(spec: TemplateSpec) -> str:
    """SHA-256 over everything an approver approves: name, titles, texts, placeholders, hints.
    (Migration 0029 seeds with the same computation; tests/alerting/test_templates.py checks it.)"""
    return hashlib.sha256(json.dumps(spec.material(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def spec_of(template: MessageTemplate | TemplateVersion) -> TemplateSpec:
    return TemplateSpec(name=template.name, titles=dict(template.titles), texts=dict(template.texts),
                        placeholders=[dict(p) for p in template.placeholders or []],
                        priority_hint=template.priority_hint, mode_hint=template.mode_hint)


def _per_language(values: Any, key: str, limit: int, problems: dict[str, str]) -> dict[str, str]:
    if not isinstance(values, dict):
        problems[key] = "expected an object of language (es, en) → text"
        return {}
    out = {}
    for lang, value in values.items():
        if lang not in LANGUAGES:
            problems[f"{key}.{lang}"] = "language must be es or en"
        elif not isinstance(value, str):
            problems[f"{key}.{lang}"] = "expected a text"
        elif value.strip():
            if len(value.strip()) > limit:
                problems[f"{key}.{lang}"] = f"longer than {limit} characters"
            out[lang] = value.strip()
    if not out:
        problems.setdefault(key, "at least one language needs one")
    return out


def _placeholders(raw: Any, problems: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or len(raw) > MAX_PLACEHOLDERS:
        problems["placeholders"] = f"expected a list of at most {MAX_PLACEHOLDERS} {{name, default}}"
        return []
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        where = f"placeholders[{i}]"
        if not isinstance(item, dict):
            problems[where] = "expected {name, default}"
            continue
        name = str(item.get("name") or "").strip().lower()
        default = item.get("default")
        default = default.strip() if isinstance(default, str) and default.strip() else None
        if not PLACEHOLDER_NAME.match(name):
            problems[f"{where}.name"] = "1–32 lower-case letters, digits or _, starting with a letter"
        elif name in RESERVED:
            problems[f"{where}.name"] = f"{{{name}}} is filled by the system; choose another name"
        elif any(p["name"] == name for p in out):
            problems[f"{where}.name"] = f"{{{name}}} is declared twice"
        if default is not None:
            problems.update(_value_problem(f"{where}.default", default))
        out.append({"name": name, "default": default})
    return out


def _value_problem(where: str, value: str) -> dict[str, str]:
    if len(value) > MAX_VALUE:
        return {where: f"longer than {MAX_VALUE} characters"}
    if "{" in value or "}" in value or "\n" in value:
        return {where: "cannot hold { } or a line break"}
    return {}


def check_spec(session: Session, spec: TemplateSpec, *, template_id: int | None = None) -> TemplateSpec:
    """The spec, tidied (texts stripped, names lower-case); InvalidInput naming every bad field.

    Each declared placeholder must appear as `{name}` in a text (its default belongs in the
    declaration, not after a bar); every other placeholder is the system's (`{codigo}`) or a
    contact's, which needs a default (`{nombre|vecino}`), as in any alert text.
    """
    problems: dict[str, str] = {}
    name = (spec.name or "").strip().lower()
    if not NAME.match(name):
        problems["name"] = "1–64 lower-case letters, digits, - or _ (e.g. evacuate, corte-agua)"
    elif session.scalar(select(MessageTemplate.id).where(MessageTemplate.name == name,
                                                          MessageTemplate.id != (template_id or 0))):
        problems["name"] = f'a template named "{name}" exists already'
    titles = _per_language(spec.titles, "titles", MAX_TITLE, problems)
    texts = _per_language(spec.texts, "texts", MAX_TEXT, problems)
    placeholders = _placeholders(spec.placeholders, problems)
    priority = (spec.priority_hint or "").strip() or None
    if priority is not None and priority not in {p.value for p in Priority}:
        problems["priority_hint"] = "flash, high, normal or low (or none)"
    mode = (spec.mode_hint or "").strip() or None
    if mode is not None and mode not in {m.value for m in AlertMode}:
        problems["mode_hint"] = "live, exercise or test (or none)"
    if not problems:
        _check_texts(texts, placeholders, problems)
    if problems:
        raise InvalidInput("the template cannot be saved as given", fields=problems)
    return TemplateSpec(name, titles, texts, placeholders, priority, mode)


def _check_texts(texts: dict[str, str], placeholders: list[dict[str, Any]], problems: dict[str, str]) -> None:
    declared = {p["name"] for p in placeholders}
    used: set[str] = set()
    for lang, body in texts.items():
        for match in PLACEHOLDER.finditer(body):
            name = match.group(1).lower()
            if name in declared:
                used.add(name)
                if match.group(2) is not None:
                    problems[f"texts.{lang}"] = f"write {{{name}}}: its default goes in the declaration"
    for i, p in enumerate(placeholders):
        if p["name"] not in used:
            problems[f"placeholders[{i}].name"] = f"{{{p['name']}}} is declared but no text uses it"
    if problems:
        return
    sample = {lang: PLACEHOLDER.sub(lambda m: "x" if m.group(1).lower() in declared else m.group(0), body)
              for lang, body in texts.items()}
    try:
        check_placeholders(sample)
    except InvalidInput as exc:
        problems.update({str(k): str(v) for k, v in dict(exc.details.get("fields") or {}).items()})  # type: ignore[call-overload]


def approvals_required() -> int:
    """Approvals a template needs: as many as a live flash alert (SIRENA_APPROVALS), never below two."""
    settings = runtime.settings()
    return max(APPROVALS, settings.required_approvals(Priority.FLASH.value) if settings is not None else APPROVALS)


def get_template(session: Session, ref: int | str, *, lock: bool = False) -> MessageTemplate:
    """A template by id (42, "42") or name ("evacuate"). Raises NotFound naming `template`."""
    raw = str(ref).strip()
    query = select(MessageTemplate)
    query = query.where(MessageTemplate.id == int(raw)) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else \
        query.where(MessageTemplate.name == raw.lower())
    template = session.scalar(query.with_for_update() if lock else query)
    if template is None:
        raise NotFound(f'template "{raw}" does not exist', fields={"template": f'no template "{raw}"'})
    return template


def list_templates(session: Session, *, states: set[TemplateState] | None = None) -> list[MessageTemplate]:
    """Templates by name, optionally only those in `states`."""
    query = select(MessageTemplate).order_by(MessageTemplate.name)
    if states:
        query = query.where(MessageTemplate.state.in_(sorted(states)))
    return list(session.scalars(query))


def _record_author(session: Session, template_id: int, actor: Actor, role: str) -> None:
    if actor.operator_id is None:
        return
    session.execute(pg_insert(TemplateAuthor).values(template_id=template_id, operator_id=actor.operator_id,
                                                     role=role).on_conflict_do_nothing())


def authors_of(session: Session, template_id: int) -> set[int]:
    """Operator ids of everyone who created, edited or submitted any version."""
    return set(session.scalars(select(TemplateAuthor.operator_id).where(TemplateAuthor.template_id == template_id)))


def _write_version(session: Session, template: MessageTemplate, spec: TemplateSpec, actor: Actor) -> None:
    session.add(TemplateVersion(template_id=template.id, version=template.version, content_hash=content_hash(spec),
                                written_by_id=actor.operator_id, **spec.material()))


def create_template(session: Session, spec: TemplateSpec, author: Actor) -> MessageTemplate:
    """A new template, as a draft (version 1). Raises Refused (role), InvalidInput by field."""
    permissions.require(author, "templates.write", "write templates")
    spec = check_spec(session, spec)
    template = MessageTemplate(state=T.DRAFT, version=1, created_by_id=author.operator_id,
                               required_approvals=approvals_required(), **spec.material())
    session.add(template)
    session.flush()
    _write_version(session, template, spec, author)
    _record_author(session, template.id, author, "composer")
    trail.append(session, actor=author, action="template.created", subject_type="template", subject_id=template.id,
                 payload={"version": 1, "content_hash": content_hash(spec), **spec.material()})
    return template


def update_template(session: Session, ref: int | str, spec: TemplateSpec, editor: Actor) -> MessageTemplate:
    """Save a new version. Whatever its state, it goes back to draft and its approvals are void;
    the editor becomes an author (never an approver of it). Saving the same words changes nothing."""
    permissions.require(editor, "templates.write", "write templates")
    template = get_template(session, ref, lock=True)
    spec = check_spec(session, spec, template_id=template.id)
    before = spec_of(template)
    if content_hash(spec) == content_hash(before):
        return template
    template.version += 1
    for key, value in spec.material().items():
        setattr(template, key, value)
    template.state, template.approval_hash, template.reason = T.DRAFT, None, None
    template.approved_at, template.submitted_at, template.updated_at = None, None, utcnow()
    session.flush()
    _write_version(session, template, spec, editor)
    _record_author(session, template.id, editor, "editor")
    trail.append(session, actor=editor, action="template.edited", subject_type="template", subject_id=template.id,
                 payload={"version": template.version, "before": before.material(), "after": spec.material(),
                          "content_hash": content_hash(spec)})
    return template


def submit_template(session: Session, ref: int | str, submitter: Actor) -> MessageTemplate:
    """Ask for the two approvals: draft or rejected → pending_approval, fixing the approval hash."""
    permissions.require(submitter, "templates.write", "submit templates")
    template = get_template(session, ref, lock=True)
    if template.state not in (T.DRAFT, T.REJECTED):
        raise InvalidTransition(f'template "{template.name}" is {template.state.value}; only a draft or a rejected '
                                "template can be submitted", template_id=template.id)
    template.state, template.submitted_at, template.updated_at = T.PENDING_APPROVAL, utcnow(), utcnow()
    template.required_approvals = approvals_required()  # fixed at submission, as for an alert
    template.approval_hash, template.reason = content_hash(spec_of(template)), None
    _record_author(session, template.id, submitter, "submitter")
    trail.append(session, actor=submitter, action="template.submitted", subject_type="template",
                 subject_id=template.id, payload={"version": template.version, "approval_hash": template.approval_hash})
    return template


def approvals_of(session: Session, template: MessageTemplate) -> list[TemplateApproval]:
    """The approvals of the template's current version, oldest first."""
    return list(session.scalars(select(TemplateApproval).where(
        TemplateApproval.template_id == template.id, TemplateApproval.version == template.version)
        .order_by(TemplateApproval.id)))


def approve_template(session: Session, ref: int | str, approver: Actor, *, seen_hash: str | None) -> MessageTemplate:
    """One approval of the pending version; with two, the template is approved.

    `seen_hash` is the approval hash of the version the approver reviewed (InvalidInput when
    missing; Refused when the template changed since). No author approves it, nobody approves the
    same version twice (TwoPersonRuleViolated). Raises NotFound, InvalidTransition, Refused (role).
    Locks the template: two approvers clicking together give two approvals, one transition.
    """
    if not seen_hash or not str(seen_hash).strip():
        raise InvalidInput("seen_hash: required: the approval_hash of the version you reviewed",
                           fields={"seen_hash": "required: the approval_hash of the version you reviewed"})
    template = get_template(session, ref, lock=True)
    if template.state is not T.PENDING_APPROVAL:
        raise InvalidTransition(f'template "{template.name}" is {template.state.value}, not pending approval',
                                template_id=template.id)
    if approver.operator_id is not None and approver.operator_id in authors_of(session, template.id):
        raise TwoPersonRuleViolated(f'{approver.name} wrote or submitted template "{template.name}"; an author '
                                    "cannot approve it", template_id=template.id, subject_type="template",
                                    subject_id=template.id)
    permissions.require(approver, "templates.approve", "approve templates")
    if approver.operator_id is None:
        raise Refused("only an operator (or a token acting as one) can approve a template", template_id=template.id)
    current = content_hash(spec_of(template))
    if current != template.approval_hash or str(seen_hash).strip() != current:
        raise Refused(f'template "{template.name}" changed since it was shown; review it again',
                      template_id=template.id, subject_type="template", subject_id=template.id)
    done = approvals_of(session, template)
    if any(a.operator_id == approver.operator_id for a in done):
        raise TwoPersonRuleViolated(f'you already approved template "{template.name}"; another approver is needed',
                                    template_id=template.id, subject_type="template", subject_id=template.id)
    session.add(TemplateApproval(template_id=template.id, version=template.version, operator_id=approver.operator_id,
                                 approval_hash=current))
    count = len(done) + 1
    trail.append(session, actor=approver, action="template.approved", subject_type="template", subject_id=template.id,
                 payload={"version": template.version, "approval_hash": current, "approvals": count,
                          "required": template.required_approvals})
    if count >= template.required_approvals:
        now = utcnow()
        template.state, template.approved_at, template.updated_at = T.APPROVED, now, now
        session.execute(update(TemplateVersion).where(
            TemplateVersion.template_id == template.id, TemplateVersion.version == template.version)
            .values(approved_at=now))
    session.flush()
    return template


def reject_template(session: Session, ref: int | str, approver: Actor, reason: str) -> MessageTemplate:
    """Send a pending template back with a reason; its authors may revise it."""
    if not reason or not reason.strip():
        raise InvalidInput("a rejection needs a reason", fields={"reason": "required"})
    permissions.require(approver, "templates.approve", "reject templates")
    template = get_template(session, ref, lock=True)
    if template.state is not T.PENDING_APPROVAL:
        raise InvalidTransition(f'template "{template.name}" is {template.state.value}, not pending approval',
                                template_id=template.id)
    template.state, template.reason, template.updated_at = T.REJECTED, reason.strip()[:2000], utcnow()
    trail.append(session, actor=approver, action="template.rejected", subject_type="template",
                 subject_id=template.id, payload={"version": template.version}, reason=template.reason)
    return template


def retire_template(session: Session, ref: int | str, actor: Actor, reason: str) -> MessageTemplate:
    """Stop offering a template (alerts already built from it are not changed, but no longer earn
    the one-approver rule). Editing it later brings it back as a draft."""
    if not reason or not reason.strip():
        raise InvalidInput("retiring a template needs a reason", fields={"reason": "required"})
    permissions.require(actor, "templates.write", "retire templates")
    template = get_template(session, ref, lock=True)
    if template.state is T.RETIRED:
        raise InvalidTransition(f'template "{template.name}" is retired already', template_id=template.id)
    before = template.state.value
    template.state, template.reason, template.updated_at = T.RETIRED, reason.strip()[:2000], utcnow()
    trail.append(session, actor=actor, action="template.retired", subject_type="template", subject_id=template.id,
                 payload={"version": template.version, "before": before}, reason=template.reason)
    return template


@dataclass
class HistoryEntry:
    version: int
    spec: TemplateSpec
    content_hash: str
    written_by: str | None
    written_at: Any
    approved_at: Any
    approvers: list[str]


def history(session: Session, ref: int | str) -> list[HistoryEntry]:
    """Every version, newest first: its words, who wrote it and when, who approved it."""
    template = get_template(session, ref)
    names = dict(session.execute(select(Operator.id, Operator.username)).all())
    approvers: dict[int, list[str]] = {}
    for version, operator_id in session.execute(
            select(TemplateApproval.version, TemplateApproval.operator_id)
            .where(TemplateApproval.template_id == template.id).order_by(TemplateApproval.id)):
        approvers.setdefault(version, []).append(names.get(operator_id, str(operator_id)))
    rows = session.scalars(select(TemplateVersion).where(TemplateVersion.template_id == template.id)
                           .order_by(TemplateVersion.version.desc()))
    return [HistoryEntry(v.version, spec_of(v), v.content_hash, names.get(v.written_by_id) if v.written_by_id else None,
                         v.written_at, v.approved_at, approvers.get(v.version, [])) for v in rows]


def summary(session: Session, template: MessageTemplate) -> dict[str, Any]:
    """A template as the API and the CLI show it: its words, its state, who wrote and approved it."""
    names = dict(session.execute(select(Operator.id, Operator.username)).all())
    return {
        "id": template.id, "name": template.name, "titles": template.titles, "texts": template.texts,
        "placeholders": template.placeholders or [], "priority_hint": template.priority_hint,
        "mode_hint": template.mode_hint, "state": template.state.value, "version": template.version,
        "approval_hash": template.approval_hash, "required_approvals": template.required_approvals,
        "approvals": [names.get(a.operator_id, str(a.operator_id)) for a in approvals_of(session, template)],
        "authors": sorted(names.get(i, str(i)) for i in authors_of(session, template.id)),
        "reason": template.reason, "created_at": template.created_at, "updated_at": template.updated_at,
        "approved_at": template.approved_at,
    }
