"""CAP 1.2 out: any Sirena alert as a schema-valid CAP document, and an Atom feed of our alerts.

Identifier is the alert's reference, sender is SIRENA_CAP_SENDER_ID, and <sent> is fixed at the
first export (recorded in cap_messages), so a re-export is byte-for-byte the same message and the
(sender, identifier, sent) triple others put in <references> always resolves back to the alert.
A correction is an Update and a cancel notice a Cancel, each referencing the original.
"""

from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import escape

from geoalchemy2.shape import to_shape
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.alerts import drafts
from alerting.base.db import utcnow
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import Alert, AlertKind, AlertMode, AlertState, Priority
from alerting.base.models.intake import CapMessage
from alerting.interfaces.intake import cap
from geo import zones

STATUS = {AlertMode.LIVE: "Actual", AlertMode.EXERCISE: "Exercise", AlertMode.TEST: "Test"}
MSG_TYPE = {AlertKind.ALERT: "Alert", AlertKind.CORRECTION: "Update", AlertKind.CANCEL: "Cancel"}
# priority → (urgency, severity, certainty)
GRAVITY = {Priority.FLASH: ("Immediate", "Extreme", "Observed"), Priority.HIGH: ("Expected", "Severe", "Likely"),
           Priority.NORMAL: ("Expected", "Moderate", "Likely"), Priority.LOW: ("Future", "Minor", "Possible")}
FEED_STATES = (AlertState.APPROVED, AlertState.SCHEDULED, AlertState.SENDING, AlertState.COMPLETED,
               AlertState.CANCELLED, AlertState.SUPERSEDED)


def cap_polygons(geometry: Polygon | MultiPolygon) -> list[str]:
    """CAP polygons ("lat,lon" pairs, closed) of each part's outer ring; CAP has no holes."""
    parts = list(geometry.geoms) if isinstance(geometry, MultiPolygon) else [geometry]
    return [" ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in part.exterior.coords) for part in parts]


def _sent_of(session: Session, alert: Alert, sender: str) -> str:
    """The <sent> of this alert's CAP message, fixed by the first export."""
    sent = cap.cap_time(alert.approved_at or alert.created_at or utcnow())
    session.execute(pg_insert(CapMessage).values(
        sender=sender, identifier=alert.reference, sent=sent, msg_type=MSG_TYPE[alert.kind],
        status=STATUS[alert.mode], direction="out", alert_id=alert.id).on_conflict_do_nothing())
    return session.execute(select(CapMessage.sent).where(CapMessage.direction == "out",
                                                         CapMessage.alert_id == alert.id,
                                                         CapMessage.identifier == alert.reference)).scalar_one()


def _reference_of(session: Session, alert_id: int, config: IntakeConfig) -> tuple[str, str, str]:
    """How others know the original: the CAP message it came from, else our own export of it."""
    came = session.scalars(select(CapMessage).where(CapMessage.alert_id == alert_id, CapMessage.direction == "in")
                           .order_by(CapMessage.id)).first()
    if came is not None:
        return came.sender, came.identifier, came.sent
    original = drafts.get_alert(session, alert_id)
    return config.cap_sender_id, original.reference, _sent_of(session, original, config.cap_sender_id)


def export_alert(session: Session, alert_id: int, config: IntakeConfig) -> bytes:
    """The alert as a CAP 1.2 document, validated against the schema. Raises NotFound."""
    alert = drafts.get_alert(session, alert_id)
    sent = _sent_of(session, alert, config.cap_sender_id)
    urgency, severity, certainty = GRAVITY[alert.priority]
    areas = []
    for name in (alert.target or {}).get("zones", []):
        pinned = ((alert.resolved or {}).get("zone_versions") or {}).get(name)
        zone = zones.get_zone(session, name, pinned)
        areas.append((zone.description or zone.name, cap_polygons(to_shape(zone.geom))))
    infos = []
    for language, text in sorted((alert.texts or {}).items()):
        headline = (alert.title or text)[:160]
        infos.append(cap.ExportInfo(language=language, event=alert.title[:100] or "Alerta", urgency=urgency,
                                    severity=severity, certainty=certainty, headline=headline, description=text,
                                    areas=areas))
    references = None
    if alert.kind is not AlertKind.ALERT and alert.corrects_alert_id:
        references = [_reference_of(session, alert.corrects_alert_id, config)]
    return cap.write(alert.reference, config.cap_sender_id, sent, STATUS[alert.mode], MSG_TYPE[alert.kind], infos,
                     references=references, note=f"Sirena {alert.reference}")


def atom_feed(session: Session, config: IntakeConfig, base_url: str, *, limit: int = 50) -> bytes:
    """An Atom feed of our alerts that were approved (drafts and rejected ones never appear).

    Each entry links to the alert's CAP document (type application/cap+xml), as CAP feeds do.
    """
    alerts = list(session.scalars(select(Alert).where(Alert.state.in_(FEED_STATES))
                                  .order_by(Alert.updated_at.desc(), Alert.id.desc()).limit(limit)))
    base = base_url.rstrip("/")
    updated = max((a.updated_at for a in alerts), default=None) or utcnow()
    entries = []
    for alert in alerts:
        link = f"{base}/api/v1/alerts/{alert.id}/cap"
        summary = next(iter(sorted((alert.texts or {}).items())), ("", ""))[1]
        entries.append(
            "<entry>"
            f"<id>urn:sirena:alert:{escape(alert.reference)}</id>"
            f"<title>{escape(f'[{STATUS[alert.mode]}] {alert.title or alert.reference}')}</title>"
            f"<updated>{_atom_time(alert.updated_at)}</updated>"
            f"<link rel=\"alternate\" type=\"application/cap+xml\" href=\"{escape(link)}\"/>"
            f"<summary>{escape(summary[:500])}</summary>"
            "</entry>")
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
            "<feed xmlns=\"http://www.w3.org/2005/Atom\">"
            f"<id>urn:sirena:feed:{escape(config.cap_sender_id)}</id><title>Sirena alerts</title>"
            f"<updated>{_atom_time(updated)}</updated>"
            f"<link rel=\"self\" href=\"{escape(base)}/api/v1/cap/feed\"/>"
            f"<author><name>{escape(config.cap_sender_id)}</name></author>"
            + "".join(entries) + "</feed>").encode()


def _atom_time(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()
