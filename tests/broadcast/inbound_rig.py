"""A simulator and an in-process gateway for the inbound tests: three carriers, each with its own
message-id and receipt spelling, each carrying its own short code (so a test knows which carrier
sends what), plus the shared short code BOMBEROS on alpha."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

from sqlalchemy import text

from alerting.base.db import transaction, utcnow
from broadcast import replies
from broadcast.carriers import parse_carriers
from smsc_sim import CarrierConfig, ReceiptConfig, SimConfig, Simulator

# carrier: (simulator id style, receipt form, receipt id spelling, our receipt_id_style, sender, code)
CARRIERS = {
    "alpha": ("hex", "text", "upper", "hex", "ALPHA-SC", "4242"),
    "beta": ("decimal", "tlv", "padded", "decimal", "BETA-SC", "4343"),
    "gamma": ("hex", "both", "decimal", "hex:decimal", "GAMMA-SC", "4444"),
}


def carriers_file(ports: dict[str, int], live: tuple[str, ...] = ()) -> str:
    out = ['[senders.BOMBEROS]\nkind = "shared"\naddress = "5555"\nkeyword = "BOMBEROS"\n',
           '[senders.SALUD]\nkind = "shared"\naddress = "5555"\nkeyword = "SALUD"\n',
           '[senders.MULTI-SC]\nkind = "short"\naddress = "4545"\n']
    for _, _, _, _, sender, code in CARRIERS.values():
        out.append(f'[senders.{sender}]\nkind = "short"\naddress = "{code}"\n')
    for name, (_, _, _, style, sender, _) in CARRIERS.items():
        extra = {"alpha": ', "BOMBEROS", "SALUD", "MULTI-SC"', "beta": ', "MULTI-SC"'}.get(name, "")
        out.append(f"""[carriers.{name}]
host = "127.0.0.1"
port = {ports[name]}
system_id = "{name}"
password_env = "PW_{name.upper()}"
binds = 1
tps = 20000
window = 50
response_timeout_s = 3
breaker_cooldown_s = 1
reconnect_max_s = 2
test = {"false" if name in live else "true"}
receipt_id_style = "{style}"
senders = ["{sender}"{extra}]
""")
    return "\n".join(out)


@contextmanager
def inbound_rig(*, receipts: bool = True, delay_s: float = 0.0,
                live: tuple[str, ...] = ()) -> Iterator[tuple[Simulator, object]]:
    """Simulator + gateway (the caller holds committed_db and redis_db); `live` carriers are not test ones."""
    from broadcast import carrier_facts
    from broadcast.gateway import Gateway
    from broadcast.inbound import InboundStore

    sim = Simulator(SimConfig(carriers=[
        CarrierConfig(name=name, port=0, system_id=name, password=f"{name}-pw", message_id_style=ids,
                      receipts=ReceiptConfig(style=form, id_style=spelling, delay_s=(delay_s, delay_s)))
        for name, (ids, form, spelling, _, _, _) in CARRIERS.items()]))
    sim.start_in_thread()
    config = parse_carriers(carriers_file(sim.ports(), live), {f"PW_{n.upper()}": f"{n}-pw" for n in CARRIERS})
    if not receipts:
        config = replace(config, carriers=tuple(replace(c, registered_delivery=0) for c in config.carriers))
    carrier_facts.sync(config)
    store = InboundStore()
    gateway = Gateway(config, name="gw-inbound-test", on_deliver=store, flash_lane=False)
    gateway.start()
    try:
        yield sim, gateway
    finally:
        gateway.stop()
        store.close()
        sim.stop()


def process_all() -> dict:
    """Interpret everything stored so far (what the job and the sweep do in production)."""
    return replies.sweep(min_age_s=0)


def inbound_count() -> int:
    with transaction() as s:
        return int(s.execute(text("SELECT count(*) FROM inbound_messages")).scalar_one())


def wait_inbound(sim: Simulator, n: int, timeout_s: float = 10.0) -> None:
    assert sim.wait_for(lambda: inbound_count() >= n, timeout_s), f"{inbound_count()} inbound, expected {n}"


def seed_alert(numbers: list[str], *, sender: str = "ALPHA-SC", texts: dict[str, str] | None = None,
               reply_code: str = "4821", language: str = "es", ack_deadline_s: int | None = None,
               escalation: dict | None = None, poll_options: list[str] | None = None, mode: str = "live",
               priority: str = "high", sent_ago_s: float = 0.0) -> int:
    """An alert already sending, with one queued delivery per number (contacts created as needed)."""
    from alerting.base.models import Alert, Operator

    with transaction() as s:
        op = Operator(username=f"op-{uuid4().hex[:12]}", password_hash="x", roles=["composer"])
        s.add(op)
        s.flush()
        sent_at = utcnow() - timedelta(seconds=sent_ago_s)
        alert = Alert(reference=f"A-T-{uuid4().hex[:10]}", reply_code=reply_code, mode=mode, priority=priority,
                      state="sending", title="t", sender_name=sender,
                      texts=texts or {"es": "Alerta: responda ACK {codigo}"}, target={},
                      ack_deadline_s=ack_deadline_s, escalation=escalation, poll_options=poll_options,
                      composed_by_id=op.id, origin="cli", approved_at=sent_at, sending_at=sent_at, fanout_done=True)
        s.add(alert)
        s.flush()
        alert_id = alert.id
        s.execute(text("""
            INSERT INTO contacts (msisdn, name, language, attributes)
            SELECT n, 'Persona ' || right(n, 4), :lang, '{}' FROM unnest(CAST(:nums AS varchar[])) n
            ON CONFLICT (msisdn) DO NOTHING"""), {"nums": numbers, "lang": language})
        s.execute(text("""
            INSERT INTO deliveries (alert_id, contact_id, msisdn, language, state, attempts, possible_duplicates,
                                    parts_delivered, queued_at, updated_at)
            SELECT :a, c.id, c.msisdn, c.language, 'queued', 0, 0, 0, now(), now()
              FROM contacts c WHERE c.msisdn = ANY(:nums)"""), {"a": alert_id, "nums": numbers})
    return alert_id


def send(gateway, alert_id: int) -> dict:  # type: ignore[no-untyped-def]
    return gateway.send_batch(alert_id, 0, 2**62)


def _json(value: object) -> str:
    import json

    return json.dumps(value)


def deliveries(alert_id: int) -> dict[str, dict]:
    with transaction() as s:
        rows = s.execute(text("SELECT * FROM deliveries WHERE alert_id = :a"), {"a": alert_id}).mappings().all()
    return {r["msisdn"]: dict(r) for r in rows}


def add_group(name: str, numbers: list[str]) -> None:
    with transaction() as s:
        s.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) VALUES (:g, 'static', '', false)"),
                  {"g": name})
        s.execute(text("""INSERT INTO contacts (msisdn, name, language, attributes)
                          SELECT n, 'Supervisor ' || right(n, 4), 'es', '{}' FROM unnest(CAST(:nums AS varchar[])) n
                          ON CONFLICT (msisdn) DO NOTHING"""), {"nums": numbers})
        s.execute(text("""INSERT INTO group_members (group_id, contact_id)
                          SELECT g.id, c.id FROM groups g, contacts c WHERE g.name = :g AND c.msisdn = ANY(:nums)"""),
                  {"g": name, "nums": numbers})
