from datetime import timedelta

import pytest
from sqlalchemy import select, text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, InvalidTransition, Refused, TwoPersonRuleViolated
from alerting.base.models import Alert, AlertMode, AlertState, Delivery, DeliveryState, Priority
from alerting.base.models.alerts import TRANSITIONS, check_transition
from audit.actor import Actor


@pytest.fixture
def people(db, factories):
    factories.audience_group(db, "brigadas")
    composer = factories.OperatorFactory(roles=["composer"])
    approver = factories.OperatorFactory(roles=["approver"])
    second = factories.OperatorFactory(roles=["approver"])
    both = factories.OperatorFactory(roles=["composer", "approver"])
    factories.SenderFactory(name="SIRENA-SC")
    act = factories.actor_for
    return {"composer": act(composer), "approver": act(approver), "second": act(second), "both": act(both)}


def draft(**overrides):
    values = dict(texts={"es": "Evacuar Zona Norte. Responda ACK {codigo}"}, mode=AlertMode.LIVE,
                  sender_name="SIRENA-SC", target={"groups": ["brigadas"]})
    values.update(overrides)
    return AlertDraft(**values)


def pending(db, people, **overrides):
    alert = lifecycle.compose(db, draft(**overrides), people["composer"])
    return lifecycle.submit(db, alert.id, people["composer"])


def test_compose_creates_a_draft_with_reference_and_reply_code(db, people):
    alert = lifecycle.compose(db, draft(), people["composer"])
    assert alert.state is AlertState.DRAFT
    assert alert.reference.startswith("A-") and alert.reference.endswith(f"{alert.id:06d}")
    assert alert.reply_code.isdigit() and len(alert.reply_code) == 4


def test_compose_refuses_unknown_sender_and_empty_text_naming_fields(db, people):
    with pytest.raises(InvalidInput) as err:
        lifecycle.compose(db, draft(texts={"es": "  "}, sender_name="NOPE"), people["composer"])
    assert set(err.value.details["fields"]) == {"texts", "texts.es", "sender"}


def test_compose_refuses_placeholder_without_default(db, people):
    with pytest.raises(InvalidInput) as err:
        lifecycle.compose(db, draft(texts={"es": "Hola {nombre}, evacuar"}), people["composer"])
    assert "{nombre}" in err.value.details["fields"]["texts.es"]


def test_compose_refuses_a_schedule_in_the_past(db, people):
    with pytest.raises(InvalidInput) as err:
        lifecycle.compose(db, draft(scheduled_at=utcnow() - timedelta(minutes=1)), people["composer"])
    assert err.value.details["fields"]["scheduled_at"] == "is in the past"


def test_exercise_may_only_target_drill_groups(db, people, factories):
    with pytest.raises(InvalidInput) as err:
        lifecycle.compose(db, draft(mode=AlertMode.EXERCISE, target={"zones": ["Centro"], "groups": ["brigadas"]}),
                      people["composer"])
    fields = err.value.details["fields"]
    assert "target.zones" in fields and "brigadas" in fields["target.groups"]


def test_auditor_cannot_compose(db, factories):
    auditor = factories.actor_for(factories.OperatorFactory(roles=["auditor"]))
    factories.SenderFactory(name="SIRENA-SC")
    with pytest.raises(Refused):
        lifecycle.compose(db, draft(), auditor)


def test_same_idempotency_key_returns_the_same_alert(db, people):
    first = lifecycle.compose(db, draft(idempotency_key="k-1"), people["composer"])
    again = lifecycle.compose(db, draft(idempotency_key="k-1"), people["composer"])
    assert first.id == again.id
    assert db.scalar(select(Alert.id).where(Alert.idempotency_key == "k-1")) == first.id


def test_composer_cannot_approve_own_alert(db, people):
    alert = pending(db, people)
    with pytest.raises(TwoPersonRuleViolated):
        lifecycle.approve(db, alert.id, people["composer"], seen_hash=alert.approval_hash)
    own = pending(db, {**people, "composer": people["both"]})
    with pytest.raises(Refused):  # composer lacks the role; an approver-composer still cannot approve
        lifecycle.approve(db, own.id, people["both"], seen_hash=own.approval_hash)
    assert db.get(Alert, alert.id).state is AlertState.PENDING_APPROVAL


def test_second_operator_approves_and_fan_out_is_queued(db, people, redis_db):
    alert = pending(db, people)
    lifecycle.approve(db, alert.id, people["approver"], seen_hash=alert.approval_hash)
    db.commit()
    assert alert.state is AlertState.APPROVED
    assert alert.approved_by_id == people["approver"].operator_id
    from rq import Queue
    from rq.serializers import JSONSerializer

    jobs = Queue("normal", connection=redis_db, serializer=JSONSerializer).job_ids
    assert f"fan-out-{alert.id}" in jobs


def test_live_flash_needs_two_different_approvers(db, people):
    alert = pending(db, people, priority=Priority.FLASH)
    lifecycle.approve(db, alert.id, people["approver"], seen_hash=alert.approval_hash)
    assert alert.state is AlertState.PENDING_APPROVAL
    with pytest.raises(TwoPersonRuleViolated):
        lifecycle.approve(db, alert.id, people["approver"], seen_hash=alert.approval_hash)
    lifecycle.approve(db, alert.id, people["second"], seen_hash=alert.approval_hash)
    assert alert.state is AlertState.APPROVED


def test_an_edit_voids_the_approval(db, people):
    alert = pending(db, people, priority=Priority.FLASH)
    lifecycle.approve(db, alert.id, people["approver"], seen_hash=alert.approval_hash)
    lifecycle.edit(db, alert.id, {"texts": {"es": "Evacuar Zona Sur. ACK {codigo}"}}, people["composer"])
    assert alert.state is AlertState.DRAFT and alert.approval_hash is None
    lifecycle.submit(db, alert.id, people["composer"])
    lifecycle.approve(db, alert.id, people["approver"], seen_hash=alert.approval_hash)
    assert alert.state is AlertState.PENDING_APPROVAL  # the earlier approval no longer counts


def test_approval_of_a_changed_alert_is_refused(db, people):
    alert = pending(db, people)
    seen = alert.approval_hash
    alert.texts = {"es": "otro texto"}  # changed behind the approver's back
    with pytest.raises(Refused, match="changed since"):
        lifecycle.approve(db, alert.id, people["approver"], seen_hash=seen)


def test_scheduled_alert_waits_in_scheduled(db, people, redis_db):
    alert = pending(db, people, scheduled_at=utcnow() + timedelta(hours=1))
    lifecycle.approve(db, alert.id, people["approver"], seen_hash=alert.approval_hash)
    assert alert.state is AlertState.SCHEDULED


def test_reject_needs_a_reason_and_allows_revision(db, people):
    alert = pending(db, people)
    with pytest.raises(InvalidInput):
        lifecycle.reject(db, alert.id, people["approver"], " ")
    lifecycle.reject(db, alert.id, people["approver"], "zona equivocada")
    assert alert.state is AlertState.REJECTED
    lifecycle.edit(db, alert.id, {"title": "corregida"}, people["composer"])
    assert alert.state is AlertState.DRAFT


def test_cancel_purges_unsent_deliveries_in_one_statement(db, people, factories):
    alert = pending(db, people)
    lifecycle.approve(db, alert.id, people["approver"], seen_hash=alert.approval_hash)
    for i, state in enumerate([DeliveryState.QUEUED, DeliveryState.SUBMITTED, DeliveryState.WAITING_ROUTE]):
        db.add(Delivery(alert_id=alert.id, msisdn=f"+5699000000{i}", state=state))
    db.flush()
    lifecycle.cancel(db, alert.id, people["approver"], "falsa alarma")
    states = sorted(s.value for s in db.scalars(select(Delivery.state).where(Delivery.alert_id == alert.id)))
    assert states == ["cancelled", "cancelled", "submitted"]


@pytest.mark.parametrize("start", list(AlertState))
@pytest.mark.parametrize("target", list(AlertState))
def test_every_illegal_transition_is_refused(start, target):
    alert = Alert(state=start, reference="A-X")
    if target in TRANSITIONS[start]:
        check_transition(alert, target)
    else:
        with pytest.raises(InvalidTransition, match=f"is {start.value}; it cannot become {target.value}"):
            check_transition(alert, target)


def test_approving_a_draft_is_an_invalid_transition(db, people):
    alert = lifecycle.compose(db, draft(), people["composer"])
    with pytest.raises(InvalidTransition, match="not pending approval"):
        lifecycle.approve(db, alert.id, people["approver"], seen_hash="0" * 64)


def test_system_actor_is_not_an_approver(db, people):
    alert = pending(db, people)
    with pytest.raises(Refused):
        lifecycle.approve(db, alert.id, Actor(kind="operator", name="x", roles=frozenset({"composer"})),
                      seen_hash=alert.approval_hash)


def test_a_text_beyond_255_parts_is_refused_at_compose(db, people):
    with pytest.raises(InvalidInput) as err:
        lifecycle.compose(db, draft(texts={"es": "á" * (67 * 255 + 1)}), people["composer"])
    assert "256 parts" in err.value.details["fields"]["texts.es"]


def _authors(db, alert_id):
    return sorted(db.execute(text("SELECT o.username, a.role FROM alert_authors a JOIN operators o "
                                  "ON o.id = a.operator_id WHERE a.alert_id = :a"), {"a": alert_id}).all())


def test_whoever_edited_someone_elses_draft_is_an_author_and_cannot_approve_it(db, people):
    alert = lifecycle.compose(db, draft(), people["composer"])
    lifecycle.edit(db, alert.id, {"texts": {"es": "EVACUEN INMEDIATAMENTE. ACK {codigo}"}}, people["both"])
    lifecycle.submit(db, alert.id, people["composer"])
    with pytest.raises(TwoPersonRuleViolated, match="composed, edited or submitted"):
        lifecycle.approve(db, alert.id, people["both"], seen_hash=alert.approval_hash)
    assert alert.state is AlertState.PENDING_APPROVAL
    assert _authors(db, alert.id) == sorted([(people["composer"].name, "composer"), (people["both"].name, "editor"),
                                             (people["composer"].name, "submitter")])
    lifecycle.approve(db, alert.id, people["approver"], seen_hash=alert.approval_hash)  # a third person may
    assert alert.state is AlertState.APPROVED


def test_whoever_submitted_an_alert_cannot_approve_it(db, people):
    alert = lifecycle.compose(db, draft(), people["composer"])
    lifecycle.submit(db, alert.id, people["both"])
    with pytest.raises(TwoPersonRuleViolated):
        lifecycle.approve(db, alert.id, people["both"], seen_hash=alert.approval_hash)


def test_whoever_rewrote_the_pre_armed_correction_cannot_approve_the_alert(db, people):

    alert = lifecycle.compose(db, draft(), people["composer"])
    lifecycle.set_correction_texts(db, alert.id, {"es": "Era un simulacro mal enviado"}, None, people["both"])
    lifecycle.submit(db, alert.id, people["composer"])
    with pytest.raises(TwoPersonRuleViolated):
        lifecycle.approve(db, alert.id, people["both"], seen_hash=alert.approval_hash)


def test_an_approval_must_name_the_version_it_approves(db, people):
    alert = pending(db, people)
    for missing in (None, "", "  "):
        with pytest.raises(InvalidInput) as err:
            lifecycle.approve(db, alert.id, people["approver"], seen_hash=missing)
        assert "seen_hash" in err.value.details["fields"]
    with pytest.raises(Refused, match="changed since"):
        lifecycle.approve(db, alert.id, people["approver"], seen_hash="0" * 64)
    assert alert.state is AlertState.PENDING_APPROVAL
