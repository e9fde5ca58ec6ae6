"""Receipts yield to sending, replies never do: the held interpretation of receipts, over real Redis
queues and real SMPP (issue 19)."""

from __future__ import annotations

import time

import pytest
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import text

from alerting.base import job_ids
from alerting.base.db import transaction
from alerting.base.errors import ConfigError
from alerting.base.outbox import enqueue_now
from alerting.base.settings import Settings
from alerting.interfaces.cli.workers_cmd import _receipts_hook
from broadcast import replies
from broadcast.inbound import Coalescer, send_work_waiting
from tests.broadcast.inbound_rig import deliveries, inbound_rig, seed_alert, send, wait_inbound


def _a_send_batch_waits() -> None:
    enqueue_now("broadcast.jobs.send_batch", 1, 0, 499, queue="high", job_id="send-1-0-499")


def _wait_for(condition, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(condition())


def _outcomes() -> dict[str, int]:
    with transaction() as s:
        rows = s.execute(text("SELECT kind, count(*) FILTER (WHERE processed_at IS NOT NULL) FROM inbound_messages "
                              "GROUP BY kind")).all()
    return {kind: int(n) for kind, n in rows}


def test_receipts_are_held_while_send_batches_wait_and_replies_are_not(redis_db):
    _a_send_batch_waits()
    assert send_work_waiting()
    receipts_fired: list[tuple[int, int]] = []
    replies_fired: list[tuple[int, int]] = []
    held = Coalescer(lambda lo, hi: receipts_fired.append((lo, hi)), interval_s=0.05, hold=send_work_waiting)
    at_once = Coalescer(lambda lo, hi: replies_fired.append((lo, hi)), interval_s=0.05)
    held.poke([10, 12])
    at_once.poke([11])
    held.poke([14])
    assert _wait_for(lambda: replies_fired == [(11, 11)])
    time.sleep(0.5)
    assert receipts_fired == []  # the batch still waits
    Queue("high", connection=redis_db, serializer=JSONSerializer).empty()
    assert not send_work_waiting()
    assert _wait_for(lambda: receipts_fired == [(10, 14)])  # every id poked meanwhile, in one job


def test_a_held_receipt_waits_no_longer_than_its_bound(redis_db):
    _a_send_batch_waits()
    fired: list[tuple[int, int]] = []
    held = Coalescer(lambda lo, hi: fired.append((lo, hi)), interval_s=0.05, hold=send_work_waiting,
                     max_hold_s=0.5)
    held.poke([7])
    assert _wait_for(lambda: fired == [(7, 7)])
    assert send_work_waiting()  # fired with the batch still waiting: the bound, not the queue, let it go


def test_replies_and_receipts_jobs_each_take_only_their_own_rows(committed_db, redis_db):
    numbers = ["+56972000001", "+56972000002"]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers)
        assert send(gateway, alert_id)["submitted"] == 2
        sim.send_mo("alpha", numbers[0].lstrip("+"), "4242", "ACK")
        wait_inbound(sim, 3)
    got = replies.process_inbound(0, 10**9, "replies")
    assert (got["replies"], got["receipts"]) == (1, 0)
    assert _outcomes() == {"mo": 1, "receipt": 0}
    assert {d["state"] for d in deliveries(alert_id).values()} == {"submitted"}
    got = replies.process_inbound(0, 10**9, "receipts")
    assert (got["replies"], got["receipts"], got["receipts_matched"]) == (0, 2, 2)
    assert {d["state"] for d in deliveries(alert_id).values()} == {"delivered"}


def _age_inbound(seconds: int) -> None:
    """As if the stored rows had arrived `seconds` earlier (and nothing had read them)."""
    with transaction() as s:
        s.execute(text("UPDATE inbound_messages SET received_at = received_at - make_interval(secs => :s)"),
                  {"s": seconds})


def test_the_sweep_leaves_receipts_to_their_own_job_for_the_hold_and_takes_what_a_lost_job_left(
        committed_db, redis_db):
    numbers = ["+56972000011", "+56972000012"]
    with inbound_rig() as (sim, gateway):  # its store queues no job: as if Redis had lost them
        alert_id = seed_alert(numbers)
        send(gateway, alert_id)
        sim.send_mo("alpha", numbers[1].lstrip("+"), "4242", "AYUDA")
        wait_inbound(sim, 3)
    _age_inbound(10)
    replies.sweep()  # the scheduler's pass, every 5 s
    assert _outcomes() == {"mo": 1, "receipt": 0}  # the HELP is never left; receipts may be held 30 s
    _age_inbound(30)
    replies.sweep()
    assert _outcomes() == {"mo": 1, "receipt": 2}
    assert {d["state"] for d in deliveries(alert_id).values()} == {"delivered"}


def test_a_long_receipts_range_goes_on_behind_the_alerts_waiting(committed_db, redis_db, run_jobs, monkeypatch):
    """A receipts job takes a batch, then queues the rest of its range behind the waiting batches of
    the highest priority that has any: an alert approved during a backlog of receipts (a high one,
    a flash one) sends before the next slice of receipts; nothing is left over."""
    monkeypatch.setattr(replies, "RECEIPT_BATCH", 2)
    numbers = [f"+5697200002{i}" for i in range(5)]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers)
        send(gateway, alert_id)
        wait_inbound(sim, 5)
    queues = {name: Queue(name, connection=redis_db, serializer=JSONSerializer) for name in ("flash", "high")}
    enqueue_now("broadcast.jobs.send_batch", 8, 0, 499, queue="high", job_id="send-8-0-499")  # a high alert's
    assert replies.process_inbound(0, 10**9, "receipts")["receipts"] == 2
    rest = job_ids.process_inbound(0, 10**9, "receipts", 1).job_id
    assert (queues["flash"].job_ids, queues["high"].job_ids) == ([], ["send-8-0-499", rest])
    queues["high"].empty()
    enqueue_now("broadcast.jobs.send_batch", 9, 0, 499, queue="flash", job_id="send-9-0-499")  # a flash alert's
    assert replies.process_inbound(0, 10**9, "receipts", 1)["receipts"] == 2
    rest = job_ids.process_inbound(0, 10**9, "receipts", 2).job_id
    assert queues["flash"].job_ids == ["send-9-0-499", rest]
    queues["flash"].remove("send-9-0-499")  # (no gateway in this process to run it)
    run_jobs()
    assert _outcomes() == {"receipt": 5}
    assert {d["state"] for d in deliveries(alert_id).values()} == {"delivered"}


def test_the_hold_is_a_setting_zero_turns_it_off_and_a_tps_bound_sending_has_none(redis_db):
    assert Settings.from_env({}).receipts_max_hold_s == 30
    assert Settings.from_env({"SIRENA_RECEIPTS_MAX_HOLD_S": "0"}).receipts_max_hold_s == 0
    with pytest.raises(ConfigError, match="SIRENA_RECEIPTS_MAX_HOLD_S"):
        Settings.from_env({"SIRENA_RECEIPTS_MAX_HOLD_S": "half a minute"})
    _a_send_batch_waits()
    high = Queue("high", connection=redis_db, serializer=JSONSerializer)
    _receipts_hook(0)([5, 6])  # what `sirena worker` wires with SIRENA_RECEIPTS_MAX_HOLD_S=0
    assert _wait_for(lambda: len(high) == 2)  # queued at once, behind the batch already waiting
    assert high.job_ids == ["send-1-0-499", job_ids.process_inbound(5, 6, "receipts").job_id]
    # Held by default, but not while the carriers' TPS bounds the sending: the machine has room then.
    _receipts_hook(30, tps_bound=lambda: True)([7, 8])
    assert _wait_for(lambda: job_ids.process_inbound(7, 8, "receipts").job_id in high.job_ids)


def test_status_shows_what_is_stored_but_not_read_and_warns_when_a_reply_waits(committed_db, redis_db):
    import json

    from click.testing import CliRunner

    from alerting.interfaces.cli import _load

    numbers = ["+56972000031", "+56972000032"]
    with inbound_rig() as (sim, gateway):  # its store queues no interpretation: nothing reads them yet
        alert_id = seed_alert(numbers)
        send(gateway, alert_id)
        sim.send_mo("alpha", numbers[0].lstrip("+"), "4242", "AYUDA")
        wait_inbound(sim, 3)
    env = {"SIRENA_DATABASE_URL": committed_db.database_url, "SIRENA_REDIS_URL": committed_db.redis_url,
           "SIRENA_SECRET_KEY_FILE": str(committed_db.secret_key_file)}

    def status() -> dict:
        shown = CliRunner().invoke(_load(), ["status", "--json"], env=env)
        return json.loads(shown.output.strip().splitlines()[-1])

    now = status()
    assert (now["inbound"]["replies_unread"], now["inbound"]["receipts_unread"]) == (1, 2)
    assert not [p for p in now["problems"] if "not read" in p["what"]]  # seconds old: on their way
    def shift(seconds: int) -> list[str]:  # as if nothing had read them for that much longer
        _age_inbound(seconds)
        return sorted(p["what"] for p in status()["problems"] if "not read" in p["what"])

    late = shift(70)  # a reply is late after 60 s; a receipt after the hold (30 s) + 60 s
    assert len(late) == 1 and late[0].startswith("Replies stored but not read: 1, the oldest for 7")
    assert "a HELP among them reaches nobody" in late[0]
    late = shift(60)
    assert len(late) == 2 and late[0].startswith("Receipts stored but not read: 2, the oldest for 13")
    replies.sweep(min_age_s=0)
    after = status()
    assert (after["inbound"]["replies_unread"], after["inbound"]["receipts_unread"]) == (0, 0)
    assert not [p for p in after["problems"] if "not read" in p["what"]]
