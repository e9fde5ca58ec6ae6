"""Composing from an approved template, and the one-approver rule it earns.

`use_template` fills an APPROVED template's declared placeholders with the composer's values (or
their defaults) and returns the texts and the link the alert records: which template, which
version, which values. Every interface (console picker, API `template`, CLI `--template`) goes
through it.

The rule (FIELD.md: pre-scripted, pre-approved texts are what let an operator send the right
words in seconds): an alert whose texts are exactly its template's approved version rendered
with its placeholder values needs ONE approver, whatever its priority would otherwise need, and
never zero. `approvals_needed` decides it at submission and again at approval: if the text was
changed, a language added or dropped, or the template edited, retired or re-versioned since, the
normal rule of its priority and mode applies. Each decision is audited (`alert.template_checked`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.alerts.templates import MAX_VALUE, get_template
from alerting.base.errors import InvalidInput
from alerting.base.models import Alert, MessageTemplate, TemplateState, TemplateVersion
from alerting.base.sms_text.rendering import PLACEHOLDER
from audit import trail
from audit.actor import Actor


@dataclass
class TemplateUse:
    """An approved template version, filled: what a draft alert starts from."""

    template_id: int
    name: str
    version: int
    values: dict[str, str]
    texts: dict[str, str]
    titles: dict[str, str] = field(default_factory=dict)
    priority_hint: str | None = None
    mode_hint: str | None = None

    def title(self, language: str = "es") -> str:
        return self.titles.get(language) or next(iter(self.titles.values()), "") or self.name


def check_values(placeholders: list[dict[str, Any]], values: dict[str, Any] | None) -> dict[str, str]:
    """The value of every declared placeholder: the one given, else its default. InvalidInput
    naming `template_values.<name>` for a missing value, an undeclared name or a bad value."""
    values = dict(values or {})
    declared = {p["name"]: p.get("default") for p in placeholders}
    problems: dict[str, str] = {}
    for name in values:
        if name not in declared:
            problems[f"template_values.{name}"] = ("not a placeholder of this template; it has: "
                                                   + (", ".join(declared) or "none"))
    out: dict[str, str] = {}
    for name, default in declared.items():
        given = values.get(name)
        value = " ".join(str(given).split()) if given is not None else ""
        if not value:
            if default is None:
                problems[f"template_values.{name}"] = "required: this placeholder has no default"
                continue
            value = str(default)
        if len(value) > MAX_VALUE:
            problems[f"template_values.{name}"] = f"longer than {MAX_VALUE} characters"
        elif "{" in value or "}" in value:
            problems[f"template_values.{name}"] = "cannot hold { }"
        out[name] = value
    if problems:
        raise InvalidInput("the template's placeholders cannot be filled as given", fields=problems)
    return out


def fill(texts: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """Each text with its declared placeholders replaced by their values; the system's and the
    contacts' placeholders (`{codigo}`, `{nombre|vecino}`) are left for sending time."""
    def one(match: Any) -> str:
        name = match.group(1).lower()
        return values[name] if name in values and match.group(2) is None else match.group(0)

    return {lang: PLACEHOLDER.sub(one, body) for lang, body in texts.items()}


def use_template(session: Session, ref: int | str, values: dict[str, Any] | None) -> TemplateUse:
    """The approved template `ref` (id or name) filled with `values`. InvalidInput naming
    `template` when it is not approved (a draft, pending, rejected or retired one is nobody's
    approved words), or naming each placeholder value at fault; NotFound for an unknown one."""
    template = get_template(session, ref)
    if template.state is not TemplateState.APPROVED:
        raise InvalidInput(f'template "{template.name}" is {template.state.value}: only an approved template can '
                           "be used", fields={"template": f"{template.state.value}, not approved"})
    filled = check_values(list(template.placeholders or []), values)
    return TemplateUse(template.id, template.name, template.version, filled, fill(dict(template.texts), filled),
                       dict(template.titles), template.priority_hint, template.mode_hint)


@dataclass(frozen=True)
class TemplateCheck:
    unchanged: bool
    reason: str


def check_alert(session: Session, alert: Alert) -> TemplateCheck | None:
    """Whether `alert` is still its template's approved version rendered with its values; None for
    an alert not built from a template. Locks the template FOR SHARE: an edit waits for the
    approval that relies on the words it would change."""
    if alert.template_id is None:
        return None
    template = session.scalar(select(MessageTemplate).where(MessageTemplate.id == alert.template_id)
                              .with_for_update(read=True))
    if template is None:
        return TemplateCheck(False, "its template no longer exists")
    if template.state is not TemplateState.APPROVED:
        return TemplateCheck(False, f'template "{template.name}" is {template.state.value}, no longer approved')
    if template.version != alert.template_version:
        return TemplateCheck(False, f'template "{template.name}" is at version {template.version}; the alert was '
                                    f"built from version {alert.template_version}")
    version = session.get(TemplateVersion, (template.id, template.version))
    if version is None or version.approved_at is None:
        return TemplateCheck(False, f'version {template.version} of template "{template.name}" was never approved')
    try:
        values = check_values(list(version.placeholders or []), alert.template_values)
    except InvalidInput as exc:
        return TemplateCheck(False, f"its placeholder values do not fit the template: {exc.message}")
    expected = fill(dict(version.texts), values)
    if set(expected) != set(alert.texts or {}):
        return TemplateCheck(False, f"its languages ({', '.join(sorted(alert.texts or {}))}) are not the template's "
                                    f"({', '.join(sorted(expected))})")
    changed = [lang for lang in sorted(expected) if expected[lang] != alert.texts.get(lang)]
    if changed:
        return TemplateCheck(False, f"its text in {', '.join(changed)} differs from the template's")
    return TemplateCheck(True, f'template "{template.name}" version {template.version}, only placeholders filled')


def approvals_needed(session: Session, alert: Alert, normal: int, actor: Actor) -> int:
    """Approvals `alert` needs: one when it is an unchanged rendering of its approved template
    version (never zero), else `normal` (its priority and mode's). Audited for an alert built from
    a template, with the reason, so the approver and the auditor see why."""
    check = check_alert(session, alert)
    if check is None:
        return normal
    needed = 1 if check.unchanged else normal
    trail.append(session, actor=actor, action="alert.template_checked", subject_type="alert", subject_id=alert.id,
                 payload={"template_id": alert.template_id, "template_version": alert.template_version,
                          "unchanged": check.unchanged, "reason": check.reason, "required_approvals": needed,
                          "normal_approvals": normal})
    return max(needed, 1)
