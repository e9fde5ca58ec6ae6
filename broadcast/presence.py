"""Workers announce themselves in Redis: who is alive, what its binds and breakers look like.

Each gateway worker writes `sirena:presence:gateway:<name>` every few seconds (its `pool.health()`,
queues, share, current job) and each scheduler `sirena:presence:scheduler:<host-pid>` after every
pass (whether it held the pass lock, what the pass did). Keys expire after TTL_S: a worker that
died simply disappears, which is how `sirena status` and /readyz tell "down" from "quiet". Redis
loss only blanks the picture for one interval; nothing here is state anyone relies on to send.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from broadcast import metrics

log = logging.getLogger("sirena.presence")

PREFIX = "sirena:presence:"
INTERVAL_S = 3.0
TTL_S = 15


def process_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def publish(redis: Any, role: str, name: str, payload: dict[str, Any]) -> bool:
    """Write one presence record (best effort: False when Redis is unreachable)."""
    record = {"role": role, "name": name, "host": socket.gethostname(), "pid": os.getpid(), "at": time.time(),
              **payload}
    try:
        redis.set(f"{PREFIX}{role}:{name}", json.dumps(record, default=str), ex=TTL_S)
        return True
    except Exception as exc:
        log.debug("presence not published: %s", exc)
        return False


def read_all(redis: Any) -> list[dict[str, Any]]:
    """Every live presence record (any role), oldest name first. Raises if Redis is unreachable."""
    keys = sorted(redis.scan_iter(match=f"{PREFIX}*", count=500))
    if not keys:
        return []
    out = []
    for raw in redis.mget(keys):
        if raw:
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
    return out


class Heartbeat:
    """A daemon thread calling `publish(role, name, payload())` every INTERVAL_S until stopped."""
    def __init__(self, redis: Any, role: str, name: str, payload: Callable[[], dict[str, Any]]) -> None:
        self.redis, self.role, self.name, self.payload = redis, role, name, payload
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"presence-{role}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self.redis.delete(f"{PREFIX}{self.role}:{self.name}")  # a clean stop is not a death
        except Exception as exc:
            log.debug("presence not removed: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                publish(self.redis, self.role, self.name, self.payload())
            except Exception as exc:  # the pool stopping mid-read; next beat will do
                log.debug("presence payload failed: %s", exc)
            self._stop.wait(INTERVAL_S)


def watch_gateway(gateway: Any, redis: Any, *, queues: list[str], share: str, metrics_port: int = 0,
                  extra: Callable[[], dict[str, Any]] | None = None) -> Heartbeat:
    """Start the gateway's presence heartbeat and, if `metrics_port`, its Prometheus endpoint.
    `extra()` adds the worker loop's own figures (restarts, stopping) to each record."""
    started = time.time()

    carriers_of = {sender: [c.name for c in gateway.config.carriers if sender in c.senders]
                   for sender in gateway.config.senders}

    def payload() -> dict[str, Any]:
        return {"queues": queues, "share": share, "started_at": started, "metrics_port": metrics_port,
                "health": gateway.pool.health(), "senders": carriers_of, **(extra() if extra else {})}

    if metrics_port:
        metrics.serve(metrics_port, pool_health=gateway.pool.health, redis=redis)
    return Heartbeat(redis, "gateway", gateway.name, payload).start()


def watch_scheduler(redis: Any, *, metrics_port: int = 0) -> None:
    """The scheduler's Prometheus endpoint (its presence is published after each pass)."""
    if metrics_port:
        metrics.serve(metrics_port, redis=redis)


def gateway_carriers(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """carrier → its entry in a gateway's record: `{"test", "up", "degraded", "binds": {bind → state,
    breaker, window, in_flight, tps, counters, last_error}}`, as `CarrierPool.health()` builds it and
    `watch_gateway` publishes it under "health" (beside "possible_duplicates"). Every reader of a
    gateway's binds goes through here, so none can read another shape than the one published."""
    carriers = (record.get("health") or {}).get("carriers")
    return carriers if isinstance(carriers, dict) else {}


def routes_up(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """sender → the carriers with at least one bind up for it, across every live gateway."""
    up: set[str] = set()
    senders: dict[str, set[str]] = {}
    for record in records:
        if record.get("role") != "gateway":
            continue
        for carrier, entry in gateway_carriers(record).items():
            if any(b.get("state") == "up" for b in (entry.get("binds") or {}).values()):
                up.add(carrier)
        for sender, carriers in (record.get("senders") or {}).items():
            senders.setdefault(sender, set()).update(carriers)
    return {sender: sorted(carriers & up) for sender, carriers in senders.items()}
