"""Preemption benchmark: flash alerts approved at every phase of a huge routine alert.

    .venv/bin/python bench/preemption.py [--n 1000000] [--flash 1000] [--workers 2] [--repeats 20]
        [--every 3] [--receipt-delay 20,120] [--quiet 5] [--quiet-s 60] [--flash-at end|spread]
        [--priority flash|high] [--env SIRENA_X=value …] [--keep]

A database of its own, a private redis-server, N contacts in group "todos" and `--flash` more in
group "bomberos" (after them in id order: a flash alert's fan-out then has to get past every
routine contact; `--flash-at spread` picks every N/flash-th routine contact instead), the
simulator (receipts delayed by `--receipt-delay` seconds) and gateway workers and the scheduler
as child processes, as `make demo` runs them. A NORMAL alert to "todos" is approved; then, every
`--every` seconds (jittered), a live FLASH alert to "bomberos" is composed, submitted and approved
by two approvers, and the bench waits for its first and last submit before the next. Each flash
alert is labelled with the routine alert's phase at its approval:

- fanout: the routine alert's deliveries are still being written (fan-out not done);
- sending: all written, some not yet handed to a carrier;
- receipts: all handed over, receipts still coming in;
- quiet: nothing has moved for `--quiet-s` seconds (workers idle; `--env` can compress an hour,
  e.g. shorter idle waits).

`--priority high` approves HIGH alerts instead (one approver, no flash lane: they go through the
RQ queues like any batch): how long the next priority waits behind a routine alert and its receipts.

Per phase: approval → first flash submit recorded (alerts.first_submit_at − approved_at) p50, p99
and max over the samples, and approval → last submit. Target: p99 of the first ≤ 1 s in every
phase. Routine alerts are approved until every busy phase has `--repeats` samples (at most
`--rounds`). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from typing import Any

from common import Sampler, drop_database, sirena, stop
from pipeline import start_rig
from sqlalchemy import create_engine, pool, text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base.db import transaction
from alerting.base.models import Alert, AlertMode, Operator, Priority
from audit.actor import Actor

BUSY_PHASES = ("fanout", "sending", "receipts")
ROUTINE_TEXT = "Aviso: corte de agua programado mañana de 9 a 13 h."
FLASH_TEXT = "EVACUAR: incendio estructural, acudir al cuartel 3."


def seed(n: int, flash: int, *, spread: bool, owner_url: str) -> list[Actor]:
    with transaction() as s:
        s.execute(text("SET LOCAL jit = off"))
        s.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) VALUES "
                       "('todos', 'static', '', false), ('bomberos', 'static', '', false)"))
        s.execute(text("""
            INSERT INTO contacts (msisdn, name, language, attributes)
            SELECT '+569' || lpad(i::text, 8, '0'), 'Persona ' || i, 'es', '{}'::jsonb
              FROM generate_series(1, :n) i"""), {"n": n if spread else n + flash})
        step = max(1, n // flash)
        s.execute(text("""
            INSERT INTO group_members (group_id, contact_id)
            SELECT g.id, c.id FROM groups g, contacts c
             WHERE (g.name = 'todos' AND c.id <= :n)
                OR (g.name = 'bomberos' AND CASE WHEN :spread THEN c.id % :step = 0 AND c.id <= :step * :f
                                                 ELSE c.id > :n END)"""),
                  {"n": n, "spread": spread, "step": step, "f": flash})
        ops = [Operator(username=u, password_hash="x", roles=[r]) for u, r in
               (("comp", "composer"), ("apro1", "approver"), ("apro2", "approver"))]
        s.add_all(ops)
        s.flush()
        actors = [Actor(kind="operator", name=o.username, operator_id=o.id, roles=frozenset(o.roles)) for o in ops]
    analyze(owner_url)
    return actors


def analyze(owner_url: str) -> None:
    """As the tables' owner (the application role may not): statistics as a day-old directory has."""
    owner = create_engine(owner_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(text("VACUUM ANALYZE contacts, group_members, deliveries"))
    owner.dispose()


def compose(composer: Actor, group: str, priority: Priority, body: str) -> int:
    with transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": body}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                            priority=priority, target={"groups": [group]}), composer)
        lifecycle.submit(s, alert.id, composer)
        return alert.id


def approve(alert_id: int, *approvers: Actor) -> None:

    for approver in approvers:
        with transaction() as s:
            lifecycle.approve(s, alert_id, approver, seen_hash=s.get(Alert, alert_id).approval_hash,
                              override_reason="a benchmark: the whole directory on purpose")


def counts(alert_id: int) -> dict[str, int]:
    with transaction() as s:
        rows = s.execute(text("SELECT state, sum(n) FROM alert_counters WHERE alert_id = :a GROUP BY 1"),
                         {"a": alert_id}).all()
    return {k: int(v) for k, v in rows if v}


def phase_of(alert_id: int) -> str:
    """The routine alert's phase now: fanout, sending, receipts or done."""
    with transaction() as s:
        state, fanout_done = s.execute(text("SELECT state, fanout_done FROM alerts WHERE id = :a"),
                                       {"a": alert_id}).one()
    if state in ("approved",) or (state == "sending" and not fanout_done):
        return "fanout"
    now = counts(alert_id)
    if sum(now.get(k, 0) for k in ("queued", "submitting", "waiting_route")):
        return "sending"
    if now.get("submitted", 0):
        return "receipts"
    return "done"


def flash_sample(actors: list[Actor], flash_n: int, timeout_s: float = 120,
                 priority: Priority = Priority.FLASH) -> dict[str, Any]:
    """Compose, submit and approve one flash alert (or of `priority`: a high one needs one approver);
    wait for its first and last submit (PostgreSQL's record)."""
    composer, approver1, approver2 = actors
    alert_id = compose(composer, "bomberos", priority, FLASH_TEXT)
    approve(alert_id, approver1, *([approver2] if priority is Priority.FLASH else []))
    approved = time.monotonic()
    first_seen = None
    while time.monotonic() - approved < timeout_s:
        with transaction() as s:
            first_s, last_s, handed = s.execute(text("""
                SELECT extract(epoch FROM first_submit_at - approved_at),
                       extract(epoch FROM last_submit_at - approved_at),
                       (SELECT coalesce(sum(n), 0) FROM alert_counters c WHERE c.alert_id = a.id
                           AND c.state IN ('submitted', 'delivered', 'failed', 'expired'))
                  FROM alerts a WHERE id = :a"""), {"a": alert_id}).one()
        if first_s is not None and first_seen is None:
            first_seen = time.monotonic() - approved
        if handed >= flash_n:
            break
        time.sleep(0.02)
    return {"alert": alert_id, "first_s": round(float(first_s), 3) if first_s is not None else None,
            "last_s": round(float(last_s), 3) if last_s is not None and handed >= flash_n else None,
            "observed_first_s": round(first_seen, 3) if first_seen is not None else None}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 20 samples is the largest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def figures(samples: list[dict[str, Any]]) -> dict[str, Any]:
    firsts = [s["first_s"] if s["first_s"] is not None else float("inf") for s in samples]
    lasts = [s["last_s"] for s in samples if s["last_s"] is not None]
    if not firsts:
        return {"samples": 0}
    def shown(value: float) -> float | None:  # a flash alert never sent within the wait: no number (JSON null)
        return round(value, 3) if value != float("inf") else None

    out = {"samples": len(firsts), "first_p50_s": shown(statistics.median(firsts)),
           "first_p99_s": shown(percentile(firsts, 99)), "first_max_s": shown(max(firsts)),
           "last_p50_s": round(statistics.median(lasts), 3) if lasts else None,
           "last_max_s": round(max(lasts), 3) if lasts else None,
           "never_sent": sum(1 for s in samples if s["first_s"] is None)}
    out["met"] = out["first_p99_s"] is not None and out["first_p99_s"] <= 1.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--flash", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20, help="samples wanted in each busy phase")
    parser.add_argument("--rounds", type=int, default=3, help="routine alerts at most")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between flash alerts (jittered ±50%%)")
    parser.add_argument("--receipt-delay", default="20,120", help="a receipt comes MIN,MAX seconds after its submit")
    parser.add_argument("--quiet", type=int, default=5, help="samples after a quiet spell (0: none)")
    parser.add_argument("--quiet-s", type=float, default=60.0, help="seconds of quiet before each")
    parser.add_argument("--flash-at", choices=("end", "spread"), default="end")
    parser.add_argument("--priority", choices=("flash", "high"), default="flash",
                        help="of the alerts approved among the routine one (high: no flash lane, one approver)")
    parser.add_argument("--env", action="append", default=[], metavar="SIRENA_X=VALUE",
                        help="a setting for the worker and scheduler processes (repeatable)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    low, high = (float(x) for x in args.receipt_delay.split(","))
    extra = dict(item.split("=", 1) for item in args.env)

    settings, _redis, tmp, env, sim = start_rig("sirena_bench_preemption", receipts=True, window=100,
                                               pdu_log=False, receipt_delay_s=(low, high), extra_env=extra,
                                               own_redis=True)
    started = time.monotonic()
    actors = seed(args.n, args.flash, spread=args.flash_at == "spread", owner_url=settings.database_owner_url)
    print(f"seeded {args.n:,} + {args.flash:,} contacts in {time.monotonic() - started:.1f} s; logs in {tmp}",
          flush=True)
    workers = [sirena("worker", "--share", f"{k}/{args.workers}", "--name", f"bench-pre-{os.getpid()}-{k}",
                      env=env, log=tmp / f"worker{k}.log") for k in range(1, args.workers + 1)]
    scheduler = sirena("scheduler", env=env, log=tmp / "scheduler.log")
    sampler = Sampler({f"worker{k + 1}": w.pid for k, w in enumerate(workers)} | {"simulator": sim.pid,
                                                                                     "scheduler": scheduler.pid})
    time.sleep(3)
    samples: dict[str, list[dict[str, Any]]] = {p: [] for p in (*BUSY_PHASES, "quiet")}
    routines = []
    for _round in range(args.rounds):
        routine = compose(actors[0], "todos", Priority.NORMAL, ROUTINE_TEXT)
        approve(routine, actors[1])
        routines.append(routine)
        round_started = time.monotonic()
        while time.monotonic() - round_started < 3600:
            time.sleep(args.every * random.uniform(0.5, 1.5))
            phase = phase_of(routine)
            if phase == "done":
                break
            if len(samples[phase]) >= args.repeats:
                continue
            sample = flash_sample(actors, args.flash, priority=Priority(args.priority))
            sample["phase"] = phase
            sample["phase_after"] = phase_of(routine)
            samples[phase].append(sample)
            print(f"  {phase:<9} flash {sample['alert']}: first SMS {sample['first_s']} s, last {sample['last_s']} s",
                  flush=True)
        print(f"routine alert {routine} done: {counts(routine)}", flush=True)
        if all(len(samples[p]) >= args.repeats for p in BUSY_PHASES):
            break
    for _ in range(args.quiet):
        time.sleep(args.quiet_s)
        sample = flash_sample(actors, args.flash, priority=Priority(args.priority))
        sample["phase"] = "quiet"
        samples["quiet"].append(sample)
        print(f"  quiet     flash {sample['alert']}: first SMS {sample['first_s']} s, last {sample['last_s']} s",
              flush=True)
    peak = sampler.close()
    stop(*workers, scheduler, sim)
    with transaction() as s:
        routine_rates = [dict(zip(("alert", "seconds"), r, strict=True)) for r in s.execute(text(
            "SELECT id, round(extract(epoch FROM last_submit_at - approved_at)::numeric, 1)::float FROM alerts "
            "WHERE id = ANY(:ids)"), {"ids": routines})]
    by_phase = {phase: figures(rows) for phase, rows in samples.items() if rows}
    result = {"bench": "preemption", "routine_n": args.n, "flash_n": args.flash, "priority": args.priority,
              "workers": args.workers,
              "flash_at": args.flash_at, "receipt_delay_s": [low, high], "quiet_s": args.quiet_s, "env": extra,
              "phases": by_phase, "routines": routine_rates,
              "met": all(f.get("met") for f in by_phase.values()) and set(by_phase) >= {*BUSY_PHASES},
              "peak_rss_mb": peak}
    print("\nphase      samples  first p50   p99     max    last p50   max")
    for phase, f in by_phase.items():
        cells = [f"{v:.3f}" if v is not None else "never" for v in
                 (f["first_p50_s"], f["first_p99_s"], f["first_max_s"], f["last_p50_s"], f["last_max_s"])]
        print(f"{phase:<10} {f['samples']:>7} {cells[0]:>8} {cells[1]:>7} {cells[2]:>7} {cells[3]:>9} {cells[4]:>7}")
    if not args.keep:
        drop_database(settings)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
