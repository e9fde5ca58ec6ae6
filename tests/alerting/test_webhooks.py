
"""Webhooks: events from Postgres, signed POSTs to a real HTTP receiver, retries with backoff, a delivery log."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from alerting.alerts import drafts, lifecycle
from alerting.base import runtime
from alerting.base.db import transaction, utcnow
from alerting.base.models import AlertMode
from alerting.base.models.intake import WebhookDelivery
from alerting.webhooks import (
    FIRST_RETRY_S,
    MAX_ATTEMPTS,
    collect_events,
    create_subscriber,
    queue_due_retries,
    sign,
    verify_signature,
)
from audit.actor import Actor
from tests.factories import actor_for


class _Receiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    r = _Receiver()
    yield r
    r.close()


def _compose(db, factories) -> int:  # type: ignore[no-untyped-def]
    factories.SenderFactory(name="SIRENA-SC")
    factories.GroupFactory(name="vecinos")
    composer = actor_for(factories.OperatorFactory(roles=["composer"]))
    draft = drafts.AlertDraft(texts={"es": "Corte de agua"}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                 target={"groups": ["vecinos"]})
    return lifecycle.compose(db, draft, composer).id


def test_an_alert_change_reaches_the_subscriber_signed(db, factories, receiver, run_jobs):
    _, secret = create_subscriber(db, "despacho", receiver.url, ["alert.state_changed"], Actor.system("test"))
    alert_id = _compose(db, factories)
    with transaction() as session:  # as the scheduler does: the outbox enqueues after this commits
        assert collect_events(session) >= 1
    run_jobs(("webhooks",))
    headers, body = receiver.requests[0]
    event = json.loads(body)
    assert event["type"] == "alert.state_changed" and event["data"]["alert_id"] == alert_id
    assert event["data"]["action"] == "alert.composed"
    assert verify_signature(secret, headers["Sirena-Signature"], body)
    assert not verify_signature(secret, headers["Sirena-Signature"], body + b" ")
    assert not verify_signature("whsec_other", headers["Sirena-Signature"], body)
    log = db.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == event["id"]))
    assert log.state == "delivered" and log.last_status == 200 and log.attempts == 1


def test_collecting_twice_emits_each_event_once(db, factories, receiver):
    create_subscriber(db, "despacho", receiver.url, ["alert.state_changed"], Actor.system("test"))
    _compose(db, factories)
    first = collect_events(db)
    assert first >= 1 and collect_events(db) == 0


def test_a_failing_receiver_is_retried_with_backoff_and_finally_given_up(db, factories, run_jobs):
    failing = _Receiver(status=500)
    try:
        create_subscriber(db, "caido", failing.url, ["alert.state_changed"], Actor.system("test"))
        _compose(db, factories)
        with transaction() as session:
            collect_events(session)
        attempted_from = utcnow()
        run_jobs(("webhooks",))
        row = db.scalars(select(WebhookDelivery)).one()
        db.refresh(row)
        attempted_by = utcnow()
        assert row.state == "pending" and row.attempts == 1 and row.last_status == 500
        # the next attempt is FIRST_RETRY_S after the failed one, which happened between the two readings
        # (measured around the job, not from now: a loaded machine once took 60 s to return from it)
        retry = timedelta(seconds=FIRST_RETRY_S)
        assert attempted_from + retry <= row.next_attempt_at <= attempted_by + retry
        assert queue_due_retries(db, now=row.next_attempt_at - timedelta(seconds=1)) == 0  # not due yet
        for _ in range(MAX_ATTEMPTS - 1):
            row.next_attempt_at = utcnow()
            db.flush()
            with transaction() as session:
                assert queue_due_retries(session) == 1
            run_jobs(("webhooks",))
            db.refresh(row)
        assert (row.state, row.attempts, len(failing.requests)) == ("gave_up", MAX_ATTEMPTS, MAX_ATTEMPTS)
    finally:
        failing.close()


def test_a_stale_or_forged_signature_is_refused_by_the_receiver_helper():
    body = b'{"id":"x"}'
    old = sign("whsec_s", 1_000_000, body)
    assert not verify_signature("whsec_s", old, body)
    assert verify_signature("whsec_s", old, body, now=1_000_100)
    assert not verify_signature("whsec_s", "t=abc,v1=00", body)


def test_bad_subscribers_are_refused_naming_the_field(db):
    from alerting.base.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        create_subscriber(db, "x", "ftp://example.org", ["nope"], Actor.system("test"))
    assert set(refused.value.details["fields"]) == {"url", "events"}


def test_secrets_are_stored_encrypted(db, receiver, tmp_path):
    row, secret = create_subscriber(db, "despacho", receiver.url, ["reply.received"], Actor.system("test"))
    assert secret.encode() not in row.secret_enc
    other = tmp_path / "other.key"
    other.write_text("another-key-" + "y" * 40)
    other.chmod(0o600)
    from cryptography.fernet import InvalidToken

    from alerting.webhooks import _fernet

    with runtime.using(settings=replace(runtime.current().settings, secret_key_file=other)), \
            pytest.raises(InvalidToken):
        _fernet().decrypt(row.secret_enc)


def test_only_admins_add_subscribers(db, factories, receiver):
    from alerting.base.errors import Refused

    composer = actor_for(factories.OperatorFactory(roles=["composer"]))
    with pytest.raises(Refused):
        create_subscriber(db, "x", receiver.url, ["reply.received"], composer)
    admin = actor_for(factories.OperatorFactory(roles=["admin"]))
    assert create_subscriber(db, "x", receiver.url, ["reply.received"], admin)[0].id
