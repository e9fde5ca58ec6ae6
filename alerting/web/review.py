"""What an approver sees before approving, and the checks the console adds around the lifecycle.

- `phone_texts`: each language exactly as a handset shows it (mode prefix, reply code and
  reference filled; contact fields shown with their defaults), with encoding and parts.
- `blast_radius`: the recipients count against the zones' expected population and the size of
  the directory; a target far beyond them needs a written reason (FIELD.md req. 7).
- `submit_for_approval` pins the zone versions into the target before the approval hash is
  fixed, so what was approved is what fans out, even if a zone is redrawn meanwhile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from alerting import corrections, lifecycle
from alerting.errors import InvalidInput
from alerting.models import Alert, AlertMode, Contact, Delivery
from alerting.texts import ALERT_FIELDS, PLACEHOLDER, mode_prefix
from audit.actor import Actor
from broadcast.encoding import analyze
from geo import targeting
from geo.models import Zone

OVER_EXPECTED = 1.5  # recipients above 1.5 × the zones' expected population
MOST_OF_DIRECTORY = 0.5  # or above half of every reachable contact …
DIRECTORY_MIN = 1000  # … in a directory big enough for that share to mean "the public"


@dataclass
class BlastRadius:
    recipients: int
    expected: int | None
    directory: int
    reasons: list[str] = field(default_factory=list)

    @property
    def needs_reason(self) -> bool:
        return bool(self.reasons)


def phone_texts(alert: Alert) -> list[dict[str, Any]]:
    """Per language: what the phone shows, its encoding and parts."""
    out = []
    for lang, body in sorted(alert.texts.items()):
        def fill(match: Any) -> str:
            name, default = match.group(1).lower(), match.group(2)
            if name in {"codigo", "code"}:
                return alert.reply_code
            if name in {"referencia", "reference"}:
                return alert.reference
            return default if default is not None else match.group(0)

        shown = mode_prefix(alert.mode, lang) + PLACEHOLDER.sub(fill, body)
        info = analyze(shown)
        out.append({"language": lang, "text": shown, "encoding": info.encoding, "parts": info.parts,
                    "left": info.units_left_in_last,
                    "personalised": any(m.group(1).lower() not in ALERT_FIELDS for m in PLACEHOLDER.finditer(body))})
    return out


def preview_alert(session: Session, alert: Alert) -> targeting.Preview:
    spec = targeting.TargetSpec.from_json(alert.target or {})
    texts = {lang: mode_prefix(alert.mode, lang) + body for lang, body in alert.texts.items()}
    return targeting.preview(session, spec, languages=texts)


def blast_radius(session: Session, alert: Alert, preview: targeting.Preview) -> BlastRadius:
    """Whether the target is far beyond what its zones and the directory suggest."""
    names = list((alert.target or {}).get("zones") or [])
    expected = None
    if names:
        expected = session.scalar(select(func.sum(Zone.expected_population)).where(
            Zone.name.in_(names), Zone.is_current, Zone.expected_population.is_not(None)))
    directory = int(session.scalar(select(func.count()).select_from(Contact).where(
        Contact.opted_out_at.is_(None))) or 0)
    result = BlastRadius(preview.total, int(expected) if expected else None, directory)
    if expected and preview.total > OVER_EXPECTED * expected:
        result.reasons.append(f"{preview.total:,} recipients is more than {OVER_EXPECTED}× the zones' expected "
                              f"population ({int(expected):,})")
    if directory >= DIRECTORY_MIN and preview.total > MOST_OF_DIRECTORY * directory:
        result.reasons.append(f"{preview.total:,} recipients is most of the directory ({directory:,} contacts)")
    return result


def submit_for_approval(session: Session, alert_id: int, composer: Actor) -> Alert:
    """Pin the zone versions into the target, then `lifecycle.submit_alert` (which fixes the hash)."""
    alert = lifecycle.get_alert(session, alert_id, lock=True)
    target = dict(alert.target or {})
    if target.get("zones"):
        record = targeting.resolution_record(session, targeting.TargetSpec.from_json(target))
        if target.get("zone_versions") != record["zone_versions"]:
            target["zone_versions"] = record["zone_versions"]
            lifecycle.update_draft(session, alert_id, {"target": target}, composer)
    if corrections.prearmed(session, alert_id) is None:
        corrections.set_prearmed_texts(session, alert_id, None, None, composer)
    if alert.mode is AlertMode.LIVE:
        targeting.require_nonempty(preview_alert(session, alert), alert.mode)
    return lifecycle.submit_alert(session, alert_id, composer)


def approve_reviewed(session: Session, alert_id: int, approver: Actor, *, seen_hash: str,
                     override_reason: str | None) -> Alert:
    """Approve after the review: a blast-radius warning needs a reason (recorded with the approval)."""
    alert = lifecycle.get_alert(session, alert_id, lock=True)
    reason = (override_reason or "").strip() or None
    if alert.mode is AlertMode.LIVE:
        radius = blast_radius(session, alert, preview_alert(session, alert))
        if radius.needs_reason and not reason:
            raise InvalidInput("this target is far larger than expected: say why it is right",
                               fields={"override_reason": "; ".join(radius.reasons)})
    return corrections.approve_alert(session, alert_id, approver, seen_hash=seen_hash, override_reason=reason)


POINTS_LIMIT = 5000  # a map of more dots says nothing more; the count beside it says how many


def recipient_points(session: Session, alert: Alert, *, limit: int = POINTS_LIMIT) -> dict[str, Any]:
    """Located recipients as GeoJSON points with a `status` for colouring, at most `limit`.

    Once deliveries exist, each delivery's contact locations, with status ack / no / help / poll (the
    latest answer), else no_answer (handed to a carrier), failed, or pending. Before that, the
    located, not opted-out contacts inside the target's zones (pinned versions): what the zones
    reach before groups, criteria and exclusions narrow it, which is the blast radius to look at.
    """
    if session.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert.id).limit(1)):
        rows = session.execute(text("""
            SELECT ST_X(l.geom), ST_Y(l.geom),
                   CASE WHEN r.meaning IN ('ack', 'no', 'help', 'poll') THEN r.meaning
                        WHEN d.state IN ('submitted', 'delivered') THEN 'no_answer'
                        WHEN d.state IN ('failed', 'expired') THEN 'failed'
                        ELSE 'pending' END
              FROM deliveries d JOIN contact_locations l ON l.contact_id = d.contact_id
              LEFT JOIN LATERAL (SELECT meaning FROM replies WHERE delivery_id = d.id
                                  AND meaning IN ('ack', 'no', 'help', 'poll') ORDER BY id DESC LIMIT 1) r ON true
             WHERE d.alert_id = :a ORDER BY d.id LIMIT :limit
        """), {"a": alert.id, "limit": limit}).all()
    else:
        target = alert.target or {}
        names = list(target.get("zones") or [])
        pinned = dict(target.get("zone_versions") or {})
        rows = session.execute(text("""
            SELECT ST_X(l.geom), ST_Y(l.geom), 'targeted'
              FROM zones z JOIN contact_locations l ON ST_Intersects(z.geom, l.geom)
              JOIN contacts c ON c.id = l.contact_id AND c.opted_out_at IS NULL
             WHERE z.name = ANY(:names)
               AND (z.version = (CAST(:pinned AS jsonb) ->> z.name)::int
                    OR (NOT CAST(:pinned AS jsonb) ? z.name AND z.is_current))
             LIMIT :limit
        """), {"names": names, "pinned": json.dumps(pinned), "limit": limit}).all() if names else []
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]},
                 "properties": {"status": status}} for x, y, status in rows]
    return {"type": "FeatureCollection", "features": features, "truncated": len(features) >= limit}
