"""Flash first, at any moment (issue 17): the gateway's flash lane, fan-out that skips to a group's
members, and chunks that stay fast on a directory PostgreSQL has never analyzed."""

from __future__ import annotations

import time

from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base.db import transaction
from alerting.base.models import AlertMode, AlertState, Priority
from broadcast import jobs
from tests.cluster import approved_alert, operators, seed_group, state_of, wait_until


def flash_alert(group: str, text_es: str = "EVACUAR YA: incendio forestal.") -> int:
    """A live flash alert to `group`, composed, submitted and approved by two approvers (its minimum)."""
    composer, first = operators(f"-fl-{time.monotonic_ns()}")
    _, second = operators(f"-fl2-{time.monotonic_ns()}")
    with transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": text_es}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                            priority=Priority.FLASH, target={"groups": [group]}), composer)
        lifecycle.submit(s, alert.id, composer)
    for approver in (first, second):
        with transaction() as s:
            lifecycle.approve(s, alert.id, approver, seen_hash=alert.approval_hash)
    return alert.id


def carriers(simulator):  # type: ignore[no-untyped-def]
    """The simulator's carriers; their senders registered (what compose and approval check)."""
    from broadcast import carrier_facts
    from broadcast.carriers import parse_carriers
    from tests.conftest import carriers_toml, sim_env

    config = parse_carriers(carriers_toml(simulator.ports()), sim_env())
    carrier_facts.sync(config)
    return config


def lane_gateway(simulator):  # type: ignore[no-untyped-def]
    from broadcast.gateway import Gateway

    return Gateway(carriers(simulator), name="gw-lane-test")


def test_a_flash_alert_leaves_through_the_lane_while_no_rq_worker_takes_anything(committed_db, redis_db,
                                                                                  simulator):
    """No RQ worker runs at all (as when every one is deep in a fan-out chunk, or Redis hangs): the
    gateway's lane alone fans the flash alert out and sends it, once to each phone; a routine alert
    approved at the same time is left to the queues."""
    seed_group(300, group="evacuar", prefix="+5697")
    seed_group(200, group="vecinos", prefix="+5698")
    gateway = lane_gateway(simulator)
    gateway.start()
    try:
        routine = approved_alert({"es": "Corte de agua mañana."}, group="vecinos", priority=Priority.NORMAL)
        flash = flash_alert("evacuar")
        approved = time.monotonic()
        wait_until(lambda: state_of(flash) is AlertState.COMPLETED, 30, "the flash alert to complete")
        took = time.monotonic() - approved
    finally:
        gateway.stop()
    got = simulator.messages_by_recipient()
    assert sorted(got) == sorted(f"5697{i:07d}" for i in range(1, 301)), "every phone once, nobody else"
    assert all(texts == ["EVACUAR YA: incendio forestal."] for texts in got.values())
    assert state_of(routine) is AlertState.APPROVED, "the lane touched a routine alert"
    waiting = {name: Queue(name, connection=redis_db, serializer=JSONSerializer).count for name in ("flash", "normal")}
    assert waiting["flash"] >= 1 and waiting["normal"] >= 1, f"the jobs were run by someone: {waiting}"
    print(f"flash alert to 300 sent by the lane alone in {took:.2f} s")


def test_a_flash_alert_to_a_group_imported_last_is_written_by_its_first_fan_out_run(committed_db, redis_db,
                                                                                     simulator):
    """A brigade imported after 25,000 other contacts: the first fan-out run (the one whose batches
    carry the first SMS) writes the brigade, instead of 10,000 contacts nobody targeted."""
    carriers(simulator)
    seed_group(25_000, group="vecinos", prefix="+5698")
    seed_group(40, group="brigada-nueva", prefix="+5697")
    flash = flash_alert("brigada-nueva")
    jobs.fan_out(flash)  # the first run, as a worker or the flash lane runs it
    with transaction() as s:
        written, done = s.execute(text(
            "SELECT (SELECT count(*) FROM deliveries WHERE alert_id = :a), fanout_done FROM alerts WHERE id = :a"),
            {"a": flash}).one()
    assert written == 40
    assert done, "nothing is left to write after the brigade's last member"


def test_fan_out_on_a_directory_never_analyzed_takes_seconds_not_minutes(committed_db, redis_db, simulator):
    """A city just seeded (statistics as of the empty tables, as after an import with autovacuum
    off or not yet round): a target of a zone and a group is written in a few seconds. With the
    planner's nested loop the 50,000-contact chunk alone compared every contact with every hit."""
    from alerting.interfaces.demo import city
    from audit.actor import Actor

    carriers(simulator)
    with transaction() as s:
        city.seed_city(s, 60_000, Actor.system("test"))
    composer, approver = operators("-stale")
    with transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": "Crecida del río."}, mode=AlertMode.LIVE,
                                            sender_name="SIRENA-SC", priority=Priority.HIGH,
                                            target={"zones": ["Zona de inundación"], "groups": ["brigadas"]}),
                              composer)
        lifecycle.submit(s, alert.id, composer)
    with transaction() as s:
        lifecycle.approve(s, alert.id, approver, seen_hash=alert.approval_hash)
    started = time.monotonic()
    runs = 0
    while True:
        jobs.fan_out(alert.id)
        runs += 1
        with transaction() as s:
            done, written, expected = s.execute(text("""
                SELECT a.fanout_done, (SELECT count(*) FROM deliveries WHERE alert_id = a.id),
                       (SELECT count(DISTINCT c.id) FROM contacts c
                          LEFT JOIN contact_locations l ON l.contact_id = c.id
                          JOIN zones z ON z.name = 'Zona de inundación' AND z.is_current
                         WHERE ST_Intersects(z.geom, l.geom)
                            OR c.id IN (SELECT contact_id FROM group_members m JOIN groups g ON g.id = m.group_id
                                         WHERE g.name = 'brigadas'))
                  FROM alerts a WHERE a.id = :a"""), {"a": alert.id}).one()
        if done or runs > 20:
            break
    took = time.monotonic() - started
    assert done and written == expected
    assert took < 10, f"fan-out of {written:,} took {took:.1f} s"
