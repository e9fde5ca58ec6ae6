"""CAP 1.2 in: a validated CAP alert becomes a Sirena alert pending approval, never a send.

Mapping (each decision made here, once, for the CLI, the HTTP endpoint and e-mail alike):
- status Actual → live; Exercise → exercise; Test → test. Exercise and Test never become live:
  they go to drill groups only (the lifecycle refuses zones for them), and their areas are not used.
  System and Draft messages are refused (they are not alerts to act on).
- msgType Alert → a new alert; Update → a correction of the referenced alert; Cancel → a cancel
  notice to everyone the referenced alert reached. A reference Sirena never had is refused, named.
  Ack and Error are refused.
- info blocks: one text per language Sirena sends (es, en), headline then instruction (or
  description); other languages are skipped with a warning.
- area polygons and circles → one zone per area (geo.zones), targeted by a live alert.
- severity × urgency → priority (Extreme+Immediate → flash); a Cancel is flash, an Update at least high.
- dedupe by (sender, identifier, sent): a second import returns the first one's alert.
The alert is composed by the actor who imported it and submitted, so a different operator must approve.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.alerts import drafts, lifecycle
from alerting.base.errors import InvalidInput
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import Alert, AlertKind, AlertMode, AlertState, Group, Priority
from alerting.base.models.intake import CapMessage
from alerting.interfaces.intake import cap
from alerting.interfaces.intake.cap_signature import verify
from audit import trail
from audit.actor import Actor
from geo import zones

MODES = {"Actual": AlertMode.LIVE, "Exercise": AlertMode.EXERCISE, "Test": AlertMode.TEST}
MAX_SMS_TEXT = 480  # three GSM-7 parts: a CAP description is written for web pages, not phones
CANCEL_TEXTS = {"es": "CANCELADA: la alerta anterior ({ref}) queda sin efecto.",
                "en": "CANCELLED: the earlier alert ({ref}) no longer applies."}


@dataclass
class CapResult:
    action: str  # drafted / correction_drafted / cancel_drafted / duplicate
    alert_id: int | None
    reference: str | None
    state: str | None
    mode: str | None
    zones: list[str] = field(default_factory=list)
    signed_by: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def priority_of(severity: str, urgency: str) -> Priority:
    if severity == "Extreme" and urgency == "Immediate":
        return Priority.FLASH
    if severity in {"Extreme", "Severe"} and urgency in {"Immediate", "Expected"}:
        return Priority.HIGH
    if severity in {"Extreme", "Severe", "Moderate"}:
        return Priority.NORMAL
    return Priority.LOW


def _sms_text(info: cap.CapInfo) -> str:
    body = info.instruction or info.description
    text = ". ".join(p.strip().rstrip(".") for p in (info.headline, body) if p.strip()) or info.event
    return text if len(text) <= MAX_SMS_TEXT else text[:MAX_SMS_TEXT - 1].rstrip() + "…"


def _texts(doc: cap.CapDocument, warnings: list[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for info in doc.infos:
        lang = info.language.split("-")[0].lower()
        if lang not in {"es", "en"}:
            warnings.append(f"info in {info.language} skipped: Sirena sends es and en")
        elif lang in texts:
            warnings.append(f"a second info in {info.language} ({info.event}) was not used")
        else:
            texts[lang] = _sms_text(info)
    return texts


def _signature(data: bytes, doc: cap.CapDocument, config: IntakeConfig, warnings: list[str]) -> str | None:
    if config.cap_trusted_certs:
        if doc.signed:
            verified = verify(data, config.cap_trusted_certs, doc.sent_at)
            if verified.weak_digest:
                warnings.append("the signature uses SHA-1 (accepted: IPAWS still signs with it)")
            return verified.subject
        if config.cap_require_signature:
            raise InvalidInput("cap: unsigned, and this site accepts only signed CAP",
                               fields={"Signature": "missing"})
        warnings.append("the document is not signed")
        return None
    if config.cap_require_signature:
        raise InvalidInput("cap: signatures are required but no trusted certificate is configured "
                           "(SIRENA_CAP_TRUSTED_CERTS)", fields={"Signature": "no trusted certificate configured"})
    if doc.signed:
        warnings.append("signed, but the signature was not verified: no trusted certificate is configured")
    return None


def _referenced_alert(session: Session, doc: cap.CapDocument, config: IntakeConfig) -> Alert:
    known: list[Alert] = []
    for sender, identifier, sent in doc.references:
        alert_id = session.scalar(select(CapMessage.alert_id).where(
            CapMessage.sender == sender, CapMessage.identifier == identifier, CapMessage.sent == sent))
        if alert_id is None and sender == config.cap_sender_id:
            alert_id = session.scalar(select(Alert.id).where(Alert.reference == identifier))
        if alert_id is not None:
            known.append(drafts.get_alert(session, alert_id))
    if not known:
        named = " ".join(",".join(r) for r in doc.references) or "(none given)"
        raise InvalidInput(f"cap: this {doc.msg_type} references an alert Sirena never had: {named}",
                           fields={"/alert/references": f"unknown to Sirena: {named}"})
    return known[-1]  # references are listed oldest first: act on the latest Sirena knows


def _zones_of(session: Session, doc: cap.CapDocument, actor: Actor, warnings: list[str]) -> list[str]:
    names: list[str] = []
    seen: set[tuple[str, ...]] = set()
    stem = hashlib.sha256(f"{doc.sender}|{doc.identifier}".encode()).hexdigest()[:10]
    for info in doc.infos:
        for area in info.areas:
            key = tuple(sorted(area.polygons + area.circles))
            if not key:
                if area.geocodes:
                    codes = ", ".join(f"{n} {v}" for n, v in area.geocodes[:5])
                    warnings.append(f'area "{area.description}" has only geocodes ({codes}); Sirena maps '
                                    "polygons and circles only")
                continue
            if key in seen:
                continue
            seen.add(key)
            shapes = [zones.parse_cap_polygon(p, repair=True) for p in area.polygons]
            shapes += [zones.parse_cap_circle(c) for c in area.circles]
            merged = shapely.union_all(shapes)
            geometry = merged if isinstance(merged, Polygon | MultiPolygon) else MultiPolygon(shapes)
            name = f"CAP {stem}-{len(names) + 1}"
            zones.save_zone(session, name, geometry, "cap", description=area.description[:500], actor=actor)
            names.append(name)
    return names


def _drill_groups(session: Session, config: IntakeConfig) -> list[str]:
    if config.cap_drill_groups:
        return list(config.cap_drill_groups)
    return list(session.scalars(select(Group.name).where(Group.drill_allowed).order_by(Group.name)))


def import_cap(session: Session, data: bytes, *, actor: Actor, config: IntakeConfig) -> CapResult:
    """Turn a CAP 1.2 document into an alert pending approval (see the module docstring).

    Raises InvalidInput naming the element, the reference or the signature at fault; nothing is
    written then (the caller keeps the document for review).
    """
    doc, _root = cap.load(data)
    warnings: list[str] = []
    signed_by = _signature(data, doc, config, warnings)
    if doc.status not in MODES:
        raise InvalidInput(f"cap: status {doc.status} is not an alert to act on (Actual, Exercise or Test)",
                           fields={"/alert/status": f"{doc.status} is not accepted"})
    if doc.msg_type not in {"Alert", "Update", "Cancel"}:
        raise InvalidInput(f"cap: msgType {doc.msg_type} is not an alert (Alert, Update or Cancel)",
                           fields={"/alert/msgType": f"{doc.msg_type} is not accepted"})
    claimed = session.execute(pg_insert(CapMessage).values(
        sender=doc.sender, identifier=doc.identifier, sent=doc.sent, msg_type=doc.msg_type, status=doc.status,
        direction="in", signed_by=signed_by).on_conflict_do_nothing().returning(CapMessage.id)).first()
    if claimed is None:
        first = session.scalar(select(CapMessage).where(CapMessage.sender == doc.sender,
                                                        CapMessage.identifier == doc.identifier,
                                                        CapMessage.sent == doc.sent))
        alert = session.get(Alert, first.alert_id) if first and first.alert_id else None
        return CapResult("duplicate", alert.id if alert else None, alert.reference if alert else None,
                         alert.state.value if alert else None, alert.mode.value if alert else None,
                         warnings=[f"already imported: {doc.sender},{doc.identifier},{doc.sent}"])
    mode = MODES[doc.status]
    texts = _texts(doc, warnings)
    original = _referenced_alert(session, doc, config) if doc.msg_type in {"Update", "Cancel"} else None
    zone_names: list[str] = []
    if original is not None:
        if original.mode is not mode:
            raise InvalidInput(f"cap: a {doc.status} {doc.msg_type} cannot change {original.reference}, which is "
                               f"{original.mode.value}",
                               fields={"/alert/status": "does not match the referenced alert"})
        target = dict(original.target or {})
        if doc.msg_type == "Cancel":
            texts = {lang: t.format(ref=original.reference) for lang, t in CANCEL_TEXTS.items()
                     if lang in (original.texts or {})} or {"es": CANCEL_TEXTS["es"].format(ref=original.reference)}
    elif mode is AlertMode.LIVE:
        zone_names = _zones_of(session, doc, actor, warnings)
        target = {"zones": zone_names} if zone_names else {}
    else:
        target = {"groups": _drill_groups(session, config)}
        if not target["groups"]:
            raise InvalidInput(f"cap: a {doc.status} message goes to drill groups only, and there are none",
                               fields={"target.groups": "no group is marked for drills"})
        if any(a.polygons or a.circles for i in doc.infos for a in i.areas):
            warnings.append(f"areas ignored: a {doc.status} message reaches drill groups only, never zones")
    if not texts:
        raise InvalidInput("cap: no info block in a language Sirena sends (es, en)",
                           fields={"/alert/info/language": "no es or en info"})
    first_info = doc.infos[0] if doc.infos else None
    priority = priority_of(first_info.severity, first_info.urgency) if first_info else Priority.HIGH
    if doc.msg_type == "Cancel":
        priority = Priority.FLASH
    elif doc.msg_type == "Update" and priority.rank > Priority.HIGH.rank:
        priority = Priority.HIGH
    kind = {"Alert": AlertKind.ALERT, "Update": AlertKind.CORRECTION, "Cancel": AlertKind.CANCEL}[doc.msg_type]
    title = f"CAP {doc.msg_type} {first_info.event if first_info else ''}: {doc.sender}"[:200]
    draft = drafts.AlertDraft(texts=texts, mode=mode, sender_name=config.sms_sender, priority=priority,
                                 title=title, target=target, kind=kind,
                                 corrects_alert_id=original.id if original else None, origin="cap",
                                 cap_identifier=f"{doc.sender},{doc.identifier},{doc.sent}")
    alert = lifecycle.compose(session, draft, actor)
    if mode is AlertMode.LIVE and original is None and not zone_names:
        warnings.append("left as a draft: no polygon or circle to aim at; choose the target, then submit")
    else:
        try:
            lifecycle.submit(session, alert.id, actor)
        except InvalidInput as exc:  # a live alert whose area holds nobody: kept, for an operator to aim
            warnings.append(f"left as a draft: {exc.message}")
    session.execute(update(CapMessage).where(CapMessage.id == claimed[0]).values(alert_id=alert.id)
                    .execution_options(synchronize_session=False))
    trail.append(session, actor=actor, action="cap.imported", subject_type="alert", subject_id=alert.id,
                 payload={"cap": draft.cap_identifier, "msg_type": doc.msg_type, "status": doc.status,
                          "signed_by": signed_by, "warnings": warnings})
    action = {"Alert": "drafted", "Update": "correction_drafted", "Cancel": "cancel_drafted"}[doc.msg_type]
    state = alert.state.value if alert.state is not AlertState.DRAFT else "draft"
    return CapResult(action, alert.id, alert.reference, state, mode.value, zone_names, signed_by, warnings)
