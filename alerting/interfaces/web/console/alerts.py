"""Alerts in the console: compose on a map, submit, review and approve, watch live, cancel, correct."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from shapely.geometry import shape
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerting.alerts import audience, drafts, incidents, lifecycle, prearmed
from alerting.base.db import transaction
from alerting.base.errors import InvalidInput
from alerting.base.json_limits import parse_json
from alerting.base.models import Alert, AlertMode, AlertState, Group, Priority, Sender
from alerting.base.models.alerts import PrearmedTexts
from alerting.base.sms_text.encoding import analyze
from alerting.base.sms_text.rendering import mode_prefix
from alerting.directory import areas, senders
from alerting.directory.criteria import MAX_CRITERION_BYTES
from alerting.interfaces.web import review, template_picker
from alerting.interfaces.web.errors import on_invalid
from alerting.interfaces.web.i18n import number, translate_message
from alerting.interfaces.web.labels import label
from alerting.interfaces.web.security import current_actor, limiter, requires, step_up
from geo import targeting, zone_files, zones

bp = Blueprint("alerts", __name__)

ACTION_LIMIT = "30 per minute"  # ASVS 11.1.4: business actions are rate limited too


# --- compose ----------------------------------------------------------------------------------------


def _form_values(alert: Alert | None = None, armed: PrearmedTexts | None = None) -> dict[str, Any]:
    """What the compose form shows: what was typed (after an error), else the alert, else defaults."""
    form = request.form
    if form:
        values: dict[str, Any] = {k: form.get(k, "") for k in form}
        for key in ("zones", "groups", "exclude_groups"):
            values[key] = form.getlist(key)
        return values
    if alert is None:
        correction, cancel = prearmed.default_texts(["es", "en"])
        return {"mode": "", "priority": "normal", "zones": [], "groups": [], "exclude_groups": [], "resend": "1",
                "correction_es": correction["es"], "correction_en": correction["en"],
                "cancel_es": cancel["es"], "cancel_en": cancel["en"]}
    target = alert.target or {}
    tz = ZoneInfo(current_app.config["SIRENA_TIMEZONE"])
    correction = armed.correction_texts if armed else prearmed.default_texts(["es", "en"])[0]
    cancel = armed.cancel_texts if armed else prearmed.default_texts(["es", "en"])[1]
    return {
        "mode": alert.mode.value, "title": alert.title, "priority": alert.priority.value, "sender": alert.sender_name,
        "text_es": alert.texts.get("es", ""), "text_en": alert.texts.get("en", ""),
        "zones": list(target.get("zones") or []), "groups": list(target.get("groups") or []),
        "exclude_groups": list(target.get("exclude_groups") or []),
        "criteria": json.dumps(target["criteria"], ensure_ascii=False) if target.get("criteria") else "",
        "scheduled_at": alert.scheduled_at.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if alert.scheduled_at else "",
        "ack_deadline_s": alert.ack_deadline_s or "",
        "resend": "1" if (alert.escalation or {}).get("resend", True) else "",
        "resend_other_carrier": "1" if (alert.escalation or {}).get("resend_other_carrier") else "",
        "supervisors": (alert.escalation or {}).get("supervisors") or "",
        "supervisors_after_s": (alert.escalation or {}).get("supervisors_after_s") or "",
        "correction_es": correction.get("es", ""), "correction_en": correction.get("en", ""),
        "cancel_es": cancel.get("es", ""), "cancel_en": cancel.get("en", ""),
        **template_picker.form_values(alert),
    }


def _choices(db: Session) -> dict[str, Any]:
    return {
        "zone_list": zones.list_zones(db),
        "group_list": list(db.scalars(select(Group).order_by(Group.name))),
        "senders": list(db.scalars(select(Sender).where(Sender.active).order_by(Sender.name))),
        "priorities": [p.value for p in Priority],
        "message_templates": template_picker.offered(db),
        "area": areas.bounds_for(db, current_actor()),
        "incident_list": incidents.list_incidents(db, open_only=True, limit=50),
    }


def _render_compose(errors: dict[str, str], alert_id: int | None = None) -> str:
    with transaction() as db:
        alert = db.get(Alert, alert_id) if alert_id else None
        armed = prearmed.prearmed(db, alert_id) if alert_id else None
        values = _form_values(alert, armed)
        if not values.get("sender") and (default := senders.default_sender(db)) is not None:
            values["sender"] = default.name  # a dedicated code: never a shared one by the alphabet's chance
        return render_template("alerts/compose.html", v=values, errors=errors, alert=alert, **_choices(db))


def _render_compose_again(errors: dict[str, str]) -> str:
    return _render_compose(errors, (request.view_args or {}).get("alert_id"))


def _texts(form: Any, prefix: str) -> dict[str, str]:
    return {lang: form.get(f"{prefix}_{lang}", "").strip() for lang in ("es", "en")
            if form.get(f"{prefix}_{lang}", "").strip()}


def _parse(db: Session) -> tuple[drafts.AlertDraft, dict[str, str], dict[str, str]]:
    """The form as a draft, its correction and cancellation texts. Raises InvalidInput by field."""
    form, problems = request.form, {}
    try:
        mode = AlertMode(form.get("mode", ""))
    except ValueError:
        problems["mode"] = "choose live, exercise or test first"
        mode = AlertMode.TEST
    try:
        priority = Priority(form.get("priority", "normal"))
    except ValueError:
        problems["priority"] = "unknown priority"
        priority = Priority.NORMAL
    target: dict[str, Any] = {key: form.getlist(key) for key in ("zones", "groups", "exclude_groups")
                              if form.getlist(key)}
    if form.get("criteria", "").strip():
        try:
            target["criteria"] = parse_json(form["criteria"], field="criteria", max_bytes=MAX_CRITERION_BYTES)
        except InvalidInput as exc:
            problems.update(exc.field_errors)
    scheduled = None
    if form.get("scheduled_at", "").strip():
        try:
            local = datetime.fromisoformat(form["scheduled_at"])
            scheduled = local.replace(tzinfo=ZoneInfo(current_app.config["SIRENA_TIMEZONE"]))
        except ValueError:
            problems["scheduled_at"] = "expected a date and time"
    ack = None
    if form.get("ack_deadline_s", "").strip():
        if form["ack_deadline_s"].strip().isdigit():
            ack = int(form["ack_deadline_s"])
        else:
            problems["ack_deadline_s"] = "whole seconds"
    incident_id = None
    if form.get("incident", "").strip():
        if form["incident"].strip().isdigit():
            incident_id = int(form["incident"])
        else:
            problems["incident"] = "choose an open incident"
    escalation = _escalation(db, form, problems)
    if form.get("drawn_geojson", "").strip():
        _save_drawn(db, form, target, problems)
    if problems:
        raise InvalidInput("the alert cannot be saved as given", fields=problems)
    use = template_picker.chosen(db, form)  # an approved template's words, filled again here
    draft = drafts.AlertDraft(texts=_texts(form, "text") or (use.texts if use else {}), mode=mode,
                              sender_name=form.get("sender", ""), priority=priority,
                              title=form.get("title", "").strip()[:200] or (use.title() if use else ""),
                              target=target, scheduled_at=scheduled, ack_deadline_s=ack, escalation=escalation,
                              origin="console", incident_id=incident_id, **template_picker.link(use))
    return draft, _texts(form, "correction"), _texts(form, "cancel")


def _escalation(db: Session, form: Any, problems: dict[str, str]) -> dict[str, Any] | None:
    """The chase policy at the ACK deadline (broadcast.escalation.Policy), or None for the default."""
    if not form.get("escalation_set"):
        return None
    policy: dict[str, Any] = {"resend": bool(form.get("resend")),
                              "resend_other_carrier": bool(form.get("resend_other_carrier"))}
    supervisors = form.get("supervisors", "").strip()
    if supervisors:
        if db.scalar(select(Group.id).where(Group.name == supervisors)) is None:
            problems["escalation.supervisors"] = f'no group named "{supervisors}"'
        policy["supervisors"] = supervisors
    after = form.get("supervisors_after_s", "").strip()
    if after:
        if after.isdigit():
            policy["supervisors_after_s"] = int(after)
        else:
            problems["escalation.supervisors_after_s"] = "whole seconds"
    return policy


def _save_drawn(db: Session, form: Any, target: dict[str, Any], problems: dict[str, str]) -> None:
    name = " ".join(form.get("drawn_name", "").split())
    if not name:
        problems["drawn_name"] = "name the zone you drew"
        return
    drawn = parse_json(form["drawn_geojson"], field="drawn_geojson", max_bytes=zone_files.REQUEST_LIMITS.max_bytes)
    try:
        geometry = shape(drawn)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        problems["drawn_geojson"] = f"the drawn shape is not a polygon: {exc}"
        return
    settings = current_app.config["SIRENA_SETTINGS"]
    zone = zones.save_zone(db, name, geometry, "console", actor=current_actor(), region=settings.default_region)
    target.setdefault("zones", [])
    if zone.name not in target["zones"]:
        target["zones"].append(zone.name)


def _confirm_live(db: Session, draft: drafts.AlertDraft) -> None:
    """A live alert is saved only after typing its summary ("LIVE 48,213", in Spanish "REAL 48.213";
    either word, either grouping): never a bare "OK"."""
    if draft.mode is not AlertMode.LIVE:
        return
    total = targeting.preview(db, targeting.TargetSpec.from_json(draft.target)).total
    typed = request.form.get("confirm_live", "").upper().replace(",", "").replace(".", "").split()
    if typed not in (["LIVE", str(total)], ["REAL", str(total)]):
        phrase, phones = f"{label(AlertMode.LIVE)} {number(total)}", number(total)
        raise InvalidInput(_("confirm the live alert"), fields={"confirm_live": _(
            'type "%(phrase)s" to save a LIVE alert that reaches %(total)s phones', phrase=phrase, total=phones)})


@bp.get("/alerts/new")
@requires("alerts.compose")
def new() -> str:
    """The compose form: mode first, then target on the map, texts, sending options."""
    return _render_compose({})


@bp.post("/alerts")
@requires("alerts.compose")
@on_invalid(_render_compose_again)
@limiter.limit(ACTION_LIMIT)
def create() -> Any:
    """Save a new draft (and submit it when asked). A live one needs its summary typed."""
    with transaction() as db:
        draft, correction, cancel = _parse(db)
        areas.require_within(db, current_actor(), draft.target, doing="compose")  # before counting its phones
        _confirm_live(db, draft)
        alert = lifecycle.compose(db, draft, current_actor(), prearmed_texts=(correction, cancel),
                                  quiet_override_reason=request.form.get("quiet_override_reason"))
        if request.form.get("action") == "submit":
            lifecycle.submit(db, alert.id, current_actor())
    flash(_("Alert %(reference)s saved (%(state)s).", reference=alert.reference, state=label(alert.state)), "ok")
    return redirect(url_for("alerts.detail", alert_id=alert.id), 303)


@bp.get("/alerts/<int:alert_id>/edit")
@requires("alerts.compose")
def edit(alert_id: int) -> str:
    """The compose form for an editable alert."""
    with transaction() as db:
        drafts.get_alert(db, alert_id)
    return _render_compose({}, alert_id)


@bp.post("/alerts/<int:alert_id>/edit")
@requires("alerts.compose")
@on_invalid(_render_compose_again)
@limiter.limit(ACTION_LIMIT)
def update(alert_id: int) -> Any:
    """Save changes to an editable alert; any approval it had is void."""
    with transaction() as db:
        draft, correction, cancel = _parse(db)
        areas.require_within(db, current_actor(), draft.target, doing="edit")  # before counting its phones
        _confirm_live(db, draft)
        changes = {"texts": draft.texts, "mode": draft.mode, "sender_name": draft.sender_name,
                   "priority": draft.priority, "title": draft.title, "target": draft.target,
                   "scheduled_at": draft.scheduled_at, "ack_deadline_s": draft.ack_deadline_s,
                   "escalation": draft.escalation}
        if draft.template_id is not None:  # started again from a template: the link follows
            changes.update(template_id=draft.template_id, template_version=draft.template_version,
                           template_values=draft.template_values)
        alert = lifecycle.edit(db, alert_id, changes, current_actor(), prearmed_texts=(correction, cancel),
                               quiet_override_reason=request.form.get("quiet_override_reason"))
        if request.form.get("action") == "submit":
            lifecycle.submit(db, alert_id, current_actor())
    flash(_("Alert %(reference)s saved; any approval it had is void.", reference=alert.reference), "ok")
    return redirect(url_for("alerts.detail", alert_id=alert_id), 303)


@bp.post("/alerts/<int:alert_id>/submit")
@requires("alerts.submit")
@limiter.limit(ACTION_LIMIT)
def submit(alert_id: int) -> Any:
    """Ask for a second operator's approval (zone versions pinned, hash fixed)."""
    with transaction() as db:
        alert = lifecycle.submit(db, alert_id, current_actor())
    flash(_("Alert %(reference)s is waiting for a second operator's approval.", reference=alert.reference), "ok")
    return redirect(url_for("alerts.detail", alert_id=alert_id), 303)


# --- approve ---------------------------------------------------------------------------------------


def _review_context(db: Session, alert_id: int) -> dict[str, Any]:
    alert = drafts.get_alert(db, alert_id)
    preview = audience.preview_alert(db, alert)
    return {"alert": alert, "phones": review.phone_texts(alert, senders.sender_keyword(db, alert.sender_name)),
            "preview": preview, "radius": audience.blast_radius(db, alert, preview),
            "prearmed": prearmed.prearmed(db, alert_id),
            "capacity": audience.sender_capacity(db, alert, preview), "approvals": approvals_of(db, alert_id),
            "tolerance": audience.count_tolerance(alert.submitted_recipients or 0),
            "from_template": template_picker.describe(db, alert)}


def approvals_of(db: Session, alert_id: int) -> list[Any]:
    """Who approved the alert, when, with any blast-radius override reason."""
    return list(db.execute(text("SELECT o.username, a.created_at, a.override_reason FROM alert_approvals a "
                                "JOIN operators o ON o.id = a.operator_id WHERE a.alert_id = :a ORDER BY a.id"),
                           {"a": alert_id}))


def _render_review(errors: dict[str, str]) -> str:
    alert_id = (request.view_args or {})["alert_id"]
    with transaction() as db:
        return render_template("alerts/review.html", errors=errors, v=request.form, **_review_context(db, alert_id))


@bp.get("/approvals")
@requires("alerts.approve")
def approvals() -> str:
    """Alerts waiting for approval, oldest first."""
    with transaction() as db:
        pending = list(db.scalars(select(Alert).where(Alert.state == AlertState.PENDING_APPROVAL)
                                  .order_by(Alert.submitted_at)))
    return render_template("alerts/approvals.html", pending=pending)


@bp.get("/alerts/<int:alert_id>/review")
@requires("alerts.approve")
def review_page(alert_id: int) -> str:
    """What an approver must see before approving: phones' texts, recipients, map, blast radius."""
    return _render_review({})


@bp.post("/alerts/<int:alert_id>/approve")
@requires("alerts.approve")
@on_invalid(_render_review)
@limiter.limit(ACTION_LIMIT)
def approve(alert_id: int) -> Any:
    """Approve (a live alert needs a fresh TOTP code); arms the correction with it."""
    with transaction() as db:
        if drafts.get_alert(db, alert_id).mode is AlertMode.LIVE:
            step_up(db, "console.alerts.approve")  # a hijacked session alone cannot approve a live alert
        alert = lifecycle.approve(db, alert_id, current_actor(), seen_hash=request.form.get("seen_hash", ""),
                                        override_reason=request.form.get("override_reason"))
    if alert.state is AlertState.PENDING_APPROVAL:
        flash(_("Approval recorded; %(reference)s needs %(n)s approvals.", reference=alert.reference,
                n=alert.required_approvals), "ok")
    else:
        flash(_("Alert %(reference)s approved (%(state)s). Its correction is armed.", reference=alert.reference,
                state=label(alert.state)), "ok")
    return redirect(url_for("alerts.detail", alert_id=alert_id), 303)


@bp.post("/alerts/<int:alert_id>/reject")
@requires("alerts.reject")
@on_invalid(_render_review)
def reject(alert_id: int) -> Any:
    """Reject with a reason; the composer may revise."""
    with transaction() as db:
        alert = lifecycle.reject(db, alert_id, current_actor(), request.form.get("reason", ""))
    flash(_("Alert %(reference)s rejected.", reference=alert.reference), "ok")
    return redirect(url_for("alerts.detail", alert_id=alert_id), 303)


# --- helpers the compose page calls --------------------------------------------------------------


JSON_CALL_BYTES = 256 * 1024  # two texts and a target: far below this


def _json_call() -> dict[str, Any]:
    """The body of one of the compose page's own JSON calls: an object, bounded (422 naming `body`)."""
    if (request.content_length or 0) > JSON_CALL_BYTES:
        raise InvalidInput(f"body: larger than {JSON_CALL_BYTES:,} bytes", fields={"body": "too large"})
    raw = request.get_data()
    body = parse_json(raw, field="body", max_bytes=JSON_CALL_BYTES) if raw.strip() else {}
    return body if isinstance(body, dict) else {}


@bp.post("/compose/segments")
@requires("alerts.preview")
def segments() -> Any:
    """The live segment counter: encoding, parts, characters left, for each language's text."""
    body = _json_call()
    mode = AlertMode(body["mode"]) if body.get("mode") in {m.value for m in AlertMode} else AlertMode.LIVE

    out = {}
    for lang, value in dict(body.get("texts") or {}).items():
        if lang not in ("es", "en") or not isinstance(value, str):
            continue
        info = analyze(mode_prefix(mode, lang) + value)
        out[lang] = {"encoding": info.encoding, "parts": info.parts, "left": info.units_left_in_last,
                     "chars": info.chars, "non_gsm": info.non_gsm_chars[:20]}
    return jsonify(out)


@bp.post("/compose/preview")
@requires("alerts.preview")
def preview() -> Any:
    """Recipients now, with the breakdown and the SMS cost (recipients × parts per language)."""
    body = _json_call()
    mode = AlertMode(body["mode"]) if body.get("mode") in {m.value for m in AlertMode} else AlertMode.LIVE

    texts = {lang: mode_prefix(mode, lang) + t for lang, t in dict(body.get("texts") or {}).items()
             if lang in ("es", "en") and isinstance(t, str) and t}
    with transaction() as db:
        areas.require_within(db, current_actor(), body.get("target") or {}, doing="preview")
        priority = body.get("priority") if body.get("priority") in {p.value for p in Priority} else None
        result = targeting.preview(db, targeting.TargetSpec.from_json(body.get("target") or {}),
                                   languages=texts or None, mode=mode, priority=priority)
    shown = result.to_json()
    shown["notes"] = [translate_message(n) for n in shown.get("notes") or []]
    if (shown.get("opt_out_policy") or {}).get("reason"):
        shown["opt_out_policy"]["reason"] = translate_message(shown["opt_out_policy"]["reason"])
    return jsonify(shown)


@bp.get("/zones.geojson")
@requires("zones.map")
def zones_geojson() -> Any:
    """Every current zone as one FeatureCollection, for the console's maps."""
    with transaction() as db:
        features = [zones.zone_geojson(db, z["name"]) for z in zones.list_zones(db)]
    return jsonify({"type": "FeatureCollection", "features": features})
