"""The named checks an alert action passes before its one transition (alerting/alerts/lifecycle.py).

Each guard either returns (sometimes with what it found: the recipients counted, the reason given)
or raises the error an operator reads: InvalidInput naming the field, InvalidTransition, NotFound,
or Refused / TwoPersonRuleViolated, which the interfaces' error boundary audits. A service lists
its guards in the order an operator should hear about problems: who may act, on what state, then
what the alert says and whom it reaches.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.alerts.audience import blast_radius, count_tolerance, is_correction, preview_alert
from alerting.alerts.drafts import AlertDraft, approval_hash, authors_of
from alerting.alerts.quiet_hours import check_quiet_hours
from alerting.base import runtime
from alerting.base.errors import InvalidInput, InvalidTransition, Refused, TwoPersonRuleViolated
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import Alert, AlertApproval, AlertMode, AlertState, Sender
from alerting.base.models.alerts import check_transition
from alerting.base.settings import Settings
from alerting.directory import areas, permissions
from audit.actor import Actor
from geo import targeting
from geo.preview import Preview


def may(actor: Actor, action: str, what: str) -> None:
    """The actor's roles allow `action` (alerting/directory/permissions.py); Refused otherwise."""
    permissions.require(actor, action, what)


def within_area(session: Session, actor: Actor, target: dict[str, Any] | None, doing: str) -> None:
    """An operator bounded to an area (alerting/directory/areas.py) may aim only inside it: Refused
    naming the zones and groups out of bounds. Admins and the system are never bounded."""
    areas.require_within(session, actor, target, doing=doing)


def may_become(alert: Alert, state: AlertState) -> None:
    """The state machine allows the move (InvalidTransition naming both states)."""
    check_transition(alert, state)


def pending_approval(alert: Alert) -> None:
    if alert.state is not AlertState.PENDING_APPROVAL:
        raise InvalidTransition(f"alert {alert.reference} is {alert.state.value}, not pending approval",
                                alert_id=alert.id)


def not_an_author(session: Session, alert: Alert, approver: Actor) -> None:
    """Whoever composed, edited or submitted any version of the alert is not the second person:
    one stolen account must not be able to alert a city."""
    if approver.operator_id is not None and approver.operator_id in authors_of(session, alert.id):
        raise TwoPersonRuleViolated(f"{approver.name} composed, edited or submitted {alert.reference}; an author "
                                    "cannot approve it", alert_id=alert.id)


def an_operator(approver: Actor, alert: Alert) -> int:
    """Approvals are counted per operator: the system or an anonymous feed cannot give one."""
    if approver.operator_id is None:
        raise Refused("only an operator (or a token acting as one) can approve", alert_id=alert.id)
    return approver.operator_id


def seen_hash_given(seen_hash: str | None) -> str:
    """The hash the approver reviewed; InvalidInput naming `seen_hash` when it is missing: an
    approval always names the version it approves."""
    if not seen_hash or not seen_hash.strip():
        raise InvalidInput("seen_hash: required: the approval_hash of the version you reviewed",
                           fields={"seen_hash": "required: the approval_hash of the version you reviewed"})
    return seen_hash.strip()


def unchanged_since_review(alert: Alert, seen_hash: str) -> str:
    """What is approved is what was reviewed: the hash recomputed now, the one fixed at submission
    and the one the approver saw are the same. Returns it."""
    current = approval_hash(alert)
    if current != alert.approval_hash or seen_hash != current:
        raise Refused(f"alert {alert.reference} changed since it was shown; review it again", alert_id=alert.id)
    return current


def first_approval_by(session: Session, alert: Alert, operator_id: int) -> int:
    """One approval per operator; returns how many approvals the alert had before this one."""
    already = session.scalars(select(AlertApproval.operator_id).where(AlertApproval.alert_id == alert.id)).all()
    if operator_id in already:
        raise TwoPersonRuleViolated(f"you already approved {alert.reference}; another approver is needed",
                                    alert_id=alert.id)
    return len(already)


def has_route(session: Session, alert: Alert) -> None:
    """Refuse an approval that could only fail at send: no carrier carries the sender, or (exercise and
    test alerts, which go only through carriers marked `test`) no test carrier does."""
    sender = session.scalar(select(Sender).where(Sender.name == alert.sender_name))
    if sender is None or not sender.active:
        raise Refused(f'no route: sender "{alert.sender_name}" is not carried by any configured carrier',
                      alert_id=alert.id)
    if alert.mode is not AlertMode.LIVE and not sender.test_route:
        raise Refused(f'no route: {alert.mode.value} alerts go only through carriers marked test, and none '
                      f'carries sender "{alert.sender_name}"', alert_id=alert.id)


def target_exists(session: Session, draft: AlertDraft) -> None:
    """The target's shape is valid and every zone and group it names exists (InvalidInput naming
    the key, NotFound naming each unknown one). A correction's audience is its original's."""
    if draft.corrects_alert_id is not None and not draft.target:
        return
    settings = runtime.settings()
    spec = targeting.TargetSpec.from_json(draft.target, region=settings.default_region if settings else None)
    targeting.resolve(session, spec, coverings=False)


def outside_quiet_hours(draft: AlertDraft, override_reason: str | None) -> str | None:
    """A test or drill scheduled inside quiet hours needs a reason (InvalidInput on scheduled_at
    otherwise); returns the reason when one overrides them, for the audit trail."""
    if draft.scheduled_at is None or draft.mode is AlertMode.LIVE:
        return None
    settings = runtime.settings()
    tz = ZoneInfo(settings.timezone if settings is not None else Settings.timezone)
    config = settings.intake if settings is not None else IntakeConfig()
    check_quiet_hours(draft.mode, draft.scheduled_at, tz, config, override_reason)
    reason = (override_reason or "").strip()
    return reason or None


def reaches_someone(session: Session, alert: Alert) -> int | None:
    """A live alert with nobody to reach is refused (InvalidInput on `target`, with the breakdown);
    returns the recipients count, which the approval hash then covers. None for a correction,
    whose audience grows while its original still fans out."""
    if is_correction(alert):
        return None
    preview = preview_alert(session, alert)
    targeting.require_nonempty(preview, alert.mode)
    return preview.total


def audience_as_submitted(session: Session, alert: Alert) -> Preview | None:
    """The target must still reach the count submitted, give or take `count_tolerance` (an opt-out
    or a new contact in the zone during an incident); beyond it the approval is Refused and the
    composer submits again. Returns the preview (None for a correction: its audience is the
    original's, approved with it)."""
    if is_correction(alert):
        return None
    preview = preview_alert(session, alert)
    submitted = alert.submitted_recipients
    if submitted is not None and abs(preview.total - submitted) > count_tolerance(submitted):
        raise Refused(f"{alert.reference} was submitted for {submitted:,} recipients and its target now reaches "
                      f"{preview.total:,}, more than {count_tolerance(submitted):,} away; the composer must submit "
                      "it again before it can be approved", alert_id=alert.id, submitted_recipients=submitted,
                      recipients_now=preview.total)
    return preview


def blast_radius_explained(session: Session, alert: Alert, preview: Preview | None,
                           override_reason: str | None) -> str | None:
    """A live target far larger than its zones' population or most of the directory needs a
    written reason (InvalidInput on override_reason, saying why). Returns the reason given."""
    reason = (override_reason or "").strip() or None
    if preview is not None and alert.mode is AlertMode.LIVE and not reason:
        radius = blast_radius(session, alert, preview)
        if radius.needs_reason:
            raise InvalidInput("this target is far larger than expected: say why it is right",
                               fields={"override_reason": "; ".join(radius.reasons)})
    return reason


def reason_given(reason: str | None, what: str = "a rejection") -> str:
    if not reason or not reason.strip():
        raise InvalidInput(f"{what} needs a reason", fields={"reason": "required"})
    return reason.strip()
