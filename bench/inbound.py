"""Inbound benchmark: 10,000 replies and 10,000 receipts pushed by the simulator into a running system.

The system: a gateway carrier pool bound to the simulator (two carriers with different id and
receipt spellings), the raw InboundStore (group commit) and the interpretation jobs
(`broadcast.replies.process_inbound`, run by worker threads as the store's hook queues them, as an
RQ worker would). Set-up, untimed: a fresh database, 10,000 contacts, an alert sent to them all
(without receipts). Timed: from the moment the simulator is told to push everything until every
receipt is matched and applied and every reply is matched and recorded.

    .venv/bin/python bench/inbound.py [--n 10000] [--workers 2] [--binds 4]

Last line: one JSON object {"bench": "inbound", "replies": …, "receipts": …, "seconds": …, "per_s": …,
"unmatched": …}. Target (DESIGN.md): ≤ 5 s for the 20,000.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from alerting.base import db as dbmod  # noqa: E402
from alerting.base import runtime  # noqa: E402
from alerting.base.db import transaction, utcnow  # noqa: E402
from alerting.base.settings import Settings  # noqa: E402

DATABASE = "sirena_bench_inbound"
TEXTS = ["ACK 4821", "ok", "Recibido", "si", "ACK", "enterado 4821", "👍", "no", "no puedo ir", "¿a qué hora?"]


def fresh_database() -> Settings:
    """A fresh, migrated database of the benchmark's own (never the user's `sirena`)."""
    from common import bench_settings

    return bench_settings(DATABASE)


def carriers_toml(ports: dict[str, int], binds: int) -> str:
    out = ['[senders.SIRENA-SC]\nkind = "short"\naddress = "4242"\n']
    for name, style in (("alpha", "hex"), ("beta", "decimal")):
        out.append(f"""[carriers.{name}]
host = "127.0.0.1"
port = {ports[name]}
system_id = "{name}"
password_env = "PW_{name.upper()}"
binds = {binds}
tps = 50000
window = 100
registered_delivery = 0
receipt_id_style = "{style}"
test = true
senders = ["SIRENA-SC"]
""")
    return "\n".join(out)


def seed(n: int) -> int:
    from alerting.base.models import Alert, Operator

    with transaction() as s:
        op = Operator(username="bench", password_hash="x", roles=["composer"])
        s.add(op)
        s.flush()
        now = utcnow()
        alert = Alert(reference="A-BENCH-1", reply_code="4821", mode="live", priority="high", state="sending",
                      sender_name="SIRENA-SC", texts={"es": "Alerta de prueba: responda ACK {codigo}"}, target={},
                      composed_by_id=op.id, origin="cli", approved_at=now, sending_at=now, fanout_done=True)
        s.add(alert)
        s.flush()
        s.execute(text("""INSERT INTO contacts (msisdn, name, language, attributes)
                          SELECT '+5699' || lpad(i::text, 7, '0'), 'Persona ' || i, 'es', '{}'
                            FROM generate_series(1, :n) i"""), {"n": n})
        s.execute(text("""INSERT INTO deliveries (alert_id, contact_id, msisdn, language, state, attempts,
                                                  possible_duplicates, parts_delivered, queued_at, updated_at)
                          SELECT :a, id, msisdn, 'es', 'queued', 0, 0, 0, now(), now() FROM contacts"""),
                  {"a": alert.id})
        return alert.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="replies, and receipts (default 10000 each)")
    parser.add_argument("--workers", type=int, default=2, help="interpretation worker threads")
    parser.add_argument("--binds", type=int, default=4, help="binds per carrier")
    parser.add_argument("--coalesce-s", type=float, default=0.3, help="the hook's coalescing interval")
    args = parser.parse_args()

    from broadcast import carrier_facts, replies
    from broadcast.carriers import parse_carriers
    from broadcast.gateway import Gateway
    from broadcast.inbound import Coalescer, InboundStore, send_work_waiting
    from smsc_sim import CarrierConfig, ReceiptConfig, SimConfig, Simulator

    settings = fresh_database()
    runtime.use_database(settings, name="bench-inbound")
    dbmod.engine().pool.dispose()
    sim = Simulator(SimConfig(keep_records=True, carriers=[
        CarrierConfig(name="alpha", password="alpha-pw", message_id_style="hex", max_binds=64,
                      receipts=ReceiptConfig(style="text", id_style="upper")),
        CarrierConfig(name="beta", password="beta-pw", message_id_style="decimal", max_binds=64,
                      receipts=ReceiptConfig(style="tlv", id_style="padded")),
    ]))
    sim.start_in_thread()
    config = parse_carriers(carriers_toml(sim.ports(), args.binds), {"PW_ALPHA": "alpha-pw", "PW_BETA": "beta-pw"})
    carrier_facts.sync(config)
    ranges: queue.Queue[tuple[int, int, str] | None] = queue.Queue()
    # As `sirena worker` wires it: the store pokes a Coalescer for replies and one for receipts
    # (held while send batches wait: none do here), each queueing one job per interval.
    replies_coalescer = Coalescer(lambda lo, hi: ranges.put((lo, hi, "replies")), interval_s=args.coalesce_s)
    receipts_coalescer = Coalescer(lambda lo, hi: ranges.put((lo, hi, "receipts")), interval_s=args.coalesce_s,
                                   hold=send_work_waiting)
    store = InboundStore(after_store=replies_coalescer.poke, after_receipts=receipts_coalescer.poke)
    gateway = Gateway(config, name="gw-bench-inbound", on_deliver=store, flash_lane=False)
    gateway.start()

    def work() -> None:
        # Jobs queued while one ran are taken together, as an RQ worker's later jobs find their rows done.
        while (item := ranges.get()) is not None:
            bottom, top, only = item
            while True:
                try:
                    more = ranges.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    ranges.put(None)
                    break
                bottom, top = min(bottom, more[0]), max(top, more[1])
                only = only if more[2] == only else None  # both kinds: one pass takes every row
            try:
                replies.process_inbound(bottom, top, only or None)
            except Exception as exc:  # the sweep takes the rows again, as in production
                print(f"process_inbound({bottom}, {top}, {only}) failed: {exc!r}", file=sys.stderr)

    stop_sweeping = threading.Event()

    def sweeper() -> None:
        # As the scheduler queues it (broadcast.inbound.queue_sweep): one sweep every 5 s takes the
        # rows no job finished (a job's LIMIT, a failed job).
        while not stop_sweeping.wait(5.0):
            try:
                replies.sweep()
            except Exception as exc:
                print(f"sweep failed: {exc!r}", file=sys.stderr)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(args.workers)]
    for worker in workers:
        worker.start()
    threading.Thread(target=sweeper, daemon=True).start()
    try:
        alert_id = seed(args.n)
        while gateway.send_batch(alert_id, 0, 2**62)["claimed"]:
            pass
        with transaction() as s:
            ids = s.execute(text("SELECT carrier, message_ids[1], msisdn FROM deliveries WHERE alert_id = :a "
                                 "AND state = 'submitted'"), {"a": alert_id}).all()
        assert len(ids) == args.n, f"only {len(ids)} of {args.n} submitted"
        by_carrier: dict[str, list[str]] = {}
        for carrier, message_id, _ in ids:
            by_carrier.setdefault(carrier, []).append(message_id)
        mos = [(msisdn.lstrip("+"), "4242", TEXTS[i % len(TEXTS)]) for i, (_, _, msisdn) in enumerate(ids)]
        print(f"set-up done: {args.n} delivered to the simulator over {len(gateway.pool.routes)} binds "
              f"({', '.join(f'{c}: {len(v)}' for c, v in by_carrier.items())}); pushing…", file=sys.stderr)

        started = time.monotonic()
        for carrier, message_ids in by_carrier.items():
            sim.send_receipt_batch(carrier, message_ids, "DELIVRD")
        half = len(mos) // 2
        sim.send_mo_batch("alpha", mos[:half])
        sim.send_mo_batch("beta", mos[half:])
        pushed = time.monotonic() - started
        stored_at = None
        while True:
            if stored_at is None and store.stored >= 2 * args.n:
                stored_at = time.monotonic() - started
                if not workers:  # --workers 0: interpret only once everything is stored (profiling)
                    report = replies.process_inbound(0, 2**62)
                    print(f"one batch: {time.monotonic() - started - stored_at:.2f} s {report}", file=sys.stderr)
            with transaction() as s:
                done = s.execute(text("""
                    SELECT (SELECT count(*) FROM replies),
                           (SELECT count(*) FROM receipts WHERE matched_at IS NOT NULL),
                           (SELECT count(*) FROM deliveries WHERE alert_id = :a AND state = 'delivered')
                """), {"a": alert_id}).one()
            if done[0] >= args.n and done[1] >= args.n and done[2] >= args.n:
                break
            if time.monotonic() - started > 120:
                print(f"gave up after 120 s: {tuple(done)}", file=sys.stderr)
                break
            time.sleep(0.01)
        seconds = time.monotonic() - started
        with transaction() as s:
            unmatched = s.execute(text("""
                SELECT (SELECT count(*) FROM replies WHERE delivery_id IS NULL)
                     + (SELECT count(*) FROM receipts WHERE matched_at IS NULL)""")).scalar_one()
            meanings = dict(s.execute(text("SELECT meaning, count(*) FROM replies GROUP BY 1")).all())
        print(f"pushed in {pushed:.2f} s; stored raw after {stored_at or 0:.2f} s; all matched and recorded "
              f"after {seconds:.2f} s; meanings {meanings}; inbound stored {store.stored}", file=sys.stderr)
    finally:
        stop_sweeping.set()
        for _ in workers:
            ranges.put(None)
        gateway.stop()
        store.close()
        sim.stop()
    total = 2 * args.n
    print(json.dumps({"bench": "inbound", "replies": args.n, "receipts": args.n, "seconds": round(seconds, 3),
                      "per_s": round(total / seconds), "unmatched": int(unmatched)}))


if __name__ == "__main__":
    main()
