"""`Idempotency-Key` on POSTs: a retried request gets the first response, and never acts twice.

The key is claimed in its own committed transaction before the action runs (a unique row per
token and key), so two concurrent retries cannot both act: the second sees the claim and gets 409
until the first finishes, then the stored response. A response is stored for every outcome but
a server error, which releases the key so the client may retry. A claim left by a crashed request
is taken over after CLAIM_TIMEOUT. Alerts carry the key too (alerts.idempotency_key, unique), so
even a lost record cannot make a second alert.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from alerting.base.db import transaction, utcnow
from alerting.base.errors import InvalidInput, InvalidTransition
from alerting.base.models.intake import IdempotencyRecord

HEADER = "Idempotency-Key"
CLAIM_TIMEOUT = timedelta(seconds=60)
KEEP_FOR = timedelta(days=7)
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


@dataclass(frozen=True)
class Replay:
    status: int
    body: Any


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise InvalidInput(f"{HEADER}: 1 to 200 printable ASCII characters without spaces",
                           fields={HEADER: "1 to 200 printable ASCII characters without spaces"})
    return key


def request_digest(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def claim(token_id: int, key: str, method: str, path: str, digest: str) -> Replay | None:
    """Claim `key` for this request; return the stored response if it was already answered.

    Raises InvalidInput when the key was used for a different request, InvalidTransition (409)
    while the first request with this key is still running.
    """
    now = utcnow()
    with transaction() as session:
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - KEEP_FOR,
                                                        IdempotencyRecord.token_id == token_id))
        inserted = session.execute(
            pg_insert(IdempotencyRecord)
            .values(token_id=token_id, key=key, method=method, path=path, request_sha256=digest, created_at=now)
            .on_conflict_do_nothing(constraint="uq_api_idempotency_token_id_key")
            .returning(IdempotencyRecord.id)
        ).first()
        if inserted is not None:
            return None
        record = session.scalar(select(IdempotencyRecord).where(
            IdempotencyRecord.token_id == token_id, IdempotencyRecord.key == key).with_for_update())
        if record is None:  # released between our insert and select: claim it now
            session.add(IdempotencyRecord(token_id=token_id, key=key, method=method, path=path,
                                          request_sha256=digest, created_at=now))
            return None
        if record.request_sha256 != digest:
            raise InvalidInput(f"{HEADER} {key!r} was already used for a different request "
                               f"({record.method} {record.path}); use a new key",
                               fields={HEADER: "reused for a different request"})
        if record.status_code is not None:
            return Replay(record.status_code, record.response)
        if record.created_at > now - CLAIM_TIMEOUT:
            raise InvalidTransition(f"a request with {HEADER} {key!r} is still being processed; retry shortly",
                                    fields={HEADER: "in progress"})
        record.created_at = now  # a crashed request's claim: take it over
        return None


def complete(token_id: int, key: str, status: int, body: Any) -> None:
    """Store the response of a claimed request (or release the key after a server error)."""
    with transaction() as session:
        query = (IdempotencyRecord.token_id == token_id) & (IdempotencyRecord.key == key)
        if status >= 500:
            session.execute(delete(IdempotencyRecord).where(query))
        else:
            session.execute(update(IdempotencyRecord).where(query)
                            .values(status_code=status, response=body, completed_at=utcnow()))
