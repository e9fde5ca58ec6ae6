"""The pipeline end to end over real Redis, Postgres and SMPP to the simulator."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base.db import transaction
from alerting.base.models import Alert, AlertMode, AlertState, Priority
from broadcast import jobs
from tests.cluster import approved_alert, operators, seed_group, state_of


def test_alert_to_1000_contacts_reaches_each_phone_exactly_once(gateway, simulator, run_jobs):
    seed_group(1000)
    alert_id = approved_alert({"es": "Evacuar sector norte. Responda ACK {codigo}. 🚒",
                               "en": "Evacuate the north sector. Reply ACK {codigo}."})
    run_jobs()
    assert state_of(alert_id) is AlertState.COMPLETED
    got = simulator.messages_by_recipient()
    assert len(got) == 1000
    assert all(len(texts) == 1 for texts in got.values())
    with transaction() as s:
        code = s.scalar(select(Alert.reply_code).where(Alert.id == alert_id))
        counts = jobs.counts_by_state(s, alert_id)
    assert got["56990000005"] == [f"Evacuate the north sector. Reply ACK {code}."]
    assert got["56990000001"] == [f"Evacuar sector norte. Responda ACK {code}. 🚒"]
    assert counts == {"submitted": 1000}
    # The completion is sealed into the audit chain and a checkpoint of that head written outside
    # the database at once (cutting the tail after it would be caught).
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from alerting.base import runtime
    from audit.checkpoints import read_checkpoints

    settings = runtime.current().settings
    with transaction() as s:
        completed_seq = s.execute(text("SELECT seq FROM audit.events WHERE action = 'alert.completed' "
                                       "AND subject_id = :a"), {"a": str(alert_id)}).scalar_one()
    checkpoints, bad = read_checkpoints(settings, make_url(settings.database_url).database)
    assert bad == [] and checkpoints and checkpoints[-1].seq >= completed_seq


def test_each_recipient_gets_their_own_name_and_everyone_the_alert_code(gateway, simulator, run_jobs):
    seed_group(3)  # "Persona 1" … "Persona 3", unidad U1 … U3
    alert_id = approved_alert({"es": "Hola {nombre|vecino}, unidad {unidad|?}: responda ACK {codigo}."})
    run_jobs()
    with transaction() as s:
        code = s.scalar(select(Alert.reply_code).where(Alert.id == alert_id))
    assert simulator.messages_by_recipient() == {
        f"5699000000{i}": [f"Hola Persona {i}, unidad U{i}: responda ACK {code}."] for i in (1, 2, 3)}


def test_exercise_is_prefixed_and_only_uses_test_carriers(gateway, simulator, run_jobs):
    seed_group(20, group="simulacro", drill=True)
    alert_id = approved_alert({"es": "Simulacro de sismo en el cuartel."}, group="simulacro",
                              mode=AlertMode.EXERCISE)
    run_jobs()
    texts = [t for ts in simulator.messages_by_recipient().values() for t in ts]
    assert len(texts) == 20 and all(t.startswith("SIMULACRO: ") for t in texts)
    assert state_of(alert_id) is AlertState.COMPLETED


def test_an_exercise_with_no_test_carrier_left_reaches_only_the_drill_allowlist(committed_db, redis_db,
                                                                                  simulator, run_jobs):
    """The carriers file changed after approval (no carrier is marked test any more): the gateway,
    the last line, refuses every exercise SMS (audited), except to the SIRENA_DRILL_ALLOWLIST numbers."""
    from sqlalchemy import text

    from broadcast import carrier_facts
    from broadcast.carriers import parse_carriers
    from broadcast.gateway import Gateway
    from tests.conftest import carriers_toml, sim_env

    carrier_facts.sync(parse_carriers(carriers_toml(simulator.ports()), sim_env()))  # at approval: test carriers
    seed_group(5, group="simulacro", drill=True)
    alert_id = approved_alert({"es": "Simulacro de incendio."}, group="simulacro", mode=AlertMode.EXERCISE)
    live_only = parse_carriers(carriers_toml(simulator.ports(), test=False), sim_env())
    allowed = "+56990000003"
    gateway = Gateway(live_only, name="gw-live-only", drill_allowlist=frozenset({allowed}), flash_lane=False)
    gateway.start()
    try:
        run_jobs()
    finally:
        gateway.stop()
    assert simulator.messages_by_recipient() == {allowed.lstrip("+"): ["SIMULACRO: Simulacro de incendio."]}
    with transaction() as s:
        states = dict(s.execute(text("SELECT msisdn, coalesce(error_code, state) FROM deliveries WHERE alert_id = :a"),
                                {"a": alert_id}).all())
        refused = s.execute(text("SELECT outcome, payload->>'deliveries' FROM audit.events "
                                 "WHERE action = 'gateway.drill_refused'")).all()
    assert states.pop(allowed) == "submitted" and set(states.values()) == {"drill_no_test_route"}
    assert refused and all(o == "refused" for o, _ in refused) and sum(int(n) for _, n in refused) == 4


def test_cancel_mid_send_stops_the_rest(gateway, simulator, run_jobs, redis_db):
    seed_group(3000)
    alert_id = approved_alert({"es": "Corte de agua programado."}, priority=Priority.NORMAL)
    # fan-out only: materialize and queue batches, then cancel before any batch runs
    from rq import Queue
    from rq.serializers import JSONSerializer

    q = Queue("normal", connection=redis_db, serializer=JSONSerializer)
    fan = q.fetch_job(q.job_ids[0])
    jobs.fan_out(*fan.args)
    q.remove(fan)
    first_batch = next(j for j in q.get_jobs() if j.func_name == "broadcast.jobs.send_batch")
    jobs.send_batch(*first_batch.args)
    q.remove(first_batch)
    _, approver = operators("-cancel")
    with transaction() as s:
        lifecycle.cancel(s, alert_id, approver, "se suspendió el corte")
    run_jobs()
    with transaction() as s:
        counts = jobs.counts_by_state(s, alert_id)
    assert counts["submitted"] == simulator.submit_count() <= 1000
    assert counts["cancelled"] == 3000 - counts["submitted"]


def test_flash_batches_are_sent_before_queued_routine_ones(gateway, simulator, run_jobs, redis_db):
    seed_group(2000, group="vecinos", prefix="+5698")
    seed_group(50, group="bomberos", prefix="+5697")
    routine = approved_alert({"es": "Aviso de rutina."}, group="vecinos", priority=Priority.LOW)
    composer, approver = operators("-flash")
    with transaction() as s:
        flash = lifecycle.compose(s, AlertDraft(texts={"es": "EVACUAR YA"}, mode=AlertMode.LIVE,
                                            sender_name="SIRENA-SC", priority=Priority.HIGH,
                                            target={"groups": ["bomberos"]}), composer)
        lifecycle.submit(s, flash.id, composer)
    with transaction() as s:
        lifecycle.approve(s, flash.id, approver, seen_hash=flash.approval_hash)
    run_jobs()
    order = [m["dest"] for m in simulator.messages()]
    first_routine = next(i for i, d in enumerate(order) if d.startswith("5698"))
    flash_positions = [i for i, d in enumerate(order) if d.startswith("5697")]
    assert len(flash_positions) == 50 and max(flash_positions) < first_routine
    assert state_of(routine) is AlertState.COMPLETED and state_of(flash.id) is AlertState.COMPLETED
    assert Counter(order).most_common(1)[0][1] == 1


def test_a_delivery_back_for_another_attempt_goes_through_a_carrier_it_has_not_tried(gateway, simulator,
                                                                                      run_jobs):
    from sqlalchemy import text

    seed_group(20)
    alert_id = approved_alert({"es": "Corte de luz en sector sur"})
    jobs.fan_out(alert_id)  # deliveries written, send batches queued but not run yet
    with transaction() as s:  # as if an earlier attempt had gone to alpha and come back (no answer)
        s.execute(text("UPDATE deliveries SET carriers_tried = '{alpha}', attempts = 1 WHERE alert_id = :a "
                       "AND id % 2 = 0"), {"a": alert_id})
        s.execute(text("UPDATE deliveries SET carriers_tried = '{alpha,beta}', attempts = 2 WHERE alert_id = :a "
                       "AND id % 2 = 1"), {"a": alert_id})
    run_jobs()
    with transaction() as s:
        rows = s.execute(text("SELECT id % 2, carrier, state FROM deliveries WHERE alert_id = :a"),
                         {"a": alert_id}).all()
    assert {state for _, _, state in rows} == {"submitted"}
    assert {carrier for parity, carrier, _ in rows if parity == 0} == {"beta"}
    # Tried everywhere already: any carrier again, rather than none.
    assert len([1 for parity, _, _ in rows if parity == 1]) == 10
