"""Refusals by a rate limit (HTTP 429), audited without letting a flood of them flood the trail.

Every refusal is audited (issue 9), but a client hammering a limit would otherwise write one event
per request. The rule: the first 429 of a client in a minute is audited at once (action = the
endpoint refused, outcome refused, reason "rate limit"); the others in that minute are only
counted, and the count is carried in the next audited event's payload (`suppressed_before`).
A client is the operator, else the API token, else the address. The minute is kept in Redis, so
every web process shares it; without Redis, in this process's memory.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from audit.actor import Actor
from audit.trail import audit_refusal

log = logging.getLogger("sirena.audit")

WINDOW_S = 60
_PREFIX = "sirena:audit-429:"
_local: dict[str, tuple[float, int]] = {}  # client → (window start, suppressed), when Redis is away
_lock = threading.Lock()


def client_of(actor: Actor) -> str:
    """Who is being limited: operator, token, else address."""
    if actor.operator_id is not None and actor.kind == "operator":
        return f"operator:{actor.operator_id}"
    if actor.token_id is not None:
        return f"token:{actor.token_id}"
    return f"address:{actor.address or 'unknown'}"


def audit_rate_limited(redis: Any, actor: Actor, action: str, reason: str, *,
                       payload: dict[str, Any] | None = None) -> int | None:
    """Audit a 429 unless this client already had one audited in the last minute; returns the
    event id, or None when it was only counted. Never raises (the 429 must still be answered)."""
    client = client_of(actor)
    suppressed = _claim(redis, client)
    if suppressed is None:
        return None
    return audit_refusal(actor, action, None, None, reason,
                         payload={**(payload or {}), "client": client, "suppressed_before": suppressed})


def _claim(redis: Any, client: str) -> int | None:
    """The number of refusals counted since the last audited one if this one is to be audited, else None."""
    if redis is not None:
        try:
            if redis.set(_PREFIX + "window:" + client, "1", nx=True, ex=WINDOW_S):
                return int(redis.getdel(_PREFIX + "suppressed:" + client) or 0)
            pipe = redis.pipeline()
            pipe.incr(_PREFIX + "suppressed:" + client)
            pipe.expire(_PREFIX + "suppressed:" + client, 24 * 3600)
            pipe.execute()
            return None
        except Exception:
            log.warning("rate-limit refusals: Redis unreachable, counting in this process")
    now = time.monotonic()
    with _lock:
        start, suppressed = _local.get(client, (0.0, 0))
        if now - start >= WINDOW_S:
            _local[client] = (now, 0)
            return suppressed
        _local[client] = (start, suppressed + 1)
        return None
