"""Pre-armed corrections: fixed by the approval, fired by one authorised operator, marked as corrections."""

from __future__ import annotations

import pytest

from alerting import corrections, lifecycle
from alerting.errors import InvalidTransition, Refused
from alerting.models import AlertApproval, AlertKind, AlertState
from tests.factories import actor_for


@pytest.fixture
def pending(db, factories):
    factories.SenderFactory(name="SIRENA-SC")
    composer = factories.OperatorFactory(roles=["composer"])
    approver = factories.OperatorFactory(roles=["approver"])
    alert = factories.AlertFactory(composed_by_id=composer.id, texts={"es": "Alerta real", "en": "Real alert"})
    corrections.set_prearmed_texts(db, alert.id, None, None, actor_for(composer))
    lifecycle.submit_alert(db, alert.id, actor_for(composer))
    return alert, composer, approver


def test_default_texts_follow_the_alert_languages(db, pending):
    alert, _, _ = pending
    row = corrections.prearmed(db, alert.id)
    assert set(row.correction_texts) == {"es", "en"} and row.armed_at is None


def test_approval_arms_the_correction(db, pending):
    alert, _, approver = pending
    corrections.approve_alert(db, alert.id, actor_for(approver))
    assert corrections.prearmed(db, alert.id).armed_at is not None


def test_changing_the_texts_of_a_pending_alert_voids_its_approvals(db, pending, factories):
    alert, composer, approver = pending
    alert.required_approvals = 2
    db.flush()
    corrections.approve_alert(db, alert.id, actor_for(approver))
    assert db.query(AlertApproval).filter_by(alert_id=alert.id).count() == 1
    corrections.set_prearmed_texts(db, alert.id, {"es": "Otra corrección"}, None, actor_for(composer))
    assert db.query(AlertApproval).filter_by(alert_id=alert.id).count() == 0
    assert alert.state is AlertState.DRAFT


def test_texts_are_fixed_once_approved(db, pending):
    alert, composer, approver = pending
    corrections.approve_alert(db, alert.id, actor_for(approver))
    with pytest.raises(InvalidTransition):
        corrections.set_prearmed_texts(db, alert.id, {"es": "cambiada"}, None, actor_for(composer))


def test_a_composer_alone_cannot_fire(db, pending):
    alert, composer, approver = pending
    corrections.approve_alert(db, alert.id, actor_for(approver))
    with pytest.raises(Refused):
        corrections.fire_correction(db, alert.id, actor_for(composer))


def test_nothing_sent_nothing_to_correct(db, pending):
    alert, _, approver = pending
    with pytest.raises(InvalidTransition):
        corrections.fire_correction(db, alert.id, actor_for(approver))


def test_one_approver_fires_a_flash_correction_with_the_reference(db, pending, redis_db):
    alert, _, approver = pending
    corrections.approve_alert(db, alert.id, actor_for(approver))
    fix = corrections.fire_correction(db, alert.id, actor_for(approver))
    assert fix.kind is AlertKind.CORRECTION and fix.state is AlertState.APPROVED
    assert fix.corrects_alert_id == alert.id and fix.approved_by_id == approver.id
    assert alert.reference in fix.texts["es"] and "{referencia}" not in fix.texts["es"]
    assert alert.state is AlertState.SUPERSEDED


def test_a_typed_correction_is_always_marked_as_one(db, pending, redis_db):
    alert, _, approver = pending
    corrections.approve_alert(db, alert.id, actor_for(approver))
    fix = corrections.fire_cancel_notice(db, alert.id, actor_for(approver), text="Vuelvan a sus casas")
    assert fix.kind is AlertKind.CANCEL
    assert fix.texts["es"] == f"ANULADA {alert.reference}: Vuelvan a sus casas"
    assert fix.texts["en"].startswith(f"CANCELLED {alert.reference}: ")
