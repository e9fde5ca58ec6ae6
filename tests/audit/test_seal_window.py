"""How long an audit event waits for its seal (its link in the hash chain): a second or two while
a web app or gateway worker runs, scheduler or not; past UNSEALED_WARN_S `sirena status`, /readyz
and `audit verify` say so. The warning threshold is shortened in some tests (10 s deployed)."""

from __future__ import annotations

import time

from alerting.base import db as dbmod
from alerting.interfaces.status import system_status
from audit import seal
from audit.actor import Actor
from audit.trail import append_alone
from audit.verify import verify_chain
from tests.cluster import unsealed_events, wait_until

SYSTEM = Actor.system("seal-test")


def test_the_background_sealer_links_what_commits_within_a_second_or_two(committed_db):
    sealer = seal.Sealer.start_for(dbmod.engine())
    try:
        for burst in range(3):
            for i in range(5):
                append_alone(SYSTEM, "test.appended", payload={"burst": burst, "i": i})
            started = time.monotonic()
            wait_until(lambda: unsealed_events() == 0, 5, "the background sealer to link the burst")
            assert time.monotonic() - started < seal.SEAL_EVERY_S + 1.0
    finally:
        sealer.stop()
    assert sealer.sealed == 15


def test_status_and_readyz_warn_when_an_event_waits_too_long(db, settings, redis_db, monkeypatch):
    from alerting.interfaces.web.app import create_app

    client = create_app(settings, configure_services=False).test_client()
    monkeypatch.setattr(seal, "UNSEALED_WARN_S", 0.5)
    append_alone(SYSTEM, "test.appended")
    assert system_status(settings, {}).audit["unsealed_events"] == 1
    assert not any("hash chain" in p.what for p in system_status(settings, {}).problems)  # fresh: no warning
    time.sleep(0.7)
    report = system_status(settings, {})
    [problem] = [p for p in report.problems if "hash chain" in p.what]
    assert problem.severity == "warning" and "1 audit event(s) not sealed into the hash chain yet" in problem.what
    assert "sirena audit verify" in problem.do and report.audit["late"] is True
    audit_check = client.get("/readyz").get_json()["checks"]["audit"]
    assert audit_check["ok"] is True and audit_check["unsealed_events"] == 1  # alerts still leave: still ready
    assert "not sealed into the hash chain yet" in audit_check["warning"]


def test_verify_reports_what_waited_unsealed_before_it_sealed(committed_db, monkeypatch):
    monkeypatch.setattr(seal, "UNSEALED_WARN_S", 0.5)
    for i in range(3):
        append_alone(SYSTEM, "test.appended", payload={"i": i})
    time.sleep(0.7)
    verdict = verify_chain(dbmod.engine(), committed_db).as_dict()
    assert verdict["ok"] and verdict["sealed"] == 3 and unsealed_events() == 0
    assert verdict["unsealed_before"]["unsealed_events"] == 3 and verdict["unsealed_before"]["late"]
    assert verdict["warnings"] and "nothing sealed them until this verify" in verdict["warnings"][0]
    again = verify_chain(dbmod.engine(), committed_db).as_dict()
    assert again["warnings"] == [] and again["unsealed_before"]["unsealed_events"] == 0
