"""Webhooks: subscribers get alert state changes, replies and delivery-state changes as signed POSTs.

Events are derived from Postgres (the audit trail's alert.* events, the replies table, deliveries'
updated_at), each source read from a cursor kept in webhook_cursors, so nothing depends on Redis
and a restart loses nothing. One webhook_deliveries row per (subscriber, event) is the delivery log
and the retry state; an RQ job on the "webhooks" queue POSTs it, and the scheduler's sweep re-queues
due retries with exponential backoff (30 s doubling, at most 6 h apart, 12 attempts, then gave_up).
Delivery is at least once: receivers dedupe by the event id (and, for delivery changes, by
delivery id + state, since a change near a cursor boundary may be reported twice).

Signature, for receivers (Stripe-style):
    Sirena-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw request body)>
    Sirena-Event-Id: <event id>
Recompute the HMAC over the exact bytes received with the subscriber secret (shown once when the
subscriber was created), compare in constant time, and refuse a timestamp more than 5 minutes
from your clock (replays). `verify_signature` below does exactly that.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.base import job_ids, runtime
from alerting.base.db import transaction, utcnow
from alerting.base.errors import InvalidInput
from alerting.base.models.intake import WebhookCursor, WebhookDelivery, WebhookSubscriber
from alerting.base.outbox import enqueue_after_commit
from alerting.base.settings import Secret
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor
from audit.seal import seal_events

log = logging.getLogger("sirena.webhooks")

EVENTS = frozenset({"alert.state_changed", "reply.received", "delivery.state_changed"})
QUEUE = "webhooks"
MAX_ATTEMPTS = 12
FIRST_RETRY_S = 30
MAX_RETRY_S = 6 * 3600
TIMEOUT_S = 10
TOLERANCE_S = 300
BATCH = 1000
DELIVERY_OVERLAP_S = 5  # rows committed late with an older updated_at are still seen
def _fernet() -> MultiFernet:
    """Encrypts with the runtime's secret key (SIRENA_SECRET_KEY_FILE); decrypts with it or a
    previous one (after a rotation)."""
    return _all_keys(runtime.current().settings.secret_key())


def _all_keys(key: Secret) -> MultiFernet:
    return MultiFernet([_one_fernet(value) for value in key.all_values()])


def _one_fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"sirena-webhooks", info=b"subscriber-secret").derive(
        secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def reencrypt_subscriber_secrets(session: Session, key: Secret) -> tuple[int, list[str]]:
    """Re-encrypt every subscriber secret an older secret key (key.previous) encrypted under the
    current one; returns (how many changed, names of subscribers no configured key can read)."""
    current, every = _one_fernet(key.reveal()), _all_keys(key)
    changed, unreadable = 0, []
    for sub in session.scalars(select(WebhookSubscriber).order_by(WebhookSubscriber.id).with_for_update()):
        try:
            current.decrypt(sub.secret_enc)
            continue
        except InvalidToken:
            pass
        try:
            sub.secret_enc = every.rotate(sub.secret_enc)
            changed += 1
        except InvalidToken:
            unreadable.append(sub.name)
    return changed, unreadable


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, now: float | None = None,
                     tolerance_s: int = TOLERANCE_S) -> bool:
    """For receivers: True if `header` signs `body` with `secret` within `tolerance_s` of now."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def create_subscriber(session: Session, name: str, url: str, events: list[str], actor: Actor) -> tuple[
        WebhookSubscriber, str]:
    """Subscribe `url` to `events`; return the row and its signing secret (shown once, stored encrypted).

    Admins only (Refused otherwise): a subscriber receives every phone number that replies.
    """
    permissions.require(actor, "webhooks.manage", "add webhook subscribers")
    parsed = urlparse(url)
    problems = {}
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        problems["url"] = "an http(s) URL"
    unknown = sorted(set(events) - EVENTS)
    if unknown or not events:
        problems["events"] = f"choose from {', '.join(sorted(EVENTS))}"
    if not name.strip() or len(name) > 100:
        problems["name"] = "1 to 100 characters"
    if problems:
        raise InvalidInput("the webhook subscriber is not valid", fields=problems)
    secret = "whsec_" + secrets.token_urlsafe(32)
    row = WebhookSubscriber(name=name.strip(), url=url, secret_enc=_fernet().encrypt(secret.encode()),
                            events=sorted(set(events)), active=True, created_by_id=actor.operator_id)
    session.add(row)
    session.flush()
    trail.append(session, actor=actor, action="webhook.subscribed", subject_type="webhook_subscriber",
                 subject_id=row.id, payload={"name": row.name, "url": url, "events": row.events})
    return row, secret


def _cursor(session: Session, source: str) -> WebhookCursor:
    session.execute(pg_insert(WebhookCursor).values(source=source, position=0).on_conflict_do_nothing())
    return session.scalars(select(WebhookCursor).where(WebhookCursor.source == source).with_for_update()).one()


def _emit(session: Session, subscribers: list[WebhookSubscriber], event_type: str, event_id: str,
          data: dict[str, Any]) -> int:
    made = 0
    for sub in subscribers:
        if event_type not in sub.events:
            continue
        row = session.execute(pg_insert(WebhookDelivery).values(
            subscriber_id=sub.id, event_id=event_id, event_type=event_type, payload=data, state="pending",
            attempts=0).on_conflict_do_nothing().returning(WebhookDelivery.id)).first()
        if row is not None:
            job = job_ids.deliver_webhook(row[0], 0)
            enqueue_after_commit(session, job.func, row[0], queue=QUEUE, job_id=job.job_id, timeout_s=TIMEOUT_S * 3)
            made += 1
    return made


def collect_events(session: Session) -> int:
    """Read new alert state changes, replies and delivery changes; queue one POST per subscriber each.

    Serialized by the cursor rows' locks: two schedulers never emit the same event twice.
    """
    subscribers = list(session.scalars(select(WebhookSubscriber).where(WebhookSubscriber.active)))
    if subscribers:
        # Only sealed events have a seq, and sealed seqs only grow: a safe cursor.
        seal_events(session)
    audit_cursor = _cursor(session, "audit")
    reply_cursor = _cursor(session, "replies")
    delivery_cursor = _cursor(session, "deliveries")
    if not subscribers:
        return 0
    made = 0
    rows = session.execute(text(
        "SELECT seq, action, subject_id, at, payload FROM audit.events WHERE seq > :c AND subject_type = 'alert' "
        "AND action LIKE 'alert.%' AND outcome = 'done' ORDER BY seq LIMIT :n"),
        {"c": audit_cursor.position, "n": BATCH}).all()
    for seq, action, subject_id, at, payload in rows:
        data = {"alert_id": int(subject_id), "action": action, "at": at.isoformat(),
                "reason": (payload or {}).get("reason")}
        made += _emit(session, subscribers, "alert.state_changed", f"audit-{seq}", data)
        audit_cursor.position = seq
    rows = session.execute(text(
        "SELECT id, alert_id, msisdn, meaning, poll_answer, text, created_at FROM replies WHERE id > :c "
        "ORDER BY id LIMIT :n"), {"c": reply_cursor.position, "n": BATCH}).all()
    for rid, alert_id, msisdn, meaning, answer, body, created in rows:
        data = {"reply_id": rid, "alert_id": alert_id, "msisdn": msisdn, "meaning": meaning, "poll_answer": answer,
                "text": body, "at": created.isoformat()}
        made += _emit(session, subscribers, "reply.received", f"reply-{rid}", data)
        reply_cursor.position = rid
    made += _collect_deliveries(session, subscribers, delivery_cursor)
    return made


def _collect_deliveries(session: Session, subscribers: list[WebhookSubscriber], cursor: WebhookCursor) -> int:
    since = datetime.fromtimestamp(cursor.position / 1e6, tz=utcnow().tzinfo) - timedelta(seconds=DELIVERY_OVERLAP_S)
    rows = session.execute(text(
        "SELECT id, alert_id, msisdn, state, carrier, error_code, updated_at FROM deliveries "
        "WHERE updated_at > :since AND updated_at <= now() - interval '1 second' "
        "AND state IN ('submitted', 'delivered', 'failed', 'expired', 'cancelled', 'next_number') "
        "ORDER BY updated_at, id LIMIT :n"),
        {"since": since, "n": BATCH * 5}).all()
    by_alert: dict[int, list[dict[str, Any]]] = {}
    for did, alert_id, msisdn, state, carrier, error, updated in rows:
        by_alert.setdefault(alert_id, []).append({"delivery_id": did, "msisdn": msisdn, "state": state,
                                                  "carrier": carrier, "error_code": error,
                                                  "at": updated.isoformat()})
        cursor.position = max(cursor.position, int(updated.timestamp() * 1e6))
    made = 0
    for alert_id, changes in by_alert.items():
        digest = hashlib.sha256(json.dumps([(c["delivery_id"], c["state"]) for c in changes]).encode()).hexdigest()
        made += _emit(session, subscribers, "delivery.state_changed", f"deliveries-{alert_id}-{digest[:24]}",
                      {"alert_id": alert_id, "deliveries": changes})
    return made


def deliver(delivery_id: int) -> str:
    """RQ job: POST one pending webhook delivery, signed; record the outcome and the next retry."""
    with transaction() as session:
        row = session.scalars(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                                            WebhookDelivery.state == "pending")
                              .with_for_update(skip_locked=True)).first()
        if row is None:
            return "not pending"
        sub = session.get(WebhookSubscriber, row.subscriber_id)
        if sub is None or not sub.active:
            row.state, row.last_error = "gave_up", "subscriber removed or inactive"
            return row.state
        body = json.dumps({"id": row.event_id, "type": row.event_type, "created_at": row.created_at.isoformat(),
                           "data": row.payload}, ensure_ascii=False, separators=(",", ":")).encode()
        secret = _fernet().decrypt(sub.secret_enc).decode()
        status, error = _post(sub.url, body, sign(secret, int(time.time()), body), row.event_id)
        row.attempts += 1
        row.last_status, row.last_error = status, error
        if status is not None and 200 <= status < 300:
            row.state, row.delivered_at = "delivered", utcnow()
        elif row.attempts >= MAX_ATTEMPTS:
            row.state = "gave_up"
        else:
            row.next_attempt_at = utcnow() + timedelta(seconds=min(FIRST_RETRY_S * 2 ** (row.attempts - 1),
                                                                   MAX_RETRY_S))
        log.info("webhook delivery_id=%s subscriber=%s status=%s state=%s", row.id, sub.id, status, row.state)
        return row.state


def _post(url: str, body: bytes, signature: str, event_id: str) -> tuple[int | None, str | None]:
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 - http(s) checked on create
        "Content-Type": "application/json", "User-Agent": "Sirena-Webhooks/1", "Sirena-Signature": signature,
        "Sirena-Event-Id": event_id})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc)[:500]


def queue_due_retries(session: Session, now: datetime | None = None) -> int:
    """Re-queue pending deliveries whose next attempt is due (the scheduler's sweep; Redis loss safe)."""
    rows = session.execute(select(WebhookDelivery.id, WebhookDelivery.attempts).where(
        WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= (now or utcnow()))
        .order_by(WebhookDelivery.next_attempt_at).limit(BATCH)).all()
    for did, attempts in rows:
        job = job_ids.deliver_webhook(did, attempts)
        enqueue_after_commit(session, job.func, did, queue=QUEUE, job_id=job.job_id, timeout_s=TIMEOUT_S * 3)
    return len(rows)
