"""Two approvals of one alert at the same instant, 100 rounds (RELIABILITY.md row 20).

Through the REST API (the real blueprint and its error boundary, on a committed database and real
Redis), two requests approve one pending alert at once, released together by a barrier: in half
the rounds two different approvers, in the other half one approver twice (two tabs, a retried
request). Exactly one request may move the alert (pending → approved, one fan-out job queued);
the other must be answered 409 and, like every refused privileged action, be in the audit trail.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base import db as dbmod
from alerting.base.models import AlertMode, Priority
from alerting.directory.accounts import create_token
from audit.actor import Actor
from tests.api.conftest import make_app
from tests.cluster import operators, seed_group
from tests.faults.rig import FaultRow, check_audit, record

pytestmark = pytest.mark.faults

ROUNDS = 100


def _pending_alert(composer: Actor) -> tuple[int, str]:
    with dbmod.transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": "Corte de luz programado."}, mode=AlertMode.LIVE,
                                            sender_name="SIRENA-SC", priority=Priority.HIGH,
                                            target={"groups": ["brigadas"]}), composer)
        lifecycle.submit(s, alert.id, composer)
        return alert.id, alert.approval_hash


def _approve(app, barrier: threading.Barrier, alert_id: int, seen: str, token: str,  # type: ignore[no-untyped-def]
             answers: list[tuple[int, float]]) -> None:
    """One approval request, sent the moment the other thread is ready to send its own."""
    client = app.test_client()
    barrier.wait()
    t0 = time.monotonic()
    response = client.post(f"/api/v1/alerts/{alert_id}/approve", json={"seen_hash": seen},
                           headers={"Authorization": f"Bearer {token}"})
    answers.append((response.status_code, time.monotonic() - t0))


def test_two_approvals_at_once_make_one_transition_and_every_attempt_is_audited(committed_db, redis_db, simulator,
                                                                               request):
    from broadcast import carrier_facts
    from broadcast.carriers import parse_carriers
    from tests.conftest import carriers_toml, sim_env

    seed_group(5)
    carrier_facts.sync(parse_carriers(carriers_toml(simulator.ports()), sim_env()))  # the sender has a route
    composer, first = operators("-race-a")
    _, second = operators("-race-b")
    with dbmod.transaction() as s:
        tokens = [create_token(s, who.name, ["read", "alerts:approve"], Actor.system("test"))[1]
                  for who in (first, second)]
    app = make_app(committed_db)
    statuses: Counter[tuple[int, ...]] = Counter()
    slowest = 0.0
    started = time.monotonic()
    for round_no in range(ROUNDS):
        alert_id, seen = _pending_alert(composer)
        pair = (tokens[0], tokens[1]) if round_no % 2 == 0 else (tokens[0], tokens[0])
        barrier = threading.Barrier(2)
        answers: list[tuple[int, float]] = []
        threads = [threading.Thread(target=_approve, args=(app, barrier, alert_id, seen, token, answers))
                   for token in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        statuses[tuple(sorted(code for code, _ in answers))] += 1
        slowest = max(slowest, *(took for _, took in answers))
    seconds = round(time.monotonic() - started, 1)
    with dbmod.transaction() as s:
        per_alert = s.execute(text("""
            SELECT a.id, a.state,
                   (SELECT count(*) FROM alert_approvals p WHERE p.alert_id = a.id),
                   (SELECT count(*) FROM audit.events e WHERE e.subject_type = 'alert' AND e.subject_id = a.id::text
                       AND e.action = 'alert.approved'),
                   (SELECT count(*) FROM audit.events e WHERE e.subject_type = 'alert' AND e.subject_id = a.id::text
                       AND e.outcome = 'refused')
              FROM alerts a ORDER BY a.id""")).all()
    fan_outs = {k.decode() for k in redis_db.keys("rq:job:fan-out-*")}
    assert len(per_alert) == ROUNDS
    assert statuses == Counter({(200, 409): ROUNDS}), f"answers per round: {dict(statuses)}"
    assert all(state == "approved" and approvals == 1 and approved == 1
               for _, state, approvals, approved, _ in per_alert), "an alert approved twice, or not at all"
    assert fan_outs == {f"rq:job:fan-out-{alert_id}" for alert_id, *_ in per_alert}, "a fan-out queued twice"
    audited_refusals = sum(refused for *_, refused in per_alert)
    assert audited_refusals == ROUNDS, f"{ROUNDS} refused attempts, {audited_refusals} in the audit trail"
    check_audit(committed_db)
    record(request, FaultRow("two approvals of one alert at once (100 rounds)", 0, 0, 0, 0, 0, seconds,
                             notes=f"REST API, half by two approvers, half by one approver twice: 1 transition "
                                   f"and 1 fan-out per alert, {ROUNDS} answers 409, {audited_refusals} refusals "
                                   f"audited; slowest answer {slowest:.2f} s"))
