"""Soak: alerts for 30 minutes with faults injected at random, then nothing lost, duplicates counted.

    .venv/bin/python bench/soak.py [--minutes 30] [--seed N] [--workers 2] [--alert-every 30]
        [--fault-every 75] [--contacts 30000]

Everything is its own: a throwaway PostgreSQL cluster (tests/faults/pgcluster.py: initdb in a
temporary directory, its own port, removed at the end), a private redis-server, the simulator
(two carriers with receipts, a few handsets replying), `--workers` gateway workers and a scheduler
as child processes. Every `--alert-every` seconds (jittered) an alert is composed, submitted and
approved: flash to "evacuar" (1 % of the contacts, two approvers), high to "brigadas" (10 %),
normal or low to "todos". Every `--fault-every` seconds (jittered) one fault, drawn at random:

- worker-kill: SIGKILL of a whole gateway process (a new one, new name, starts 2 s later);
- worker-term: SIGTERM (a deploy): it must exit by itself within 30 s; a new one starts then;
- bind-drop: one carrier drops every link at once;
- redis-restart: redis-server SIGKILLed, started again empty on the same port;
- postgres-restart: the cluster restarted `-m immediate` (a crash).

After `--minutes`, no new alert; every alert must complete (15 minutes at most). Then, against the
simulator's PDU log (the air): per alert, recipients never reached (lost: must be 0), copies beyond
one on the air (duplicates; the copies Sirena sent again on purpose — the re-send to non-responders
at the ACK deadline, a carrier retry after an undelivered receipt — are follow-ups of their own and
not duplicates) against what Sirena counted (`possible_duplicates`: never fewer) and the
bound the faults allow (a slice of a process's windows per kill, restart or drop); and
`sirena audit verify`. Prints the faults and per-priority figures; last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common import ROOT, Sampler, env_for, sirena, start_simulator_listening, stop
from pipeline import PASSWORDS, carriers_file, sim_config
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base import runtime
from alerting.base.db import transaction
from alerting.base.models import AlertMode, Operator, Priority
from alerting.base.runtime import redis_connection
from alerting.base.settings import Settings
from audit.actor import Actor
from tests.faults.pgcluster import ThrowawayPostgres

WINDOW, BINDS = 50, 2  # per carrier; each of W workers opens BINDS / W of them
FAULTS = {"worker-kill": 3, "worker-term": 2, "bind-drop": 2, "redis-restart": 1, "postgres-restart": 1}
KINDS = (  # (priority, group, weight)
    (Priority.FLASH, "evacuar", 1), (Priority.HIGH, "brigadas", 3), (Priority.NORMAL, "todos", 2),
    (Priority.LOW, "todos", 1))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Redis:
    """A private redis-server that can be killed and started again empty on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind",
                                 "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis_connection(self.url, timeout_s=0.5).ping():
                    return proc
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart_empty(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        time.sleep(2)
        self.proc = self.start()


@dataclass
class Workers:
    env: dict[str, str]
    logs: Path
    count: int
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    generation: int = 0

    def start(self, k: int) -> None:
        self.generation += 1
        self.procs[k] = sirena("worker", "--share", f"{k}/{self.count}", "--name",
                               f"soak-{os.getpid()}-{k}-{self.generation}", env=self.env,
                               log=self.logs / f"worker{k}-{self.generation}.log")


HANDSETS = """[carriers.handsets]
reply_share = 0.02
delay_s = [2.0, 10.0]
texts = [{ text = "ACK {code}", weight = 8 }, { text = "AYUDA", weight = 1 }, { text = "ok", weight = 1 }]
"""


def seed(contacts: int) -> list[Actor]:
    with transaction() as s:
        s.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) VALUES "
                       "('todos', 'static', '', false), ('brigadas', 'static', '', false), "
                       "('evacuar', 'static', '', false)"))
        s.execute(text("""
            INSERT INTO contacts (msisdn, name, language, attributes)
            SELECT '+5699' || lpad(i::text, 7, '0'), 'Persona ' || i, CASE WHEN i % 5 = 0 THEN 'en' ELSE 'es' END,
                   '{}'::jsonb
              FROM generate_series(1, :n) i"""), {"n": contacts})
        s.execute(text("""
            INSERT INTO group_members (group_id, contact_id)
            SELECT g.id, c.id FROM groups g, contacts c
             WHERE g.name = 'todos' OR (g.name = 'brigadas' AND c.id % 10 = 0)
                OR (g.name = 'evacuar' AND c.id % 100 = 7)"""))
        ops = [Operator(username=u, password_hash="x", roles=[r]) for u, r in
               (("comp", "composer"), ("apro1", "approver"), ("apro2", "approver"))]
        s.add_all(ops)
        s.flush()
        return [Actor(kind="operator", name=o.username, operator_id=o.id, roles=frozenset(o.roles)) for o in ops]


def new_alert(number: int, actors: list[Actor], rng: random.Random) -> tuple[int, str]:
    priority, group, _ = rng.choices(KINDS, weights=[w for *_, w in KINDS])[0]
    composer, first, second = actors
    body = f"Soak #{number}: aviso de prueba de carga, responda ACK {{codigo}}"
    with transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": body, "en": body}, mode=AlertMode.LIVE,
                                            sender_name="SIRENA-SC", priority=priority, target={"groups": [group]}),
                              composer)
        lifecycle.submit(s, alert.id, composer)
        need = alert.required_approvals
    for approver in (first, second)[:need]:
        with transaction() as s:
            lifecycle.approve(s, alert.id, approver, seen_hash=alert.approval_hash,
                              override_reason="a benchmark: the whole directory on purpose")
    return alert.id, priority.value


def inject(kind: str, workers: Workers, redis: Redis, pg: ThrowawayPostgres, control: Any,
           rng: random.Random) -> dict[str, Any]:
    """Carry out one fault; returns what happened (and how many duplicates it may cause)."""
    slice_ = WINDOW * BINDS * 2 // workers.count  # the windows of one process: what a kill may re-send
    event: dict[str, Any] = {"fault": kind, "at": time.strftime("%H:%M:%S")}
    if kind in ("worker-kill", "worker-term"):
        k = rng.randint(1, workers.count)
        proc = workers.procs[k]
        if kind == "worker-kill":
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            event.update(worker=k, bound=slice_)
            time.sleep(2)
        else:
            t0 = time.monotonic()
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                code = proc.wait(30)
                event.update(worker=k, exit_code=code, stop_s=round(time.monotonic() - t0, 1), bound=0)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                event.update(worker=k, exit_code=None, ignored=True, bound=slice_)
        workers.start(k)
    elif kind == "bind-drop":
        carrier = rng.choice(("alpha", "beta"))
        control.set_fault(carrier, "drop_after", n=1, times=BINDS)
        event.update(carrier=carrier, bound=WINDOW * BINDS)
    elif kind == "redis-restart":
        redis.restart_empty()
        event.update(bound=slice_ * workers.count)
    elif kind == "postgres-restart":
        event.update(restart_s=round(pg.restart("immediate"), 1), bound=slice_ * workers.count)
    return event


def air_counts(log: Path) -> Counter[tuple[str, int]]:
    """(destination, soak alert number) → whole messages that reached the air."""
    counts: Counter[tuple[str, int]] = Counter()
    with log.open(encoding="utf-8") as fh:
        for line in fh:
            if '"submit_sm"' not in line or "Soak #" not in line:
                continue
            rec = json.loads(line)
            if rec.get("command") != "submit_sm" or rec.get("dir") != "in" or rec.get("status") != 0:
                continue
            body = rec.get("text") or ""
            number = body.split("Soak #", 1)[1].split(":", 1)[0]
            counts[(rec["dest"], int(number))] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--contacts", type=int, default=30_000)
    parser.add_argument("--alert-every", type=float, default=30.0)
    parser.add_argument("--fault-every", type=float, default=75.0)
    parser.add_argument("--tps", type=int, default=1000, help="per carrier")
    args = parser.parse_args()
    seed_value = args.seed if args.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed_value)
    tmp = Path(tempfile.mkdtemp(prefix="sirena-soak-"))
    pg = ThrowawayPostgres(free_port())
    pg.start()
    try:
        run(args, rng, seed_value, tmp, pg)
    finally:
        stop_all()
        pg.remove()


_procs: list[subprocess.Popen[bytes]] = []
_redis: list[Redis] = []  # its process changes at each restart: stopped by what it runs now


def stop_all() -> None:
    stop(*_procs, *(r.proc for r in _redis), timeout_s=10)


def run(args: argparse.Namespace, rng: random.Random, seed_value: int, tmp: Path, pg: ThrowawayPostgres) -> None:
    from broadcast import carrier_facts
    from broadcast.carriers import load_carriers
    from smsc_sim.control import ControlClient

    key = tmp / "secret_key"
    key.write_text("soak-secret-key-" + os.urandom(16).hex())
    key.chmod(0o600)
    redis = Redis(tmp)
    _redis.append(redis)
    settings = replace(pg.settings_for(Settings.from_env(), "sirena_soak"), redis_url=redis.url, secret_key_file=key,
                       audit_checkpoint_dir=tmp / "checkpoints", data_dir=tmp / "data")
    runtime.use_database(settings, name="bench-soak")
    runtime.use_redis(redis_connection(redis.url))
    env = env_for(settings, **PASSWORDS, SIRENA_CARRIERS_FILE=str(tmp / "carriers.toml"),
                  SIRENA_SECRET_KEY_FILE=str(key), SIRENA_AUDIT_CHECKPOINT_DIR=str(tmp / "checkpoints"),
                  SIRENA_DATA_DIR=str(tmp / "data"), SIRENA_LEASE_S="10", SIRENA_LOG_LEVEL="INFO")
    os.environ.update(PASSWORDS)
    pdus = tmp / "pdus.jsonl"
    sim_config(tmp / "sim.toml", True, (1.0, 5.0), head=f'control_port = 0\nlog = "{pdus}"\n', per_carrier=HANDSETS)
    sim, listening = start_simulator_listening(tmp / "sim.toml", env)
    _procs.append(sim)
    carriers_file(tmp / "carriers.toml", listening["ports"], WINDOW, tps=args.tps, binds=BINDS,
                  extra="response_timeout_s = 10")
    carrier_facts.sync(load_carriers(tmp / "carriers.toml", env))
    actors = seed(args.contacts)
    logs = tmp / "logs"
    logs.mkdir()
    workers = Workers(env, logs, args.workers)
    for k in range(1, args.workers + 1):
        workers.start(k)
    scheduler = sirena("scheduler", env=env, log=logs / "scheduler.log")
    _procs.append(scheduler)
    print(f"soak: seed {seed_value}, {args.contacts:,} contacts, {args.workers} workers, {args.minutes:g} min; "
          f"logs in {tmp}", flush=True)
    sampler = Sampler({"scheduler": scheduler.pid, "simulator": sim.pid}, period_s=1.0)
    time.sleep(3)
    alerts: dict[int, tuple[int, str]] = {}  # alert id → (its number in the text, priority)
    numbers = iter(range(1, 1_000_000))
    events: list[dict[str, Any]] = []
    started = time.monotonic()
    end = started + args.minutes * 60
    next_alert = started
    next_fault = started + args.fault_every * rng.uniform(0.5, 1.5)
    with ControlClient("127.0.0.1", listening["control_port"]) as control:
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_alert:
                number = next(numbers)
                try:
                    alert_id, priority = new_alert(number, actors, rng)
                    alerts[alert_id] = (number, priority)
                except Exception as exc:  # the database restarting this instant: the operator tries again
                    print(f"  {time.strftime('%H:%M:%S')} approval failed ({exc.__class__.__name__}); again in 5 s")
                    next_alert = now + 5
                    continue
                next_alert = now + args.alert_every * rng.uniform(0.5, 1.5)
            if now >= next_fault:
                kind = rng.choices(list(FAULTS), weights=list(FAULTS.values()))[0]
                event = inject(kind, workers, redis, pg, control, rng)
                if kind == "redis-restart":
                    runtime.use_redis(redis_connection(redis.url))
                events.append(event)
                print(f"  {event['at']} {kind}: {event}", flush=True)
                next_fault = time.monotonic() + args.fault_every * rng.uniform(0.5, 1.5)
            time.sleep(0.5)
    print(f"soak: {len(alerts)} alerts, {len(events)} faults; waiting for every alert to complete", flush=True)
    finish = time.monotonic()
    pending = set(alerts)
    while pending and time.monotonic() - finish < 900:
        with transaction() as s:
            done = {r[0] for r in s.execute(text("SELECT id FROM alerts WHERE id = ANY(:ids) AND state = 'completed'"),
                                            {"ids": list(pending)})}
        pending -= done
        time.sleep(2)
    drain_s = round(time.monotonic() - finish, 1)
    stopped = []
    for k, proc in workers.procs.items():  # a clean stop of every worker, timed
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            stopped.append({"worker": k, "exit_code": proc.wait(30), "stop_s": round(time.monotonic() - t0, 1)})
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stopped.append({"worker": k, "exit_code": None, "ignored": True})
    time.sleep(2)  # the simulator flushes its PDU log every second
    peak = sampler.close()
    figures = check(alerts, air_counts(pdus), events, env)
    result = {"bench": "soak", "seed": seed_value, "minutes": args.minutes, "workers": args.workers,
              "contacts": args.contacts, "alerts": len(alerts), "not_completed": sorted(pending),
              "drain_s": drain_s, "faults": Counter(e["fault"] for e in events), "events": events,
              "final_stops": stopped, "peak_rss_mb": peak, **figures}
    result["ok"] = (not pending and figures["lost"] == 0 and figures["duplicates"] <= figures["counted"]
                    and figures["duplicates"] <= figures["bound"] and figures["audit_verify"].get("ok") is True)
    kinds = dict(Counter(p for _, p in alerts.values()))
    print(f"\n{len(alerts)} alerts ({kinds}), {figures['recipients']:,} recipients, "
          f"{len(events)} faults ({dict(result['faults'])}): lost {figures['lost']}, duplicates on the air "
          f"{figures['duplicates']} (counted {figures['counted']}, bound {figures['bound']}), not completed "
          f"{len(pending)}, audit verify {'OK' if figures['audit_verify'].get('ok') else 'FAILED'}")
    for priority, row in figures["by_priority"].items():
        print(f"  {priority:<7} {row['alerts']:>4} alerts {row['recipients']:>9,} recipients, first SMS p50 "
              f"{row['first_p50_s']} s max {row['first_max_s']} s, lost {row['lost']}, duplicates {row['duplicates']}, "
              f"sent again on purpose {row['sent_again']} (ACK-deadline re-sends, carrier retries)")
    print(json.dumps(result, default=str))


def check(alerts: dict[int, tuple[int, str]], air: Counter[tuple[str, int]], events: list[dict[str, Any]],
          env: dict[str, str]) -> dict[str, Any]:
    """Per alert against the air; the audit trail verified by the command an auditor runs."""
    by_priority: dict[str, dict[str, Any]] = {}
    lost = duplicates = counted = recipients = 0
    with transaction() as s:
        for alert_id, (n, priority) in alerts.items():
            rows = s.execute(text("SELECT msisdn, possible_duplicates FROM deliveries WHERE alert_id = :a"),
                             {"a": alert_id}).all()
            first = s.scalar(text("SELECT extract(epoch FROM first_submit_at - approved_at) FROM alerts WHERE id = :a"),
                             {"a": alert_id})
            # copies meant to reach the air again: the escalation's re-send to non-responders at the ACK
            # deadline and a carrier retry after an undelivered receipt (each a follow-up of its own,
            # with its own possible-duplicate count)
            again = {m: (int(sent), int(dups)) for m, sent, dups in s.execute(text("""
                SELECT msisdn, count(*) FILTER (WHERE submitted_at IS NOT NULL), coalesce(sum(possible_duplicates), 0)
                  FROM followups WHERE alert_id = :a AND kind IN ('resend', 'carrier_retry') GROUP BY msisdn"""),
                {"a": alert_id})}
            got = [(air.get((msisdn.lstrip("+"), n), 0), again.get(msisdn, (0, 0))[0]) for msisdn, _ in rows]
            row = by_priority.setdefault(priority, {"alerts": 0, "recipients": 0, "lost": 0, "duplicates": 0,
                                                    "counted": 0, "sent_again": 0, "firsts": []})
            row["alerts"] += 1
            row["recipients"] += len(rows)
            row["lost"] += sum(1 for c, _ in got if c == 0)
            row["duplicates"] += sum(max(c - 1 - meant, 0) for c, meant in got)
            row["sent_again"] += sum(meant for _, meant in got)
            row["counted"] += sum(int(d) for _, d in rows) + sum(d for _, d in again.values())
            if first is not None:
                row["firsts"].append(float(first))
    for row in by_priority.values():
        firsts = sorted(row.pop("firsts"))
        row["first_p50_s"] = round(firsts[len(firsts) // 2], 2) if firsts else None
        row["first_max_s"] = round(firsts[-1], 2) if firsts else None
        lost, duplicates = lost + row["lost"], duplicates + row["duplicates"]
        counted, recipients = counted + row["counted"], recipients + row["recipients"]
    verify = subprocess.run([str(ROOT / ".venv" / "bin" / "sirena"), "audit", "verify", "--json"], env=env,
                            capture_output=True, text=True, timeout=600)
    try:
        verdict = json.loads(verify.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        verdict = {"ok": False, "error": (verify.stderr or verify.stdout)[-500:]}
    return {"recipients": recipients, "lost": lost, "duplicates": duplicates, "counted": counted,
            "bound": sum(int(e.get("bound", 0)) for e in events), "by_priority": by_priority,
            "audit_verify": {k: verdict.get(k) for k in ("ok", "events", "count", "problems", "error") if k in verdict}}


if __name__ == "__main__":
    main()
