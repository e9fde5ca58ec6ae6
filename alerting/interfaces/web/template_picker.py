"""The compose form's template picker: the approved templates it offers, and the one chosen, filled.

The page fills the texts as the operator types each placeholder's value (js/compose.js), and the
server fills them again from the template (alerting/alerts/template_use.py) and records which
version and values the alert came from. Texts the operator changed are kept as typed: the alert
then needs its priority's approvals, not the template's one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from alerting.alerts import template_use, templates
from alerting.base.models import Alert, MessageTemplate, TemplateState


def offered(db: Session) -> list[MessageTemplate]:
    """The approved templates, by name: what compose can start from."""
    return templates.list_templates(db, states={TemplateState.APPROVED})


def field_name(template_id: int, placeholder: str) -> str:
    """The form field of one placeholder of one template (each template's inputs are its own)."""
    return f"tv-{template_id}-{placeholder}"


def placeholders_json(template: MessageTemplate) -> str:
    return json.dumps(template.placeholders or [], ensure_ascii=False)


def chosen(db: Session, form: Mapping[str, Any]) -> template_use.TemplateUse | None:
    """The template picked on the form, filled with the values typed for it; None when none was."""
    ref = str(form.get("template") or "").strip()
    if not ref:
        return None
    template = templates.get_template(db, ref)
    values = {p["name"]: form.get(field_name(template.id, p["name"]), "") for p in template.placeholders or []}
    return template_use.use_template(db, template.id, values)


def link(use: template_use.TemplateUse | None) -> dict[str, Any]:
    """The draft fields that record the template an alert was built from ({} for none)."""
    if use is None:
        return {}
    return {"template_id": use.template_id, "template_version": use.version, "template_values": use.values}


def form_values(alert: Alert | None) -> dict[str, str]:
    """The picker as an alert left it: its template and the values typed (for the edit form)."""
    if alert is None or alert.template_id is None:
        return {}
    values = {field_name(alert.template_id, k): v for k, v in (alert.template_values or {}).items()}
    return {"template": str(alert.template_id), **values}


def describe(db: Session, alert: Alert) -> dict[str, Any] | None:
    """For the approver: the template the alert came from and whether its words are still the
    approved ones (one approval) or not (its priority's); None when it came from none."""
    check = template_use.check_alert(db, alert)
    if check is None:
        return None
    template = db.get(MessageTemplate, alert.template_id)
    return {"name": template.name if template else "?", "version": alert.template_version,
            "unchanged": check.unchanged, "reason": check.reason}
