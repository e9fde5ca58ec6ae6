"""Approval rules every interface shares: approvals per priority, the recipients count in the hash."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select, text

from alerting.alerts import audience, drafts, lifecycle
from alerting.base import runtime
from alerting.base.errors import ConfigError, Refused
from alerting.base.models import AlertApproval, AlertMode, AlertState, Contact, GroupMember, Priority
from alerting.base.settings import Settings
from alerting.directory import contacts as directory
from audit.actor import Actor
from tests.factories import actor_for, add_member


@pytest.fixture
def brigade(db, factories):
    factories.SenderFactory(name="SIRENA-SC")
    group = factories.GroupFactory(name="brigadas")
    for _ in range(3):
        add_member(db, group, factories.ContactFactory())
    composer = factories.OperatorFactory(roles=["composer"])
    approvers = [factories.OperatorFactory(roles=["approver"]) for _ in range(3)]
    return group, actor_for(composer), [actor_for(a) for a in approvers]


def _submitted(db, composer, priority=Priority.HIGH, mode=AlertMode.LIVE):
    alert = lifecycle.compose(db, drafts.AlertDraft(
        texts={"es": "Evacuar. Responda ACK {codigo}"}, mode=mode, sender_name="SIRENA-SC", priority=priority,
        target={"groups": ["brigadas"]}), composer)
    return lifecycle.submit(db, alert.id, composer)


def test_approvals_per_priority_can_only_be_raised_naming_the_variable():
    assert Settings.from_env({"SIRENA_APPROVALS": "flash=3,high=2"}).required_approvals("high") == 2
    assert Settings.from_env({}).required_approvals("flash") == 2
    with pytest.raises(ConfigError, match="SIRENA_APPROVALS: flash=1 is below the built-in minimum flash=2"):
        Settings.from_env({"SIRENA_APPROVALS": "flash=1"})
    with pytest.raises(ConfigError, match=r"SIRENA_APPROVALS: .*priority=count"):
        Settings.from_env({"SIRENA_APPROVALS": "urgent=2"})
    with pytest.raises(ConfigError, match="SIRENA_APPROVALS"):
        Settings(approvals=(("flash", 1),)).validate()


def test_a_live_alert_needs_the_configured_approvals_fixed_at_submission(db, brigade, settings, monkeypatch):
    _, composer, (first, second, _) = brigade
    monkeypatch.setattr(runtime, "_current", [replace(runtime.current(), settings=replace(
        settings, approvals=(("flash", 3), ("high", 2))))])
    alert = lifecycle.compose(db, drafts.AlertDraft(
        texts={"es": "Evacuar"}, mode=AlertMode.LIVE, sender_name="SIRENA-SC", priority=Priority.NORMAL,
        target={"groups": ["brigadas"]}), composer)
    lifecycle.edit(db, alert.id, {"priority": Priority.HIGH}, composer)  # raised after composing
    lifecycle.submit(db, alert.id, composer)
    assert alert.required_approvals == 2
    lifecycle.approve(db, alert.id, first, seen_hash=alert.approval_hash)
    assert alert.state is AlertState.PENDING_APPROVAL
    lifecycle.approve(db, alert.id, second, seen_hash=alert.approval_hash)
    assert alert.state is AlertState.APPROVED
    assert drafts.required_approvals(Priority.FLASH, AlertMode.EXERCISE) == 1  # drill groups only
    assert drafts.required_approvals(Priority.FLASH, AlertMode.LIVE) == 3


def test_the_recipients_count_is_fixed_at_submission_and_in_the_hash(db, brigade):
    _, composer, _ = brigade
    alert = _submitted(db, composer)
    assert alert.submitted_recipients == 3
    bound = alert.approval_hash
    alert.submitted_recipients = 4
    assert drafts.approval_hash(alert) != bound
    alert.submitted_recipients = 3
    assert drafts.approval_hash(alert) == bound


def test_a_small_drift_in_the_count_keeps_the_approval_and_both_counts_are_recorded(db, brigade, factories):
    group, composer, (approver, _, _) = brigade
    for _ in range(17):  # 20 brigadiers: the tolerance is max(1 % of 20, 10) = 10
        add_member(db, group, factories.ContactFactory())
    alert = _submitted(db, composer)
    assert alert.submitted_recipients == 20
    one = db.scalar(select(Contact).join(GroupMember, GroupMember.contact_id == Contact.id)
                   .where(GroupMember.group_id == group.id).limit(1))
    directory.opt_out(db, one.msisdn, "BAJA", Actor.system("replies"))  # one replied BAJA meanwhile
    lifecycle.approve(db, alert.id, approver, seen_hash=alert.approval_hash)
    assert alert.state is AlertState.APPROVED
    row = db.scalar(select(AlertApproval).where(AlertApproval.alert_id == alert.id))
    assert (row.submitted_recipients, row.recipients_at_approval) == (20, 19)
    payload = db.execute(text("SELECT payload FROM audit.events WHERE action = 'alert.approved' "
                              "AND subject_id = :a"), {"a": str(alert.id)}).scalar_one()
    assert (payload["submitted_recipients"], payload["recipients_at_approval"]) == (20, 19)


def test_a_drift_beyond_the_tolerance_sends_the_alert_back_to_its_composer(db, brigade, factories):
    group, composer, (approver, _, _) = brigade
    for _ in range(17):
        add_member(db, group, factories.ContactFactory())
    alert = _submitted(db, composer)
    for _ in range(10):  # 20 → 30: exactly the tolerance
        add_member(db, group, factories.ContactFactory())
    add_member(db, group, factories.ContactFactory())  # 31: one beyond it
    with pytest.raises(Refused, match="submitted for 20 recipients and its target now reaches 31, more than 10 away"):
        lifecycle.approve(db, alert.id, approver, seen_hash=alert.approval_hash)
    assert alert.state is AlertState.PENDING_APPROVAL
    lifecycle.edit(db, alert.id, {}, composer)  # the composer submits it again
    lifecycle.submit(db, alert.id, composer)
    assert alert.submitted_recipients == 31
    lifecycle.approve(db, alert.id, approver, seen_hash=alert.approval_hash)
    assert alert.state is AlertState.APPROVED


def test_the_tolerance_is_one_percent_or_ten_recipients_whichever_is_larger():
    assert [audience.count_tolerance(n) for n in (0, 3, 200, 999, 1000, 1001, 48213)] == [10, 10, 10, 10, 10, 11, 483]
