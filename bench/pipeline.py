"""Pipeline benchmark: approval → every submit_sm_resp recorded, through real processes.

    .venv/bin/python bench/pipeline.py [--n 100000] [--workers 2] [--keep]

A database of its own (`sirena_bench_pipeline`), `sirena smsc-sim` as a child process with two
carriers, N contacts in one group, gateway workers as child processes (`sirena worker --share K/W`,
4 binds in all over the 2 carriers), one live alert composed, submitted and approved through the
lifecycle service. Measured from the approval's commit to the last submit recorded in Postgres.
Losses and duplicates are counted against the simulator's PDU log (the ground truth of the air).
CPU: the whole machine's CPU time during the run (workers, simulator, PostgreSQL, Redis — and
anything else running, so run it on a quiet machine), and the workers' and simulator's own. Then
each process's own CPU from the approval until every receipt is matched: workers, simulator,
scheduler, a private redis-server (`--shared-redis` to use the machine's), the PostgreSQL backends
of the benchmark's database (summed as `postgres`), and the benchmark itself; these sum to
`processes_cpu_us_per_msg`, which other load on the machine does not inflate much (PostgreSQL's
shared WAL writer/checkpointer are printed apart, not summed: every database on the machine uses them).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import psutil
from common import (
    ProcessCpu,
    Sampler,
    bench_settings,
    cpu_seconds,
    drop_database,
    env_for,
    private_redis,
    sirena,
    start_simulator,
    stop,
)
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base import runtime
from alerting.base.db import transaction
from alerting.base.models import Alert, AlertMode, AlertState, Operator, Priority
from alerting.base.runtime import redis_connection
from audit.actor import Actor

PASSWORDS = {"SIM_ALPHA_PW": "alphapw", "SIM_BETA_PW": "betapw"}
RIG: dict[str, int] = {}  # the private redis-server's pid, when start_rig made one


def sim_config(path: Path, receipts: bool, delay_s: tuple[float, float] = (1.0, 3.0), *, head: str = "",
               per_carrier: str = "") -> None:
    """The simulator's two carriers, alpha and beta; `head`: top-level keys (control_port, log),
    `per_carrier`: more TOML after each carrier's receipts (its handsets)."""
    delay = f"[{delay_s[0]}, {delay_s[1]}]" if receipts else "[0.0, 0.0]"
    path.write_text(head + "".join(f"""
[[carriers]]
name = "{name}"
port = 0
system_id = "{name}"
password_env = "SIM_{name.upper()}_PW"
max_binds = 8
message_id_style = "{'hex' if name == 'alpha' else 'decimal'}"
[carriers.receipts]
style = "both"
delay_s = {delay}
{per_carrier}""" for name in ("alpha", "beta")))


def carriers_file(path: Path, ports: dict[str, int], window: int, *, tps: int = 50000, binds: int = 2,
                  extra: str = "") -> None:
    """Sirena's carriers file for the simulator's carriers; `extra`: more keys for each carrier."""
    path.write_text("""
[senders.SIRENA-SC]
kind = "short"
address = "4242"
""" + "".join(f"""
[carriers.{name}]
host = "127.0.0.1"
port = {port}
system_id = "{name}"
password_env = "SIM_{name.upper()}_PW"
binds = {binds}
tps = {tps}
window = {window}
registered_delivery = 1
test = true
senders = ["SIRENA-SC"]
{extra}""" for name, port in ports.items()))


def seed(n: int) -> tuple[Actor, Actor]:
    with transaction() as s:
        s.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) "
                       "VALUES ('todos', 'static', '', false)"))
        s.execute(text("""
            INSERT INTO contacts (msisdn, name, language, attributes)
            SELECT '+5699' || lpad(i::text, 7, '0'), 'Persona ' || i, 'es', '{}'::jsonb
              FROM generate_series(1, :n) i
        """), {"n": n})
        s.execute(text("INSERT INTO group_members (group_id, contact_id) SELECT g.id, c.id FROM groups g, contacts c"))
        ops = [Operator(username=u, password_hash="x", roles=[r])
               for u, r in (("comp", "composer"), ("apro", "approver"))]
        s.add_all(ops)
        s.flush()
        return tuple(Actor(kind="operator", name=o.username, operator_id=o.id, roles=frozenset(o.roles))
                     for o in ops)  # type: ignore[return-value]


def start_rig(database: str, *, receipts: bool, window: int, pdu_log: bool,  # type: ignore[no-untyped-def]
              receipt_delay_s: tuple[float, float] = (1.0, 3.0), extra_env: dict[str, str] | None = None,
              own_redis: bool = False):
    """A fresh database and Redis db, the simulator as a child with two carriers, their carriers file
    and senders; returns (settings, redis, tmp dir, env for `sirena` children, simulator process).
    `receipt_delay_s`: the range of a receipt's delay after its submit; `extra_env`: more settings
    for the children (e.g. SIRENA_LEASE_S); `own_redis`: a private redis-server instead of db 14 of
    the machine's."""
    from broadcast import carrier_facts
    from broadcast.carriers import load_carriers

    settings = bench_settings(database)
    runtime.use_database(settings, name=f"bench-{database}")
    tmp = Path(tempfile.mkdtemp(prefix="sirena-bench-"))
    if own_redis:
        redis_proc, url = private_redis(tmp)
        settings = replace(settings, redis_url=url)
        RIG["redis_pid"] = redis_proc.pid
    redis = redis_connection(settings.redis_url)
    redis.flushdb()
    runtime.use_redis(redis)
    env = env_for(settings, **PASSWORDS, SIRENA_CARRIERS_FILE=str(tmp / "carriers.toml"), **(extra_env or {}))
    os.environ.update(PASSWORDS)
    sim_config(tmp / "sim.toml", receipts=receipts, delay_s=receipt_delay_s)
    sim, ports = start_simulator(tmp / "sim.toml", env, tmp / "pdus.jsonl" if pdu_log else None)
    carriers_file(tmp / "carriers.toml", ports, window)
    carrier_facts.sync(load_carriers(tmp / "carriers.toml", env))
    return settings, redis, tmp, env, sim


def lost_and_duplicates(log: Path, n: int) -> tuple[int, int, int]:
    per_dest: Counter[str] = Counter()
    with log.open(encoding="utf-8") as fh:
        for line in fh:
            if '"submit_sm"' not in line:
                continue
            rec = json.loads(line)
            if rec.get("command") == "submit_sm" and rec.get("dir") == "in" and rec.get("status") == 0:
                per_dest[rec["dest"]] += 1
    lost = n - len(per_dest)
    dup = sum(c - 1 for c in per_dest.values() if c > 1)
    return lost, dup, sum(per_dest.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--no-receipts", action="store_true", help="simulator sends no delivery receipts")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--shared-redis", action="store_true",
                        help="db 14 of the machine's Redis instead of a private redis-server (its CPU is then "
                             "not attributed)")
    args = parser.parse_args()

    settings, redis, tmp, env, sim = start_rig("sirena_bench_pipeline", receipts=not args.no_receipts,
                                               window=args.window, pdu_log=True,
                                               own_redis=not args.shared_redis)
    composer, approver = seed(args.n)
    with transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": "Alerta de evacuación por inundación en su sector. "
                                                         "Responda ACK {codigo}."},
                                            mode=AlertMode.LIVE, sender_name="SIRENA-SC", priority=Priority.HIGH,
                                            target={"groups": ["todos"]}), composer)
        lifecycle.submit(s, alert.id, composer)
    workers = [sirena("worker", "--share", f"{k}/{args.workers}", "--name", f"bench-gw-{os.getpid()}-{k}", env=env,
                      log=tmp / f"worker{k}.log") for k in range(1, args.workers + 1)]
    scheduler = sirena("scheduler", env=env, log=tmp / "scheduler.log")
    from rq import Worker

    deadline = time.monotonic() + 30
    while len(Worker.all(connection=redis)) < args.workers and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # binds up
    procs = {f"worker{k + 1}": w.pid for k, w in enumerate(workers)}
    procs |= {"simulator": sim.pid, "scheduler": scheduler.pid, "bench": os.getpid()}
    if "redis_pid" in RIG:
        procs["redis"] = RIG["redis_pid"]
    sampler = Sampler(procs)
    # As the admin role: pg_stat_activity hides other roles' backend types from the others.
    per_process = ProcessCpu(procs, make_url(settings.database_admin_url).set(
        database=make_url(settings.database_url).database).render_as_string(hide_password=False)).start()
    own0 = cpu_seconds([w.pid for w in workers] + [sim.pid])
    machine0 = psutil.cpu_times()
    wall0 = time.monotonic()
    with transaction() as s:
        lifecycle.approve(s, alert.id, approver, seen_hash=alert.approval_hash,
                          override_reason="a benchmark: the whole directory on purpose")
    state = None
    while time.monotonic() - wall0 < 3600:
        with transaction() as s:
            state = s.scalar(select(Alert.state).where(Alert.id == alert.id))
        if state in (AlertState.COMPLETED, AlertState.CANCELLED):
            break
        time.sleep(0.05)
    own = cpu_seconds([w.pid for w in workers] + [sim.pid]) - own0
    machine1 = psutil.cpu_times()
    delivered_s = None  # with receipts: until every delivery is `delivered` (receipts stored and matched)
    completed_at = time.monotonic()
    while not args.no_receipts and time.monotonic() - completed_at < 120:
        with transaction() as s:
            delivered = s.execute(text("SELECT coalesce(sum(n), 0) FROM alert_counters WHERE alert_id = :a "
                                       "AND state = 'delivered'"), {"a": alert.id}).scalar_one()
        if delivered >= args.n:
            delivered_s = round(time.monotonic() - wall0, 2)
            break
        time.sleep(0.2)
    # Per process: until every receipt is matched (the receipts of the last seconds' messages
    # arrive after the last submit, and their work is the pipeline's too).
    shares = per_process.stop()
    machine2 = psutil.cpu_times()
    cpu_all = sum(getattr(machine2, f) - getattr(machine0, f) for f in ("user", "system", "nice", "softirq", "irq"))
    cpu = sum(getattr(machine1, f) - getattr(machine0, f) for f in ("user", "system", "nice", "softirq", "irq"))
    with transaction() as s:
        row = s.execute(text("SELECT extract(epoch FROM last_submit_at - approved_at), "
                             "extract(epoch FROM first_submit_at - approved_at) FROM alerts WHERE id = :a"),
                        {"a": alert.id}).one()
        counts = dict(s.execute(text("SELECT state, sum(n) FROM alert_counters WHERE alert_id = :a GROUP BY 1"),
                                {"a": alert.id}).all())
        possible_dup = s.execute(text("SELECT coalesce(sum(possible_duplicates), 0) FROM deliveries "
                                      "WHERE alert_id = :a"), {"a": alert.id}).scalar_one()
    seconds, first_s = float(row[0]), float(row[1])
    workers_cpu = sum(v for k, v in shares.items() if k.startswith("worker"))
    grouped = {"workers": workers_cpu, **{k: v for k, v in shares.items() if not k.startswith("worker")}}
    by_process = {k: round(v * 1e6 / args.n, 1) for k, v in sorted(grouped.items(), key=lambda kv: -kv[1])}
    attributed = sum(v for k, v in grouped.items() if k != "postgres-shared")
    peak = sampler.close()
    time.sleep(1.5)  # the simulator flushes its PDU log every second
    stop(*workers, scheduler, sim)
    lost, dup, air = lost_and_duplicates(tmp / "pdus.jsonl", args.n)
    result = {
        "bench": "pipeline", "n": args.n, "workers": args.workers, "binds": 4, "window": args.window,
        "receipts": not args.no_receipts, "state": str(state), "seconds": round(seconds, 2),
        "first_submit_s": round(first_s, 3), "msgs_per_s": round(args.n / seconds),
        "cpu_s": round(cpu, 2), "cpu_ms_per_1k": round(cpu * 1e6 / args.n, 1),
        "cpu_us_per_msg": round(cpu * 1e6 / args.n, 1),
        "workers_sim_cpu_us_per_msg": round(own * 1e6 / args.n, 1), "peak_rss_mb": peak,
        "machine_cpu_us_per_msg_to_all_delivered": round(cpu_all * 1e6 / args.n, 1),
        "cpu_us_per_msg_by_process": by_process,
        "processes_cpu_us_per_msg": round(attributed * 1e6 / args.n, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "all_delivered_s": delivered_s,
        "lost": lost, "dup": dup, "possible_dup_counted": int(possible_dup), "air_submits": air,
        "counts": {k: int(v) for k, v in counts.items() if v},
    }
    print(f"{args.n:,} recipients, {args.workers} workers, 4 binds: {result['msgs_per_s']:,} msg/s "
          f"({seconds:.2f} s; first submit after {first_s * 1000:.0f} ms); "
          f"machine CPU {result['cpu_us_per_msg']} µs/msg "
          f"(workers + simulator alone {result['workers_sim_cpu_us_per_msg']} µs/msg); lost {lost}, duplicates {dup}; "
          f"peak RSS {peak}")
    print(f"CPU µs per message by process (from approval until every receipt matched; load {os.getloadavg()[0]:.2f}): "
          + ", ".join(f"{k} {v} ({v * 100 / max(result['processes_cpu_us_per_msg'], 1e-9):.0f} %)"
                      if k != "postgres-shared" else f"{k} {v} (shared by every database: not summed)"
                      for k, v in by_process.items())
          + f"; these processes {result['processes_cpu_us_per_msg']} µs/msg "
            f"(machine {result['machine_cpu_us_per_msg_to_all_delivered']} over the same span)")
    if not args.keep:
        drop_database(settings)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
