"""Claims and outcomes against the real database: what a carrier answered is recorded exactly."""

from __future__ import annotations

from sqlalchemy import text

from alerting.base import runtime
from alerting.base.db import transaction
from broadcast import carrier_facts, claims, jobs
from broadcast.carriers import parse_carriers
from tests.cluster import approved_alert, seed_group
from tests.conftest import carriers_toml, sim_env

# Message ids as carriers may spell them: the record statement carries them as array literals,
# so quotes, backslashes, commas, braces and the word NULL must all come back as sent.
ODD_IDS = [['a"b'], ["c\\d", "e,f"], ["{g}", "NULL", " h "]]


def _claimed(n: int, *, worker: str, lease_s: int = claims.LEASE_S) -> tuple[int, list[claims.Claimed]]:
    """An approved live alert to n contacts, its deliveries written and leased to `worker`."""
    carrier_facts.sync(parse_carriers(carriers_toml({"alpha": 2775, "beta": 2776}), sim_env()))  # its sender
    seed_group(n)
    alert_id = approved_alert({"es": "Simulacro"})
    jobs.fan_out(alert_id, queue_jobs=False)
    with transaction() as s:
        lo, hi = s.execute(text("SELECT min(id), max(id) FROM deliveries WHERE alert_id = :a"),
                           {"a": alert_id}).one()
        return alert_id, claims.claim_batch(s, alert_id, lo, hi, worker=worker, lease_s=lease_s)


def test_outcomes_are_recorded_with_every_message_id_as_the_carrier_gave_it(committed_db, redis_db):
    alert_id, claimed = _claimed(4, worker="w1")
    assert len(claimed) == 4
    ids = [c.id for c in claimed]
    outcomes = [claims.Outcome(i, "submitted", "alpha", "alpha-1", mids, len(mids))
                for i, mids in zip(ids, ODD_IDS, strict=False)]
    outcomes.append(claims.Outcome(ids[3], "failed", "alpha", "alpha-1", error_code="0x45",
                                   error_reason='refused "now"', possible_duplicates=1))
    with transaction() as s:
        # A row another worker holds is not touched.
        assert claims.record_outcomes(s, [claims.Outcome(ids[0], "failed")], worker="w2") == 0
        assert claims.record_outcomes(s, outcomes, worker="w1") == 4
    with transaction() as s:
        rows = {r.id: r for r in s.execute(text(
            "SELECT id, state, message_ids, parts, error_code, error_reason, possible_duplicates, claimed_by "
            "FROM deliveries WHERE alert_id = :a"), {"a": alert_id})}
        parts = dict(s.execute(text("SELECT msg_key, delivery_id FROM message_parts WHERE carrier = 'alpha'")).all())
    for delivery_id, mids in zip(ids, ODD_IDS, strict=False):
        assert rows[delivery_id].state == "submitted"
        assert rows[delivery_id].message_ids == mids
        assert rows[delivery_id].claimed_by is None
        for mid in mids:
            assert parts[mid.lower().lstrip("0")] == delivery_id  # receipts find them by that key
    failed = rows[ids[3]]
    assert (failed.state, failed.message_ids, failed.error_code, failed.error_reason, failed.possible_duplicates) \
        == ("failed", None, "0x45", 'refused "now"', 1)


def test_the_lease_heartbeat_skips_rows_being_recorded_instead_of_waiting_for_them(committed_db, redis_db):
    # A record locks its slice's rows in the order the carriers answered; a heartbeat that waited
    # for them, holding others, deadlocked with it (the victim's rows then stayed leased for ever).
    alert_id, claimed = _claimed(4, worker="w1", lease_s=5)
    ids = [c.id for c in claimed]
    recording = runtime.current().engine.connect()
    try:
        recording.begin()
        recording.execute(text("SELECT id FROM deliveries WHERE id = :i FOR NO KEY UPDATE"), {"i": ids[0]})
        with transaction() as s:
            s.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would fail this test, not hang it
            renewed = claims.renew_leases(s, worker="w1", lease_s=600)
    finally:
        recording.rollback()
        recording.close()
    assert renewed == 3  # every lease but the one in the other transaction's hands
    with transaction() as s:
        long = s.execute(text("SELECT count(*) FROM deliveries WHERE alert_id = :a AND lease_until > "
                              "now() + interval '60 seconds'"), {"a": alert_id}).scalar_one()
    assert long == 3
