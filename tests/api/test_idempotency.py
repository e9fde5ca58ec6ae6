"""Idempotency-Key: a retried POST returns the first response and never makes a second alert."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from alerting.base.models import Alert
from tests.api.conftest import live_alert_body


def _count(db) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(func.count()).select_from(Alert))


def test_a_retried_create_returns_the_same_alert_and_makes_one(client, composer, sender, db):
    before = _count(db)
    headers = {**composer.headers, "Idempotency-Key": "launch-2026-11-27-001"}
    first = client.post("/api/v1/alerts", json=live_alert_body(), headers=headers)
    second = client.post("/api/v1/alerts", json=live_alert_body(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert _count(db) == before + 1


def test_reusing_a_key_for_a_different_request_is_refused_naming_the_header(client, composer, sender):
    headers = {**composer.headers, "Idempotency-Key": "k-1"}
    assert client.post("/api/v1/alerts", json=live_alert_body(), headers=headers).status_code == 201
    other = client.post("/api/v1/alerts", json=live_alert_body(title="otro"), headers=headers)
    assert other.status_code == 422
    assert other.get_json()["errors"][0]["field"] == "Idempotency-Key"


def test_the_same_key_from_another_token_is_another_request(client, composer, make_token, sender, db):
    other = make_token()
    before = _count(db)
    for who in (composer, other):
        response = client.post("/api/v1/alerts", json=live_alert_body(),
                               headers={**who.headers, "Idempotency-Key": "shared"})
        assert response.status_code == 201
    assert _count(db) == before + 2


def test_a_refused_request_is_replayed_as_the_same_refusal(client, composer, sender):
    headers = {**composer.headers, "Idempotency-Key": "bad-1"}
    first = client.post("/api/v1/alerts", json=live_alert_body(sender="NOPE"), headers=headers)
    second = client.post("/api/v1/alerts", json=live_alert_body(sender="NOPE"), headers=headers)
    assert first.status_code == second.status_code == 422
    assert first.get_json()["errors"] == second.get_json()["errors"]


def test_concurrent_retries_with_one_key_make_one_alert(committed_db, redis_db):
    """Two threads, two connections, real commits: the claim row lets exactly one act."""
    from alerting.base.db import transaction
    from alerting.base.models import Group, GroupKind, Operator, Sender, SenderKind
    from alerting.directory.accounts import create_token
    from audit.actor import Actor
    from tests.api.conftest import make_app

    with transaction() as session:
        session.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True))
        session.add(Operator(username="maquina", password_hash="x", roles=["composer"]))
        session.add(Group(name="vecinos", kind=GroupKind.STATIC, drill_allowed=False, description=""))
        session.flush()
        _, token = create_token(session, "maquina", ["alerts:draft"], Actor.system("test"))
    app = make_app(committed_db)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "race-1"}
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def hit() -> None:
        barrier.wait()
        statuses.append(app.test_client().post("/api/v1/alerts", json=live_alert_body(), headers=headers).status_code)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with transaction() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1
    assert set(statuses) <= {201, 409} and 201 in statuses
