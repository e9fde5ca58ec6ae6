"""Pre-armed corrections: fixed by the approval, fired by one authorised operator, marked as corrections."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from alerting.alerts import audience, corrections, lifecycle, prearmed
from alerting.base import runtime
from alerting.base.errors import InvalidTransition, Refused, TwoPersonRuleViolated
from alerting.base.models import AlertApproval, AlertKind, AlertState, Delivery, DeliveryState, Priority
from tests.factories import actor_for


@pytest.fixture
def pending(db, factories):
    factories.SenderFactory(name="SIRENA-SC")
    composer = factories.OperatorFactory(roles=["composer"])
    approver = factories.OperatorFactory(roles=["approver"])
    group = factories.audience_group(db, members=2)
    alert = factories.AlertFactory(composed_by_id=composer.id, texts={"es": "Alerta real", "en": "Real alert"},
                                   target={"groups": [group.name]})
    lifecycle.set_correction_texts(db, alert.id, None, None, actor_for(composer))
    lifecycle.submit(db, alert.id, actor_for(composer))
    return alert, composer, approver


def test_default_texts_follow_the_alert_languages(db, pending):
    alert, _, _ = pending
    row = prearmed.prearmed(db, alert.id)
    assert set(row.correction_texts) == {"es", "en"} and row.armed_at is None


def test_approval_arms_the_correction(db, pending):
    alert, _, approver = pending
    lifecycle.approve(db, alert.id, actor_for(approver), seen_hash=alert.approval_hash)
    assert prearmed.prearmed(db, alert.id).armed_at is not None


def test_changing_the_texts_of_a_pending_alert_voids_its_approvals(db, pending, factories):
    alert, composer, approver = pending
    alert.required_approvals = 2
    db.flush()
    lifecycle.approve(db, alert.id, actor_for(approver), seen_hash=alert.approval_hash)
    assert db.query(AlertApproval).filter_by(alert_id=alert.id).count() == 1
    lifecycle.set_correction_texts(db, alert.id, {"es": "Otra corrección"}, None, actor_for(composer))
    assert db.query(AlertApproval).filter_by(alert_id=alert.id).count() == 0
    assert alert.state is AlertState.DRAFT


def test_texts_are_fixed_once_approved(db, pending):
    alert, composer, approver = pending
    lifecycle.approve(db, alert.id, actor_for(approver), seen_hash=alert.approval_hash)
    with pytest.raises(InvalidTransition):
        lifecycle.set_correction_texts(db, alert.id, {"es": "cambiada"}, None, actor_for(composer))


def test_a_composer_alone_cannot_fire(db, pending):
    alert, composer, approver = pending
    lifecycle.approve(db, alert.id, actor_for(approver), seen_hash=alert.approval_hash)
    with pytest.raises(Refused):
        corrections.fire_correction(db, alert.id, actor_for(composer))


def test_nothing_sent_nothing_to_correct(db, pending):
    alert, _, approver = pending
    with pytest.raises(InvalidTransition):
        corrections.fire_correction(db, alert.id, actor_for(approver))


def test_one_approver_fires_a_flash_correction_with_the_reference(db, pending, redis_db):
    alert, _, approver = pending
    lifecycle.approve(db, alert.id, actor_for(approver), seen_hash=alert.approval_hash)
    fix = corrections.fire_correction(db, alert.id, actor_for(approver))
    assert fix.kind is AlertKind.CORRECTION and fix.state is AlertState.APPROVED
    assert fix.corrects_alert_id == alert.id and fix.approved_by_id == approver.id
    assert alert.reference in fix.texts["es"] and "{referencia}" not in fix.texts["es"]
    assert alert.state is AlertState.SUPERSEDED


def test_a_typed_text_is_refused_in_one_step(db, pending, redis_db):
    alert, _, approver = pending
    lifecycle.approve(db, alert.id, actor_for(approver), seen_hash=alert.approval_hash)
    for fire in (corrections.fire_correction, corrections.fire_cancel_notice):
        with pytest.raises(Refused, match="pre-approved"):
            fire(db, alert.id, actor_for(approver), text="Vuelvan a sus casas")
    assert alert.state is AlertState.APPROVED and alert.superseded_by_id is None


@pytest.fixture
def sent(db, pending, factories, redis_db):
    """The pending alert approved, with one delivery delivered and one still queued."""
    alert, composer, approver = pending
    lifecycle.approve(db, alert.id, actor_for(approver), seen_hash=alert.approval_hash)
    alert.state = AlertState.SENDING
    for state in (DeliveryState.DELIVERED, DeliveryState.QUEUED):
        contact = factories.ContactFactory()
        db.add(Delivery(alert_id=alert.id, contact_id=contact.id, msisdn=contact.msisdn, language="es", state=state))
    db.flush()
    return alert, composer, approver


def test_a_typed_correction_waits_for_the_approvals_of_a_flash_alert(db, sent, factories):
    alert, composer, approver = sent
    fix = corrections.propose_correction(db, alert.id, "Vuelvan  a sus casas", actor_for(composer),
                                         kind=AlertKind.CANCEL)
    assert fix.state is AlertState.PENDING_APPROVAL and fix.kind is AlertKind.CANCEL
    assert fix.priority is Priority.FLASH and fix.required_approvals == 2 and fix.corrects_alert_id == alert.id
    assert fix.texts == {"es": f"ANULADA {alert.reference}: Vuelvan a sus casas",
                         "en": f"CANCELLED {alert.reference}: Vuelvan a sus casas"}
    assert alert.state is AlertState.SENDING  # the original goes on until the correction is approved
    assert audience.preview_alert(db, fix).total == 2  # its audience: the original's deliveries
    with pytest.raises(TwoPersonRuleViolated):
        lifecycle.approve(db, fix.id, actor_for(composer), seen_hash=fix.approval_hash)
    lifecycle.approve(db, fix.id, actor_for(approver), seen_hash=fix.approval_hash)
    assert fix.state is AlertState.PENDING_APPROVAL and alert.state is AlertState.SENDING  # one of two
    second = factories.OperatorFactory(roles=["approver"])
    lifecycle.approve(db, fix.id, actor_for(second), seen_hash=fix.approval_hash)
    assert fix.state is AlertState.APPROVED
    assert alert.state is AlertState.SUPERSEDED and alert.superseded_by_id == fix.id
    states = set(db.scalars(select(Delivery.state).where(Delivery.alert_id == alert.id)))
    assert states == {DeliveryState.DELIVERED, DeliveryState.CANCELLED}  # the unsent were purged


def test_one_correction_waits_for_approval_at_a_time(db, sent):
    alert, composer, _ = sent
    corrections.propose_correction(db, alert.id, "Primera versión", actor_for(composer))
    with pytest.raises(InvalidTransition, match="already waiting"):
        corrections.propose_correction(db, alert.id, "Segunda versión", actor_for(composer))


def test_a_proposal_needs_something_sent_and_a_text(db, pending):
    alert, composer, _ = pending
    with pytest.raises(InvalidTransition):
        corrections.propose_correction(db, alert.id, "Nada salió", actor_for(composer))


def test_a_proposed_correction_follows_the_configured_flash_approvals(db, sent, settings, monkeypatch):
    alert, composer, _ = sent
    monkeypatch.setattr(runtime, "_current", [replace(runtime.current(), settings=replace(
        settings, approvals=(("flash", 3), ("high", 1))))])
    fix = corrections.propose_correction(db, alert.id, "Texto nuevo", actor_for(composer))
    assert fix.required_approvals == 3


def test_the_pre_armed_correction_still_goes_at_once_while_a_typed_one_waits(db, sent):
    alert, composer, approver = sent
    typed = corrections.propose_correction(db, alert.id, "Texto nuevo", actor_for(composer))
    fix = corrections.fire_correction(db, alert.id, actor_for(approver))
    assert fix.state is AlertState.APPROVED and alert.superseded_by_id == fix.id
    assert typed.state is AlertState.PENDING_APPROVAL
