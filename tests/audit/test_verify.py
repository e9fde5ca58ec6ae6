"""Verifying the chain: a clean trail passes; every kind of tampering is caught and named.

Tampering uses a superuser connection with session_replication_role=replica, which skips the
append-only triggers: the strongest insider the design has to catch.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Engine, make_url

from alerting.base import db as dbmod
from alerting.base.db import transaction
from alerting.base.settings import Settings
from audit import verify
from audit.actor import Actor
from audit.checkpoints import checkpoint_after_commit, checkpoint_file, write_checkpoint
from audit.seal import seal_committed
from audit.trail import append

ANA = Actor(kind="operator", name="ana", operator_id=1, interface="console", address="10.0.0.1")


@pytest.fixture
def trail(committed_db: Settings, tmp_path: Path) -> Settings:
    """A committed database holding events 1..10, with checkpoints in this test's own directory."""
    with transaction() as session:
        for i in range(1, 11):
            append(session, actor=ANA, action="alert.edited", subject_type="alert", subject_id=i % 3,
                   payload={"i": i, "text": f"línea {i}", "raw": "tab\tnl\nback\\slash \u00e9 \U0001f525"},
                   reason="motivo\tcon\ttabs\r\ny \\N barra" if i == 3 else None)
    seal_committed(dbmod.engine())  # as the scheduler does
    return replace(committed_db, audit_checkpoint_dir=tmp_path / "checkpoints")


# Event 4 rewritten by someone who knows the hashing: its content hash and its hash are recomputed,
# so event 4 is consistent in itself, and only event 5's link shows it.
_CONTENT_4 = """audit.content_hash(at, actor_kind, actor_name, actor_operator_id, actor_token_id, 'alert.viewed',
    subject_type, subject_id, payload, origin_address, origin_user_agent, origin_interface, outcome, reason)"""
REWRITE_4 = f"""
    UPDATE audit.events SET action = 'alert.viewed', content_hash = {_CONTENT_4},
      hash = sha256(prev_hash || {_CONTENT_4} || int8send(seq))
    WHERE seq = 4"""


def _superuser(base_settings: Settings, own: Settings) -> Engine:
    url = make_url(base_settings.database_admin_url).set(database=make_url(own.database_url).database)
    return create_engine(url, poolclass=pool.NullPool)


def _tamper(base_settings: Settings, own: Settings, *statements: str) -> None:
    engine = _superuser(base_settings, own)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def _verify(own: Settings) -> verify.Verdict:
    return verify.verify_chain(dbmod.engine(), own)


def test_a_clean_trail_verifies_with_count_and_head(trail: Settings) -> None:
    verdict = _verify(trail)
    assert verdict.ok, verdict.problems
    assert verdict.count == 10
    assert verdict.rechecked == 0  # the COPY fast path confirmed every event by itself
    with transaction() as session:
        last = bytes(session.execute(text("SELECT hash FROM audit.events WHERE seq = 10")).scalar_one())
    assert (verdict.head.seq, verdict.head.hash) == (10, last)


def test_an_empty_trail_verifies(committed_db: Settings, tmp_path: Path) -> None:
    verdict = _verify(replace(committed_db, audit_checkpoint_dir=tmp_path))
    assert verdict.ok and verdict.count == 0 and verdict.head.seq == 0


def test_a_changed_payload_is_named(trail: Settings, base_settings: Settings) -> None:
    _tamper(base_settings, trail, """UPDATE audit.events SET payload = '{"i": 5, "text": "otra"}' WHERE seq = 5""")
    verdict = _verify(trail)
    assert not verdict.ok
    assert (verdict.first.kind, verdict.first.seq) == (verify.CHANGED_CONTENT, 5)
    assert "event 5 was changed" in verdict.first.message


def test_a_changed_time_is_named(trail: Settings, base_settings: Settings) -> None:
    _tamper(base_settings, trail, "UPDATE audit.events SET at = at - interval '1 hour' WHERE seq = 7")
    assert (_verify(trail).first.kind, _verify(trail).first.seq) == (verify.CHANGED_CONTENT, 7)


def test_a_rewritten_and_rehashed_event_breaks_the_next_link(trail: Settings, base_settings: Settings) -> None:
    _tamper(base_settings, trail, REWRITE_4)
    verdict = _verify(trail)
    assert (verdict.first.kind, verdict.first.seq) == (verify.BROKEN_LINK, 5)
    assert "does not link to event 4" in verdict.first.message


def test_a_deleted_middle_event_is_named(trail: Settings, base_settings: Settings) -> None:
    _tamper(base_settings, trail, "DELETE FROM audit.events WHERE seq = 5")
    verdict = _verify(trail)
    assert (verdict.first.kind, verdict.first.seq) == (verify.GAP, 5)
    assert "event 5 missing" in verdict.first.message


def test_reordered_events_are_named(trail: Settings, base_settings: Settings) -> None:
    _tamper(base_settings, trail,
            "UPDATE audit.events SET seq = -3 WHERE seq = 3",
            "UPDATE audit.events SET seq = 3 WHERE seq = 4",
            "UPDATE audit.events SET seq = 4 WHERE seq = -3")
    verdict = _verify(trail)
    assert (verdict.first.kind, verdict.first.seq) == (verify.REORDERED, 3)
    assert "event 3 is event 4 moved" in verdict.first.message


def test_a_deleted_tail_passes_without_a_checkpoint_and_is_caught_with_one(
    trail: Settings, base_settings: Settings
) -> None:
    write_checkpoint(dbmod.engine(), trail)
    _tamper(base_settings, trail, "DELETE FROM audit.events WHERE seq >= 9")
    verdict = _verify(trail)
    assert (verdict.first.kind, verdict.first.seq) == (verify.MISSING_AFTER_CHECKPOINT, 9)
    assert "events 9..10 are missing" in verdict.first.message
    # Without the checkpoint the remaining chain is internally valid: that is why checkpoints exist.
    checkpoint_file(trail, make_url(trail.database_url).database).unlink()
    assert _verify(trail).ok


def test_a_replaced_tail_mismatches_the_checkpoint(trail: Settings, base_settings: Settings) -> None:
    write_checkpoint(dbmod.engine(), trail)
    _tamper(base_settings, trail, "DELETE FROM audit.events WHERE seq >= 9")
    with transaction() as session:
        append(session, actor=ANA, action="alert.edited", payload={"i": 9})
        append(session, actor=ANA, action="alert.edited", payload={"i": 10})
    verdict = _verify(trail)
    assert (verdict.first.kind, verdict.first.seq) == (verify.CHECKPOINT_MISMATCH, 10)


def test_an_edited_checkpoint_is_reported(trail: Settings) -> None:
    cp = write_checkpoint(dbmod.engine(), trail)
    path = checkpoint_file(trail, cp.database)
    line = json.loads(path.read_text())
    line["seq"] = 8
    path.write_text(json.dumps(line) + "\n")
    verdict = _verify(trail)
    assert verdict.first.kind == verify.BAD_CHECKPOINT
    assert "signature does not match" in verdict.first.message


def test_a_checkpoint_after_commit_is_written_only_after_commit_and_names_the_new_event(trail: Settings) -> None:
    with pytest.raises(RuntimeError), transaction() as session:
        append(session, actor=ANA, action="alert.completed")
        checkpoint_after_commit(session, trail)
        raise RuntimeError("rolled back")
    path = checkpoint_file(trail, make_url(trail.database_url).database)
    assert not path.exists()
    with transaction() as session:
        append(session, actor=ANA, action="alert.completed")
        checkpoint_after_commit(session, trail)
        assert not path.exists()
    assert json.loads(path.read_text())["seq"] == 11  # sealed after the commit, then checkpointed
    assert _verify(trail).ok and _verify(trail).checkpoints == 1


def test_eight_concurrent_writers_make_one_unbroken_chain(committed_db: Settings, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(1000):
                with transaction() as session:
                    append(session, actor=Actor.system(f"writer-{n}"), action="test.appended", payload={"i": i})
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    verdict = _verify(replace(committed_db, audit_checkpoint_dir=tmp_path))
    assert verdict.ok, verdict.problems[:3]
    assert verdict.count == 8000 and verdict.head.seq == 8000




@pytest.mark.parametrize(("tamper", "kind", "seq"), [
    (None, None, None),
    ("DELETE FROM audit.events WHERE seq = 5", verify.GAP, 5),  # first event of the 2nd range
    (REWRITE_4, verify.BROKEN_LINK, 5),  # last event of the 1st range rewritten
    ("""UPDATE audit.events SET payload = '{"i": 0}' WHERE seq = 6""", verify.CHANGED_CONTENT, 6),
    ("DELETE FROM audit.events WHERE seq <= 2", verify.GAP, 1),
])
def test_worker_processes_sharing_a_snapshot_reach_the_same_verdict(
    trail: Settings, base_settings: Settings, tamper: str | None, kind: str | None, seq: int | None
) -> None:
    if tamper:
        _tamper(base_settings, trail, tamper)
    single = verify.verify_chain(dbmod.engine(), trail, workers=1)
    parallel = verify.verify_chain(dbmod.engine(), trail, workers=3, min_events_per_worker=1)
    assert parallel.workers == 3
    assert (parallel.count, parallel.head) == (single.count, single.head)
    assert [(p.kind, p.seq) for p in parallel.problems][:1] == [(p.kind, p.seq) for p in single.problems][:1]
    if kind is None:
        assert parallel.ok
    else:
        assert (parallel.first.kind, parallel.first.seq) == (kind, seq)


def test_periodic_checkpoint_is_written_only_when_due(trail: Settings) -> None:
    from audit.checkpoints import checkpoint_if_due

    first = checkpoint_if_due(dbmod.engine(), trail, every_s=3600)
    assert first is not None and first.seq == 10
    assert checkpoint_if_due(dbmod.engine(), trail, every_s=0) is None  # the head has not moved
    with transaction() as session:
        append(session, actor=ANA, action="alert.edited")
    assert checkpoint_if_due(dbmod.engine(), trail, every_s=3600) is None  # too soon
    later = checkpoint_if_due(dbmod.engine(), trail, every_s=0)
    assert later is not None and later.seq == 11
    assert _verify(trail).checkpoints == 2


def test_events_appended_concurrently_while_sealers_run_form_one_chain(
    committed_db: Settings, tmp_path: Path
) -> None:
    from audit.seal import seal_committed

    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def writer(n: int) -> None:
        try:
            for i in range(250):
                with transaction() as session:
                    append(session, actor=Actor.system(f"writer-{n}"), action="test.appended", payload={"i": i})
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    def sealer() -> None:
        try:
            while writing.is_set():
                seal_committed(dbmod.engine())
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    sealers = [threading.Thread(target=sealer) for _ in range(2)]
    for t in writers + sealers:
        t.start()
    for t in writers:
        t.join()
    writing.clear()
    for t in sealers:
        t.join()
    assert errors == []
    verdict = _verify(replace(committed_db, audit_checkpoint_dir=tmp_path))
    assert verdict.ok, verdict.problems[:3]
    assert verdict.count == 1000 and verdict.head.seq == 1000
    with transaction() as session:
        linked = session.execute(text("SELECT count(DISTINCT id) FROM audit.events WHERE seq IS NOT NULL")).scalar()
    assert linked == 1000


def test_an_unsealed_event_tampered_with_is_caught(trail: Settings, base_settings: Settings) -> None:
    with transaction() as session:
        event_id = append(session, actor=ANA, action="alert.approved", payload={"i": 11})
    _tamper(base_settings, trail, f"UPDATE audit.events SET action = 'alert.rejected' WHERE id = {event_id}")
    # Before it is sealed: its content no longer matches the content hash stored at insert.
    unsealed = verify.verify_chain(dbmod.engine(), trail, seal=False)
    assert unsealed.unsealed == 1 and unsealed.count == 10
    assert (unsealed.first.kind, unsealed.first.seq, unsealed.first.event_id) == (
        verify.CHANGED_CONTENT, None, event_id)
    assert f"unsealed event id {event_id} was changed" in unsealed.first.message
    # Sealing links what is stored; the changed content is still caught, now by its seq.
    sealed = _verify(trail)
    assert sealed.sealed == 1 and sealed.unsealed == 0
    assert (sealed.first.kind, sealed.first.seq) == (verify.CHANGED_CONTENT, 11)


def test_an_unsealed_event_is_sealed_and_checkpointed_by_verify_and_checkpoint(trail: Settings) -> None:
    with transaction() as session:
        append(session, actor=ANA, action="alert.approved")
    cp = write_checkpoint(dbmod.engine(), trail)
    assert cp.seq == 11
    verdict = _verify(trail)
    assert verdict.ok and verdict.sealed == 0 and verdict.head.seq == 11


@pytest.mark.parametrize("at", ["2026-11-27 14:00:00+00", "2026-11-27 14:00:00.5+00", "2026-11-27 14:00:00.12+00",
                                "2026-11-27 14:00:00.123456+00", "2026-11-27 14:00:00.00001+00"])
def test_the_time_as_copy_sends_it_is_rewritten_to_the_canonical_form(db, at: str) -> None:
    from audit import chain, scan

    db.execute(text("SET LOCAL timezone = 'UTC'"))
    sent, value = db.execute(text("SELECT CAST(:at AS timestamptz)::text, CAST(:at AS timestamptz)"), {"at": at}).one()
    assert scan._iso_utc_bytes(sent.encode()).decode() == chain.format_at(value)
