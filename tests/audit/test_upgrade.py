"""A trail written before migration 0011_audit_seal (version 1: each event linked at insert) keeps
verifying after the upgrade, and the sealed events continue its chain."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from alerting.base import db as dbmod
from alerting.base.db import transaction
from alerting.base.settings import Settings
from audit import verify
from audit.actor import Actor
from audit.checkpoints import signing_key
from audit.export import CSV_COLUMNS_V1, Scope, verify_export, write_export
from audit.trail import append
from tests.conftest import upgraded_database

BEFORE = "0010_deliveries_no_fk"
_APPEND_V1 = text("SELECT audit.append_event('operator', 'ana', 1, NULL, :action, 'alert', '7', "
                  "CAST(:payload AS jsonb), '10.0.0.1', NULL, 'console', 'done', :reason)")


@pytest.fixture
def legacy(base_settings: Settings, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A database migrated to 0010 holding three version 1 events, then upgraded to the head."""
    def seed(conn: Any) -> None:
        for i, reason in ((1, None), (2, "tab\there"), (3, "back\\slash \\N")):
            conn.execute(_APPEND_V1, {"action": f"alert.step{i}", "payload": f'{{"alert_id": 7, "i": {i}}}',
                                      "reason": reason})

    with upgraded_database(base_settings, settings, "legacy", BEFORE, seed,
                           audit_checkpoint_dir=tmp_path / "checkpoints") as own:
        yield own


def _tamper(base_settings: Settings, own: Settings, statement: str) -> None:
    url = make_url(base_settings.database_admin_url).set(database=make_url(own.database_url).database)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(statement))
    engine.dispose()


def test_legacy_events_verify_after_the_upgrade_and_sealed_ones_continue_the_chain(legacy: Settings) -> None:
    assert verify.verify_chain(dbmod.engine(), legacy).count == 3
    with transaction() as session:
        for i in (4, 5):
            append(session, actor=Actor(kind="operator", name="ana", operator_id=1), action=f"alert.step{i}",
                   subject_type="alert", subject_id=7)
    verdict = verify.verify_chain(dbmod.engine(), legacy)
    assert verdict.ok, verdict.problems
    assert (verdict.count, verdict.head.seq, verdict.sealed) == (5, 5, 2)
    with transaction() as session:
        versions = session.execute(text("SELECT seq, content_hash IS NOT NULL, id FROM audit.events "
                                        "ORDER BY seq")).all()
    assert [tuple(v) for v in versions] == [(1, False, 1), (2, False, 2), (3, False, 3), (4, True, 4), (5, True, 5)]


def test_an_export_spanning_both_versions_verifies_and_an_old_format_export_still_does(
    legacy: Settings, tmp_path: Path
) -> None:
    with transaction() as session:
        append(session, actor=Actor.system("completion"), action="alert.completed", subject_type="alert", subject_id=7)
    verify.verify_chain(dbmod.engine(), legacy)  # seals
    path = tmp_path / "all.csv"
    with transaction() as session, path.open("w", newline="") as fh:
        assert write_export(session, Scope(since=datetime(2000, 1, 1, tzinfo=UTC)), "csv", fh, key=None).count == 4
    mixed = verify_export(path, engine=dbmod.engine(), key=None)
    assert mixed.ok and mixed.count == 4, mixed.problems
    # An export written before the upgrade had no content_hash column (and only version 1 events).
    rows = list(csv.DictReader(path.open(newline="")))[:3]
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS_V1, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    assert verify_export(old, engine=None, key=None).ok
    signed = tmp_path / "a7.json"
    with transaction() as session, signed.open("w") as fh:
        write_export(session, Scope(alert_ids=(7,)), "json", fh, key=signing_key(legacy))
    assert verify_export(signed, engine=dbmod.engine(), key=signing_key(legacy)).ok


def test_a_changed_legacy_event_is_still_named(legacy: Settings, base_settings: Settings) -> None:
    _tamper(base_settings, legacy, "UPDATE audit.events SET reason = 'otra' WHERE seq = 2")
    verdict = verify.verify_chain(dbmod.engine(), legacy)
    assert (verdict.first.kind, verdict.first.seq) == (verify.CHANGED_CONTENT, 2)
