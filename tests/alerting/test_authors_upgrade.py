"""Migration 0024_alert_authors: an alert pending approval at upgrade time gets its authors from the
composer column and the audit trail, so whoever edited or submitted it still cannot approve it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.base import db as dbmod
from alerting.base.errors import TwoPersonRuleViolated
from alerting.base.settings import Settings
from audit.actor import Actor
from tests.conftest import upgraded_database

BEFORE = "0023_deliveries_by_number"
_APPEND = ("SELECT audit.append_event(:kind, :name, :op, NULL, :action, 'alert', :alert, '{}'::jsonb, NULL, NULL, "
           "'console', :outcome, NULL)")


def _seed(conn: Any) -> None:
    ids = {}
    for name, roles in (("ana", "{composer}"), ("rita", "{composer,approver}"), ("sol", "{composer,approver}"),
                        ("vera", "{approver}")):
        ids[name] = conn.execute(text("INSERT INTO operators (username, display_name, password_hash, roles, language, "
                                      "disabled, failed_logins, created_at) VALUES (:u, :u, 'x', "
                                      "CAST(:r AS varchar[]), 'es', false, 0, now()) RETURNING id"),
                                 {"u": name, "r": roles}).scalar_one()
    alert = conn.execute(text(
        "INSERT INTO alerts (reference, reply_code, kind, mode, priority, state, title, sender_name, texts, target, "
        "composed_by_id, approval_hash, required_approvals, origin, fanout_done, created_at, updated_at) VALUES "
        "('A-2026-000001', '4821', 'alert', 'test', 'normal', 'pending_approval', '', 'SIRENA-SC', "
        "'{\"es\": \"hola\"}', '{}', :ana, NULL, 1, 'console', false, now(), now()) RETURNING id"),
        {"ana": ids["ana"]}).scalar_one()
    for who, action, outcome in (("ana", "alert.composed", "done"), ("rita", "alert.edited", "done"),
                                 ("sol", "alert.submitted", "done"), ("vera", "alert.edited", "refused")):
        conn.execute(text(_APPEND), {"kind": "operator", "name": who, "op": ids[who], "action": action,
                                     "alert": str(alert), "outcome": outcome})


@pytest.fixture
def upgraded(base_settings: Settings, settings: Settings) -> Iterator[Settings]:
    with upgraded_database(base_settings, settings, "authors", BEFORE, _seed) as own:
        yield own


def test_authors_of_alerts_written_before_the_upgrade_come_from_the_trail(upgraded):
    with dbmod.transaction() as s:
        authors = s.execute(text("SELECT o.username, a.role FROM alert_authors a JOIN operators o "
                                 "ON o.id = a.operator_id ORDER BY 1, 2")).all()
        assert [tuple(r) for r in authors] == [("ana", "composer"), ("rita", "editor"), ("sol", "submitter")]
        alert_id, rita = s.execute(text("SELECT a.id, o.id FROM alerts a, operators o WHERE o.username = 'rita'")).one()
    with pytest.raises(TwoPersonRuleViolated), dbmod.transaction() as s:
        lifecycle.approve(s, alert_id, Actor(kind="operator", name="rita", operator_id=rita,
                                         roles=frozenset({"composer", "approver"})), seen_hash="0" * 64)
