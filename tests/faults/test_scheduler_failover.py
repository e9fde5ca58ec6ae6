"""The scheduler SIGKILLed while a scheduled alert is due, with a standby scheduler running.

The schedule lives in Postgres (`alerts.scheduled_at`), not in RQ: whichever scheduler passes next
fires it. Two schedulers never fire it twice: each pass holds a Postgres advisory lock
(`alerting.interfaces.scheduler.exclusive_pass`), released by Postgres when its holder dies. Checked three
ways: one fan-out job ever queued for the alert (RQ keeps a finished job's key for its result TTL),
one `alert.sending_started` audit event, and nobody got the alert twice (bound 0).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base import db as dbmod
from alerting.base.db import utcnow
from alerting.base.models import AlertMode, Priority
from tests.cluster import approved_alert, operators, seed_group
from tests.faults.conftest import N
from tests.faults.rig import FaultRow, Stopwatch, check_recovered, record

pytestmark = pytest.mark.faults

DUE_IN_S = 6  # long enough for both schedulers and the worker to be up before it is due


def test_scheduler_killed_when_an_alert_is_due_standby_fires_it_once(cluster, simulator, committed_db, redis_db,
                                                                     request):
    seed_group(N)
    first, standby = cluster.scheduler(), cluster.scheduler()
    cluster.worker()
    composer, approver = operators("-sched")
    due = utcnow() + timedelta(seconds=DUE_IN_S)
    with dbmod.transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": "Simulacro de evacuacion a las 11:00. ACK {codigo}"},
                                            mode=AlertMode.LIVE, sender_name="SIRENA-SC", priority=Priority.HIGH,
                                            target={"groups": ["brigadas"]}, scheduled_at=due), composer)
        lifecycle.submit(s, alert.id, composer)
    with dbmod.transaction() as s:
        approved = lifecycle.approve(s, alert.id, approver, seen_hash=alert.approval_hash,
                                     override_reason="a fault test: the whole directory on purpose")
        assert approved.state.value == "scheduled"
    alert_id = alert.id
    time.sleep(max(0.0, (due - utcnow()).total_seconds()))
    clock = Stopwatch()  # from the due time
    cluster.kill(first)  # at the due moment: it may have fired already, or not yet
    cluster.wait_completed(alert_id)
    fan_outs = [k.decode() for k in redis_db.keys(f"rq:job:fan-out-{alert_id}*")]
    with dbmod.transaction() as s:
        started = s.scalar(text("SELECT count(*) FROM audit.events WHERE action = 'alert.sending_started' "
                                "AND subject_type = 'alert' AND subject_id = :a"), {"a": str(alert_id)})
        lateness = s.scalar(text("SELECT extract(epoch FROM sending_at - scheduled_at) FROM alerts WHERE id = :a"),
                            {"a": alert_id})
    assert len(fan_outs) == 1, f"the due alert was fired {len(fan_outs)} times: {fan_outs}"
    assert started == 1
    assert standby.poll() is None, "the standby scheduler died"
    result = check_recovered(simulator, alert_id, N, bound=0, settings=committed_db)
    record(request, FaultRow("scheduler killed when an alert is due", N, **result, bound=0, seconds=clock.seconds(),
                             notes=f"2 schedulers, one SIGKILLed at the due time; fired once, "
                                   f"{float(lateness):.1f} s after its time"))


SCHEDULER_DOWN_S = 60  # the minute


def test_scheduler_down_for_a_minute_alerts_still_send_and_the_due_one_fires_on_its_return(
        cluster, simulator, committed_db, redis_db, request):
    """The only scheduler SIGKILLed for 60 s. An alert approved meanwhile is fanned out, sent and completed
    by the workers alone (the scheduler reconciles, it does not send); a scheduled alert that comes due
    meanwhile fires when a scheduler passes again, once. Bound: 0 duplicates."""
    seed_group(N)
    seed_group(200, group="simulacro", prefix="+5697")
    scheduler = cluster.scheduler()
    cluster.worker()
    composer, approver = operators("-down")
    due = utcnow() + timedelta(seconds=SCHEDULER_DOWN_S / 3)
    with dbmod.transaction() as s:
        scheduled = lifecycle.compose(s, AlertDraft(texts={"es": "Prueba de sirenas a las 12:00."}, mode=AlertMode.LIVE,
                                                sender_name="SIRENA-SC", priority=Priority.NORMAL,
                                                target={"groups": ["simulacro"]}, scheduled_at=due), composer)
        lifecycle.submit(s, scheduled.id, composer)
    with dbmod.transaction() as s:
        approved = lifecycle.approve(s, scheduled.id, approver, seen_hash=scheduled.approval_hash,
                                     override_reason="a fault test: the whole directory on purpose")
        assert approved.state.value == "scheduled"
    time.sleep(2)
    cluster.kill(scheduler)
    down_at = time.monotonic()
    clock = Stopwatch()
    alert_id = approved_alert({"es": "Corte de agua en sector sur. ACK {codigo}"}, priority=Priority.HIGH)
    cluster.wait_completed(alert_id, timeout_s=SCHEDULER_DOWN_S - 5)
    sent_s = clock.seconds()
    with dbmod.transaction() as s:
        assert s.scalar(text("SELECT state FROM alerts WHERE id = :a"), {"a": scheduled.id}) == "scheduled", \
            "the scheduled alert fired with no scheduler running"
    time.sleep(max(0.0, SCHEDULER_DOWN_S - (time.monotonic() - down_at)))
    back = utcnow()
    cluster.scheduler()
    cluster.wait_completed(scheduled.id, timeout_s=60)
    with dbmod.transaction() as s:
        fired_after_s = float(s.scalar(text("SELECT extract(epoch FROM sending_at - :b) FROM alerts WHERE id = :a"),
                                       {"a": scheduled.id, "b": back}))
        late_s = float(s.scalar(text("SELECT extract(epoch FROM sending_at - scheduled_at) FROM alerts WHERE id = :a"),
                                {"a": scheduled.id}))
        started = s.scalar(text("SELECT count(*) FROM audit.events WHERE action = 'alert.sending_started' "
                                "AND subject_type = 'alert' AND subject_id = :a"), {"a": str(scheduled.id)})
    assert started == 1
    assert fired_after_s < 10, f"the due alert fired {fired_after_s:.1f} s after the scheduler came back"
    result = check_recovered(simulator, alert_id, N, bound=0, settings=committed_db, prefix="5699")
    check_recovered(simulator, scheduled.id, 200, bound=0, settings=committed_db, prefix="5697")
    record(request, FaultRow(f"scheduler down {SCHEDULER_DOWN_S} s", N, **result, bound=0, seconds=sent_s,
                             notes=f"an alert approved while it was down completed in {sent_s:.1f} s without it; "
                                   f"a scheduled alert due meanwhile fired {fired_after_s:.1f} s after a scheduler "
                                   f"started again ({late_s:.0f} s after its time), once"))
