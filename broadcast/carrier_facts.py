"""The carriers file mirrored into PostgreSQL: its senders (what compose validates against and the
console offers) and its carriers' facts that the inbound side needs (each carrier's receipt id
style, the senders it carries, whether it is a test route).

Written by `sirena setup` and by every gateway worker at start (`sync`), in one transaction under
an advisory lock (two workers starting together both inserted a new sender, and one died on the
unique name). Read by the jobs that interpret receipts and re-send undelivered messages through
another carrier (broadcast/replies.py), in whichever worker runs them: no carrier configuration
lives only in a gateway's memory.
"""

from __future__ import annotations

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from alerting.base.db import transaction, utcnow
from alerting.base.models import Carrier, Sender, SenderKind
from broadcast.carriers import CarriersConfig

SENDERS_LOCK = 0x53454E44  # pg advisory lock key: one sync at a time ("SEND")


def sync(config: CarriersConfig) -> list[str]:
    """`write` in a transaction of its own; returns the senders added or changed."""
    with transaction() as session:
        return write(session, config)


def write(session: Session, config: CarriersConfig) -> list[str]:
    """Mirror `config` in the caller's session: each sender of the file written, those no longer in
    it made inactive; each carrier's facts written, those no longer in it made inactive. Returns
    the sender names added or changed (idempotent: a second run returns [])."""
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SENDERS_LOCK})
    changed = _write_senders(session, config)
    _write_carriers(session, config)
    return changed


def _write_senders(session: Session, config: CarriersConfig) -> list[str]:
    known = {s.name: s for s in session.scalars(select(Sender))}
    changed: list[str] = []
    for name, cfg in config.senders.items():
        row = known.pop(name, None) or Sender(name=name)
        carriers = config.carriers_for(name)
        wanted = {"kind": SenderKind(cfg.kind), "address": cfg.address, "keyword": cfg.keyword,
                  "daily_cap": cfg.daily_cap, "tps": cfg.tps, "active": bool(carriers),
                  "test_route": any(c.test for c in carriers), "is_default": name == config.default_sender}
        if row.id is None or any(getattr(row, k) != v for k, v in wanted.items()):
            changed.append(name)
        for key, value in wanted.items():
            setattr(row, key, value)
        session.add(row)
    for stale in known.values():
        if stale.active:
            stale.active = False
            changed.append(stale.name)
    return changed


def _write_carriers(session: Session, config: CarriersConfig) -> None:
    names = [c.name for c in config.carriers]
    for carrier in config.carriers:
        senders = sorted(carrier.senders)
        values = {"receipt_id_style": carrier.receipt_id_style, "test": carrier.test, "senders": senders,
                  "active": True, "updated_at": utcnow()}
        session.execute(pg_insert(Carrier).values(name=carrier.name, **values)
                        .on_conflict_do_update(index_elements=[Carrier.name], set_=values))
    session.execute(update(Carrier).where(Carrier.name.not_in(names), Carrier.active).values(active=False))


def receipt_styles(session: Session) -> dict[str, str]:
    """Carrier name → how its receipts name message ids (broadcast/receipts.py), every carrier ever
    configured (a receipt may arrive after its carrier left the file)."""
    return {name: style for name, style in session.execute(select(Carrier.name, Carrier.receipt_id_style))}


def routes_by_sender(session: Session) -> dict[str, set[str]]:
    """Sender name → the active carriers that carry it: where an undelivered message may be re-sent."""
    routes: dict[str, set[str]] = {}
    for name, senders in session.execute(select(Carrier.name, Carrier.senders).where(Carrier.active)):
        for sender in senders:
            routes.setdefault(sender, set()).add(name)
    return routes
