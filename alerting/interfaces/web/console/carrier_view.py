"""Carriers as the console shows them, on the dashboard and on an alert's live page: the binds the
gateway workers publish (Redis), the verdict on their receipts (carrier_health), and a carrier
that took messages but sent no receipt back at all (an alarm, never a blank: FIELD req. 9).
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from alerting.base.runtime import redis_connection
from broadcast import carrier_health
from broadcast.presence import gateway_carriers, read_all

SILENCE_AFTER = 20  # messages handed to a carrier with not one receipt back
HANDED = ("submitted", "delivered", "failed", "expired")


def bind_rows() -> tuple[list[dict[str, Any]], str | None]:
    """Every bind of every live gateway worker: state, breaker, window in use, TPS (published every
    3 s), or why there are none (Redis unreachable, no gateway running)."""
    try:
        conn = redis_connection(current_app.config["SIRENA_SETTINGS"].redis_url, timeout_s=1.0)
        try:
            records = read_all(conn)
        finally:
            conn.close()
    except Exception as exc:
        return [], _("Redis unreachable (%(error)s): bind health unknown", error=type(exc).__name__)
    rows = []
    for record in records:
        if record.get("role") != "gateway":
            continue
        for carrier, entry in sorted(gateway_carriers(record).items()):
            for name, bind in sorted((entry.get("binds") or {}).items()):
                rows.append({"gateway": record.get("name"), "carrier": carrier, "bind": name, **bind})
    if not rows:
        return [], _("No gateway worker is running: nothing can be sent (start `sirena worker`).")
    return rows, None


def silent_carriers(by_carrier: dict[str, dict[str, int]]) -> set[str]:
    """Carriers that took SILENCE_AFTER messages or more but sent back no receipt at all.

    Bind states (from the gateways) say a link is up; receipts say the carrier is delivering.
    """
    silent = set()
    for carrier, states in by_carrier.items():
        handed = sum(states.get(s, 0) for s in HANDED)
        answered = ("delivered", "failed", "expired", "next_number")  # states only a receipt (or refusal) gives
        if handed >= SILENCE_AFTER and not any(states.get(s, 0) for s in answered):
            silent.add(carrier)
    return silent


def carrier_rows(db: Session, by_carrier: dict[str, dict[str, int]],
                 binds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per carrier of an alert: its share of the messages handed to carriers, delivered,
    failed, and its health — `down` (no bind up in any gateway), `silent` (no receipts),
    `degraded` (its receipts judged bad; `why` says how), `unknown` (no bind state), else `ok`."""
    degraded = carrier_health.degraded_carriers(db)
    silent = silent_carriers(by_carrier)
    up = {b["carrier"] for b in binds if b.get("state") == "up"}
    known = {b["carrier"] for b in binds}
    total = sum(sum(states.get(s, 0) for s in HANDED) for states in by_carrier.values())
    rows = []
    for carrier, states in sorted(by_carrier.items()):
        handed = sum(states.get(s, 0) for s in HANDED)
        if carrier in known and carrier not in up:
            health, why = "down", ""
        elif carrier in silent:
            health, why = "silent", ""
        elif carrier in degraded:
            health, why = "degraded", degraded[carrier]
        elif carrier not in known:
            health, why = "unknown", ""
        else:
            health, why = "ok", ""
        rows.append({"carrier": carrier, "handed": handed, "share": handed / total if total else 0.0,
                     "delivered": states.get("delivered", 0),
                     # next_number: failed on this carrier, the contact then tried on another number
                     "failed": states.get("failed", 0) + states.get("expired", 0) + states.get("next_number", 0),
                     "health": health, "why": why})
    return rows
