"""Preemption benchmark: a flash alert approved while a huge routine alert is sending.

    .venv/bin/python bench/preemption.py [--n 1000000] [--flash 1000] [--workers 2]

A database of its own, N contacts in group "todos" and `--flash` more in group "bomberos", the
simulator and gateway workers as child processes (as bench/pipeline.py). A NORMAL alert to
"todos" is approved; once its sending is under way, a live FLASH alert to "bomberos" is composed,
submitted and approved by two approvers. Prints the time from the flash alert's approval to its
first and last submit recorded, and how far the routine alert had got. Target: first ≤ 1 s.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from common import Sampler, drop_database, sirena, stop
from pipeline import start_rig
from sqlalchemy import text

from alerting.db import transaction
from alerting.lifecycle import AlertDraft, compose_alert, submit_alert
from alerting.models import Alert, AlertMode, Operator, Priority
from audit.actor import Actor


def seed(n: int, flash: int) -> list[Actor]:
    with transaction() as s:
        s.execute(text("SET LOCAL jit = off"))
        s.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) VALUES "
                       "('todos', 'static', '', false), ('bomberos', 'static', '', false)"))
        s.execute(text("""
            INSERT INTO contacts (msisdn, name, language, attributes)
            SELECT '+569' || lpad(i::text, 8, '0'), 'Persona ' || i, 'es', '{}'::jsonb
              FROM generate_series(1, :n) i"""), {"n": n + flash})
        s.execute(text("""
            INSERT INTO group_members (group_id, contact_id)
            SELECT g.id, c.id FROM groups g, contacts c
             WHERE (g.name = 'todos' AND c.id <= :n) OR (g.name = 'bomberos' AND c.id > :n)"""), {"n": n})
        s.execute(text("ANALYZE"))
        ops = [Operator(username=u, password_hash="x", roles=[r]) for u, r in
               (("comp", "composer"), ("apro1", "approver"), ("apro2", "approver"))]
        s.add_all(ops)
        s.flush()
        return [Actor(kind="operator", name=o.username, operator_id=o.id, roles=frozenset(o.roles)) for o in ops]


def compose(composer: Actor, group: str, priority: Priority, body: str) -> int:
    with transaction() as s:
        alert = compose_alert(s, AlertDraft(texts={"es": body}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                            priority=priority, target={"groups": [group]}), composer)
        submit_alert(s, alert.id, composer)
        return alert.id


def approve(alert_id: int, *approvers: Actor) -> None:
    from alerting.corrections import approve_alert

    for approver in approvers:
        with transaction() as s:
            approve_alert(s, alert_id, approver, seen_hash=s.get(Alert, alert_id).approval_hash)


def submitted(alert_id: int) -> int:
    with transaction() as s:
        return int(s.execute(text("SELECT coalesce(sum(n), 0) FROM alert_counters WHERE alert_id = :a "
                                  "AND state IN ('submitted', 'delivered', 'failed')"), {"a": alert_id}).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--flash", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--after", type=int, default=50_000, help="approve the flash once this many routine SMS left")
    parser.add_argument("--finish", action="store_true",
                        help="then wait for the routine alert to complete (its rate and every process's peak RSS)")
    args = parser.parse_args()

    settings, _redis, tmp, env, sim = start_rig("sirena_bench_preemption", receipts=False, window=100,
                                               pdu_log=False)
    started = time.monotonic()
    composer, approver1, approver2 = seed(args.n, args.flash)
    print(f"seeded {args.n + args.flash:,} contacts in {time.monotonic() - started:.1f} s")
    routine = compose(composer, "todos", Priority.NORMAL, "Aviso: corte de agua programado mañana de 9 a 13 h.")
    flash = compose(composer, "bomberos", Priority.FLASH, "EVACUAR: incendio estructural, acudir al cuartel 3.")
    workers = [sirena("worker", "--share", f"{k}/{args.workers}", "--name", f"bench-pre-{os.getpid()}-{k}",
                      env=env, log=tmp / f"worker{k}.log") for k in range(1, args.workers + 1)]
    scheduler = sirena("scheduler", env=env, log=tmp / "scheduler.log")
    sampler = Sampler({f"worker{k + 1}": w.pid for k, w in enumerate(workers)} | {"simulator": sim.pid,
                                                                                     "scheduler": scheduler.pid})
    time.sleep(3)
    approve(routine, approver1)
    while submitted(routine) < args.after:
        time.sleep(0.05)
    routine_at = submitted(routine)
    approve(flash, approver1, approver2)
    approved = time.monotonic()
    first = last = None
    while time.monotonic() - approved < 600:
        done = submitted(flash)
        if first is None and done:
            first = time.monotonic() - approved
        if done >= args.flash:
            last = time.monotonic() - approved
            break
        time.sleep(0.02)
    with transaction() as s:
        db_first, db_last = s.execute(text(
            "SELECT extract(epoch FROM first_submit_at - approved_at), extract(epoch FROM last_submit_at - approved_at)"
            " FROM alerts WHERE id = :a"), {"a": flash}).one()
    routine_then = submitted(routine)
    routine_s = None
    if args.finish:
        while time.monotonic() - approved < 3600 and submitted(routine) < args.n:
            time.sleep(0.5)
        with transaction() as s:
            routine_s = s.execute(text("SELECT extract(epoch FROM last_submit_at - approved_at) FROM alerts "
                                       "WHERE id = :a"), {"a": routine}).scalar_one()
    peak = sampler.close()
    stop(*workers, scheduler, sim)
    result = {"bench": "preemption", "routine_n": args.n, "flash_n": args.flash, "workers": args.workers,
              "routine_submitted_at_flash_approval": routine_at, "routine_submitted_when_flash_done": routine_then,
              "flash_first_submit_s": round(float(db_first), 3) if db_first is not None else None,
              "flash_last_submit_s": round(float(db_last), 3) if db_last is not None else None,
              "observed_first_s": round(first, 3) if first else None,
              "observed_last_s": round(last, 3) if last else None,
              "routine_seconds": round(float(routine_s), 1) if routine_s else None,
              "routine_msgs_per_s": round(args.n / float(routine_s)) if routine_s else None,
              "peak_rss_mb": peak}
    print(f"flash alert to {args.flash:,}: first SMS {result['flash_first_submit_s']} s after approval, last "
          f"{result['flash_last_submit_s']} s; the routine alert to {args.n:,} had {routine_at:,} submitted then")
    if not args.keep:
        drop_database(settings)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
