"""Fan-out chunks count contacts, not ids: the first chunk is never an empty stretch of ids."""

from __future__ import annotations

from sqlalchemy import func, select

from alerting.lifecycle import AlertDraft, approve_alert, compose_alert, submit_alert
from alerting.models import Alert, AlertMode, Delivery, Priority
from broadcast import jobs
from geo.targeting import next_contact_range
from tests.factories import actor_for, add_member

# Far above anything the tests' sequence reaches, with gaps wider than any chunk.
IDS = [9_000_001, 9_000_002, 9_400_000, 9_900_000]


def _alert_to(db, factories, group) -> int:
    factories.SenderFactory(name="SIRENA-SC")
    composer = actor_for(factories.OperatorFactory(username="fan-writer", roles=["composer"]))
    approver = actor_for(factories.OperatorFactory(username="fan-approver", roles=["approver"]))
    alert = compose_alert(db, AlertDraft(texts={"es": "Evacuar"}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                         priority=Priority.HIGH, target={"groups": [group.name]}), composer)
    submit_alert(db, alert.id, composer)
    approve_alert(db, alert.id, approver)
    db.flush()  # fan_out reads in a session of its own on the test's connection
    return alert.id


def _deliveries(db, alert_id: int) -> int:
    return db.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert_id))


def test_one_fan_out_reaches_everyone_when_ids_start_far_from_one(db, factories, redis_db):
    """After deletions, or on a database whose sequence has moved on, contact ids start high: the
    first chunk (10,000 contacts) still holds them, so the first SMS does not wait for later chunks."""
    group = factories.GroupFactory(name="bomberos")
    for contact_id in IDS:
        add_member(db, group, factories.ContactFactory(id=contact_id))
    alert_id = _alert_to(db, factories, group)
    jobs.fan_out(alert_id)
    db.expire_all()
    assert _deliveries(db, alert_id) == len(IDS)
    assert db.get(Alert, alert_id).fanout_done


def test_chunks_hold_the_next_contacts_in_id_order(db, factories, redis_db, monkeypatch):
    monkeypatch.setattr(jobs, "FIRST_CHUNK_CONTACTS", 2)
    monkeypatch.setattr(jobs, "CHUNK_CONTACTS", 1)
    group = factories.GroupFactory(name="bomberos")
    for contact_id in IDS:
        add_member(db, group, factories.ContactFactory(id=contact_id))
    assert next_contact_range(db, 0, 2) == (IDS[0], IDS[1])
    assert next_contact_range(db, IDS[1], 5) == (IDS[2], IDS[3])
    assert next_contact_range(db, IDS[3], 5) is None
    alert_id = _alert_to(db, factories, group)
    written = []
    for _ in range(3):
        jobs.fan_out(alert_id)
        db.expire_all()
        written.append(_deliveries(db, alert_id))
    assert written == [2, 3, 4]
    assert db.get(Alert, alert_id).fanout_done
