"""The checks around submitting and approving that every interface shares (console, API, e-mail, CAP).

- `blast_radius`: the recipients count against the zones' expected population and the size of
  the directory; a target far beyond them needs a written reason (FIELD.md req. 7).
- `submit_for_approval` pins the zone versions into the target and counts the recipients before
  the approval hash is fixed over both, so what was approved is what fans out, even if a zone is
  redrawn meanwhile; a live alert with nobody to reach is refused with the breakdown saying why.
- `sender_capacity`: a long number's daily cap left today and its TPS, against the alert's parts.
- `approve_reviewed`: the recipients count must still be close to the one submitted (within
  `count_tolerance`: max(1 % of it, 10)), the blast-radius rule, then `corrections.approve_alert`
  (which arms the correction and cancellation with the same approval, and sends an approved
  correction in place of its original). Both counts are kept with the approval.

A correction or cancellation notice (kind correction/cancel referencing an original) goes to the
original's deliveries, not to its target: its preview counts those, and it has no blast radius
of its own (that audience was approved with the original).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerting.alerts import corrections, lifecycle
from alerting.base.errors import InvalidInput, Refused
from alerting.base.models import Alert, AlertKind, AlertMode, AlertState, Contact, Delivery, Sender
from alerting.base.models.zones import Zone
from alerting.base.sms_text.rendering import mode_prefix
from audit.actor import Actor
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


def submit_for_approval(session: Session, alert_id: int, composer: Actor) -> Alert:
    """Pin the zone versions into the target, then `lifecycle.submit_alert` (which fixes the hash).

    A live alert that reaches nobody is refused here (InvalidInput on `target`, with the breakdown),
    whichever way it came in: console, API, e-mail, CAP or a schedule.
    """
    alert = lifecycle.get_alert(session, alert_id, lock=True)
    target = dict(alert.target or {})
    if target.get("zones"):
        record = targeting.resolution_record(session, targeting.TargetSpec.from_json(target))
        if target.get("zone_versions") != record["zone_versions"]:
            target["zone_versions"] = record["zone_versions"]
            lifecycle.update_draft(session, alert_id, {"target": target}, composer)
    if corrections.prearmed(session, alert_id) is None:
        corrections.set_prearmed_texts(session, alert_id, None, None, composer)
    recipients = None
    if not is_correction(alert):  # a correction's audience grows while its original still fans out
        preview = preview_alert(session, alert)
        targeting.require_nonempty(preview, alert.mode)
        recipients = preview.total
    return lifecycle.submit_alert(session, alert_id, composer, recipients=recipients)


def count_tolerance(submitted: int) -> int:
    """How far the recipients count may drift between submission and approval: max(1 %, 10)."""
    return max(math.ceil(submitted * DRIFT_SHARE), DRIFT_MIN)


def approve_reviewed(session: Session, alert_id: int, approver: Actor, *, seen_hash: str | None,
                     override_reason: str | None = None) -> Alert:
    """Approve after the review (`seen_hash`: the approval hash the approver saw; required).

    The approval is bound to the audience: the target must still resolve to the count submitted,
    give or take `count_tolerance` (an opt-out or a new contact in the zone during an incident);
    beyond it the approval is Refused (audited) and the composer submits it again. Both counts
    are recorded with the approval. A blast-radius warning needs a reason (recorded with it).
    """
    seen_hash = lifecycle.require_seen_hash(seen_hash)
    alert = lifecycle.get_alert(session, alert_id, lock=True)
    reason = (override_reason or "").strip() or None
    if alert.state is not AlertState.PENDING_APPROVAL or is_correction(alert):
        return corrections.approve_alert(session, alert_id, approver, seen_hash=seen_hash, override_reason=reason)
    preview = preview_alert(session, alert)
    submitted = alert.submitted_recipients
    if submitted is not None and abs(preview.total - submitted) > count_tolerance(submitted):
        raise Refused(f"{alert.reference} was submitted for {submitted:,} recipients and its target now reaches "
                      f"{preview.total:,}, more than {count_tolerance(submitted):,} away; the composer must submit "
                      "it again before it can be approved", alert_id=alert_id, submitted_recipients=submitted,
                      recipients_now=preview.total)
    if alert.mode is AlertMode.LIVE:
        radius = blast_radius(session, alert, preview)
        if radius.needs_reason and not reason:
            raise InvalidInput("this target is far larger than expected: say why it is right",
                               fields={"override_reason": "; ".join(radius.reasons)})
    return corrections.approve_alert(session, alert_id, approver, seen_hash=seen_hash, override_reason=reason,
                                     recipients_now=preview.total)
