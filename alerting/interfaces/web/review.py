"""What an approver sees before approving, and the checks the console adds around the lifecycle.

- `phone_texts`: each language exactly as a handset shows it (mode prefix, reply code and
  reference filled, a shared code's keyword in the reply instruction; contact fields shown with
  their defaults), with encoding and parts.
- `recipient_points`: the located recipients on the review map.
The rules every interface shares (blast radius, zone versions pinned at submission, the recipients
count) are in alerting/alerts/audience.py and guards.py, applied by alerting/alerts/lifecycle.py.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from alerting.base.models import Alert, Delivery
from alerting.base.sms_text.encoding import analyze
from alerting.base.sms_text.rendering import is_personalised, render, texts_for_phones


def phone_texts(alert: Alert, keyword: str | None) -> list[dict[str, Any]]:
    """Per language: what the phone shows (with a shared code's `keyword` in the reply instruction,
    contact fields at their defaults), its encoding and parts."""
    out = []
    for lang, body in sorted(texts_for_phones(alert, keyword).items()):
        shown = render(body, mode=alert.mode, language=lang, code=alert.reply_code, reference=alert.reference)
        info = analyze(shown)
        out.append({"language": lang, "text": shown, "encoding": info.encoding, "parts": info.parts,
                    "left": info.units_left_in_last,
                    "personalised": is_personalised(body)})
    return out


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
             WHERE d.alert_id = :a AND d.state <> 'next_number'  -- a person once: the number last tried
             ORDER BY d.id LIMIT :limit
        """), {"a": alert.id, "limit": limit}).all()
    else:
        target = alert.target or {}
        names = list(target.get("zones") or [])
        pinned = dict(target.get("zone_versions") or {})
        # Through each zone version's cell covering (geo.cells), as targeting does: the points
        # of inside ranges need no test, those of boundary ranges the exact one.
        rows = session.execute(text("""
            SELECT ST_X(l.geom), ST_Y(l.geom), 'targeted'
              FROM zones z JOIN zone_cells zc ON zc.zone_id = z.id
              CROSS JOIN LATERAL (SELECT p.contact_id, p.geom FROM contact_locations p
                                   WHERE p.cell BETWEEN zc.lo AND zc.hi ORDER BY p.cell OFFSET 0) l
              JOIN contacts c ON c.id = l.contact_id AND c.opted_out_at IS NULL
             WHERE z.name = ANY(:names)
               AND (z.version = (CAST(:pinned AS jsonb) ->> z.name)::int
                    OR (NOT CAST(:pinned AS jsonb) ? z.name AND z.is_current))
               AND (zc.inside OR _ST_Intersects(z.geom, l.geom))
             LIMIT :limit
        """), {"names": names, "pinned": json.dumps(pinned), "limit": limit}).all() if names else []
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]},
                 "properties": {"status": status}} for x, y, status in rows]
    return {"type": "FeatureCollection", "features": features, "truncated": len(features) >= limit}
