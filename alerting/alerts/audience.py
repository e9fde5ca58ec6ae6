"""Who an alert reaches, as the approver must see it before approving, and the rules on that
audience (FIELD.md req. 7):

- `preview_alert`: the target's preview now; a correction or cancellation notice (kind
  correction/cancel referencing an original) goes to the original's deliveries, not to a target,
  and its preview counts those (that audience was approved with the original);
- `blast_radius`: the recipients against the zones' expected population and the size of the
  directory; a target far beyond them needs a written reason at approval;
- `count_tolerance`: how far the recipients count may drift between submission and approval
  (max(1 % of it, 10)) before the composer must submit again;
- `sender_capacity`: a long number's daily cap left today and its TPS, against the alert's parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerting.base.models import Alert, AlertKind, Contact, Delivery, Sender
from alerting.base.models.zones import Zone
from alerting.base.sms_text.rendering import mode_prefix
from broadcast import allowance
from geo import targeting
from geo.preview import Preview, estimate_sms

DRIFT_SHARE = 0.01  # opt-outs, imports and replies move an audience while it waits for approval …
DRIFT_MIN = 10  # … by up to max(1 % of the submitted count, 10) without voiding the approval
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


def is_correction(alert: Alert) -> bool:
    """A correction or cancellation notice of another alert: it goes to that alert's deliveries."""
    return alert.kind is not AlertKind.ALERT and alert.corrects_alert_id is not None


def preview_alert(session: Session, alert: Alert) -> targeting.Preview:
    """Who the alert reaches now: its target's preview, or for a correction the original's deliveries."""
    texts = {lang: mode_prefix(alert.mode, lang) + body for lang, body in alert.texts.items()}
    if is_correction(alert):
        return _original_audience(session, alert, texts)
    spec = targeting.TargetSpec.from_json(alert.target or {})
    return targeting.preview(session, spec, languages=texts, mode=alert.mode, priority=alert.priority)


def _original_audience(session: Session, alert: Alert, texts: dict[str, str]) -> Preview:
    rows = session.execute(select(Delivery.language, func.count())
                           .where(Delivery.alert_id == alert.corrects_alert_id).group_by(Delivery.language)).all()
    by_language = {str(lang or "es"): int(n) for lang, n in rows}
    total = sum(by_language.values())
    result = Preview(total=total, matched=total, removed_by_criteria=0, excluded=0, opted_out_excluded=0,
                     opted_out_included=0, include_opted_out=False, by_zone=[], by_group=[],
                     by_language=dict(sorted(by_language.items())), zone_versions={},
                     notes=["everyone the original reached or was queued to"])
    result.sms = estimate_sms(result.by_language, text=None, languages=texts)
    return result


def blast_radius(session: Session, alert: Alert, preview: targeting.Preview) -> BlastRadius:
    """Whether the target is far beyond what its zones and the directory suggest. A correction has
    no blast radius of its own: its audience is the original's, approved with the original."""
    if is_correction(alert):
        return BlastRadius(preview.total, None, 0)
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


def sender_capacity(session: Session, alert: Alert, preview: targeting.Preview) -> dict[str, Any] | None:
    """What the alert's sender can carry: a long number's daily cap against today's use by every
    gateway (broadcast.allowance) and its TPS, so the approver sees before approving that part of
    the alert would wait for tomorrow, or take long. None for a sender with neither limit."""
    sender = session.scalar(select(Sender).where(Sender.name == alert.sender_name))
    if sender is None or not (sender.daily_cap or sender.tps):
        return None
    parts = int((preview.sms or {}).get("total_sms") or preview.total)
    used = allowance.used_today(session, sender.name) if sender.daily_cap else 0
    left = max(sender.daily_cap - used, 0) if sender.daily_cap else None
    return {"sender": sender.name, "kind": sender.kind.value, "parts": parts, "tps": sender.tps,
            "seconds": round(parts / sender.tps, 1) if sender.tps else None, "daily_cap": sender.daily_cap,
            "used_today": used, "left_today": left,
            "over_cap_parts": max(parts - left, 0) if left is not None else 0}


def count_tolerance(submitted: int) -> int:
    """How far the recipients count may drift between submission and approval: max(1 %, 10)."""
    return max(math.ceil(submitted * DRIFT_SHARE), DRIFT_MIN)
