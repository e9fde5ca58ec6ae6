"""Fan-out chunks count contacts, not ids: the first chunk is never an empty stretch of ids."""

from __future__ import annotations

from sqlalchemy import func, select, text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base.models import Alert, AlertMode, Delivery, Priority
from broadcast import jobs
from geo.targeting import next_contact_range
from tests.factories import actor_for, add_member

# Far above anything the tests' sequence reaches, with gaps wider than any chunk.
IDS = [9_000_001, 9_000_002, 9_400_000, 9_900_000]


def _alert_to(db, factories, group) -> int:
    factories.SenderFactory(name="SIRENA-SC")
    composer = actor_for(factories.OperatorFactory(username="fan-writer", roles=["composer"]))
    approver = actor_for(factories.OperatorFactory(username="fan-approver", roles=["approver"]))
    alert = lifecycle.compose(db, AlertDraft(texts={"es": "Evacuar"}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                         priority=Priority.HIGH, target={"groups": [group.name]}), composer)
    lifecycle.submit(db, alert.id, composer)
    lifecycle.approve(db, alert.id, approver, seen_hash=alert.approval_hash)
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


def _committed_alert(contacts: int) -> int:
    """`contacts` contacts in group brigadas and an approved live alert to it, all committed."""
    from alerting.base.db import transaction
    from alerting.base.models import Sender, SenderKind
    from tests.cluster import approved_alert, seed_group

    with transaction() as s:
        s.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4000", active=True, test_route=True))
    seed_group(contacts)
    return approved_alert({"es": "Evacuar el sector norte."})


def _queued_batch_ranges(redis_db, alert_id: int) -> list[tuple[int, int]]:
    from rq import Queue
    from rq.serializers import JSONSerializer

    q = Queue("high", connection=redis_db, serializer=JSONSerializer)
    return [tuple(j.args[1:]) for j in q.get_jobs() if j.func_name == "broadcast.jobs.send_batch"
            and j.args[0] == alert_id]


def test_two_lanes_at_once_write_every_contact_once_and_queue_every_row(committed_db, redis_db, monkeypatch):
    """The lanes write their chunks at the same time (two threads, two connections, real commits):
    every contact gets one delivery, every delivery is in a queued batch, fan-out ends once."""
    import threading

    from alerting.base.db import transaction
    monkeypatch.setattr(jobs, "FIRST_CHUNK_CONTACTS", 100)
    monkeypatch.setattr(jobs, "CHUNK_CONTACTS", 400)
    alert_id = _committed_alert(3000)
    jobs.fan_out(alert_id)  # the first chunk
    errors: list[BaseException] = []

    def lane() -> None:
        try:
            for _ in range(20):
                jobs.fan_out(alert_id)
        except BaseException as exc:
            errors.append(exc)

    lanes = [threading.Thread(target=lane) for _ in range(jobs.FAN_OUT_LANES)]
    for t in lanes:
        t.start()
    for t in lanes:
        t.join()
    assert errors == []
    with transaction() as s:
        rows = s.execute(select(Delivery.id, Delivery.msisdn).where(Delivery.alert_id == alert_id)).all()
        alert = s.get(Alert, alert_id)
        assert alert.fanout_done
        assert s.scalar(select(func.count()).select_from(select(Delivery.contact_id).where(
            Delivery.alert_id == alert_id).distinct().subquery())) == 3000
        left = s.execute(text("SELECT count(*) FROM fanout_chunks")).scalar_one()
    assert len(rows) == len({m for _, m in rows}) == 3000
    assert left == 0
    ranges = _queued_batch_ranges(redis_db, alert_id)
    assert all(any(lo <= i <= hi for lo, hi in ranges) for i, _ in rows)


def test_a_chunk_claimed_by_a_run_that_died_is_written_by_the_next(committed_db, redis_db, monkeypatch):
    from alerting.base.db import transaction
    monkeypatch.setattr(jobs, "FIRST_CHUNK_CONTACTS", 100)
    monkeypatch.setattr(jobs, "CHUNK_CONTACTS", 400)
    alert_id = _committed_alert(1000)
    jobs.fan_out(alert_id)
    with transaction() as s:  # a run that claimed its chunk and died before writing it
        assert jobs._claim_next_chunk(s, s.get(Alert, alert_id, with_for_update=True))
    for _ in range(5):
        jobs.fan_out(alert_id)
    with transaction() as s:
        assert s.get(Alert, alert_id).fanout_done
        assert _deliveries(s, alert_id) == 1000


def test_a_cancel_while_a_chunk_is_claimed_leaves_no_queued_row(committed_db, redis_db, monkeypatch):
    from alerting.base.db import transaction
    from tests.cluster import operators

    monkeypatch.setattr(jobs, "FIRST_CHUNK_CONTACTS", 100)
    monkeypatch.setattr(jobs, "CHUNK_CONTACTS", 400)
    alert_id = _committed_alert(1000)
    jobs.fan_out(alert_id)
    with transaction() as s:
        assert jobs._claim_next_chunk(s, s.get(Alert, alert_id, with_for_update=True))
    _, approver = operators("-cancel-lane")
    with transaction() as s:
        lifecycle.cancel(s, alert_id, approver, "zona equivocada")
    jobs._write_pending_chunk(alert_id)
    jobs.fan_out(alert_id)
    with transaction() as s:
        assert jobs.counts_by_state(s, alert_id) == {"cancelled": 100}


def test_the_reconciler_tells_one_alerts_fan_out_jobs_from_anothers():
    from alerting.base.job_ids import has_fan_out as has_fan_out_job

    assert has_fan_out_job(["fan-out-12"], 12)
    assert has_fan_out_job(["send-12-1-500", "fan-out-12-110000"], 12)
    assert has_fan_out_job(["fan-out-12-rc1764288000000"], 12)
    assert not has_fan_out_job(["fan-out-123-110000", "fan-out-1"], 12)  # alert 12 would never be re-queued
