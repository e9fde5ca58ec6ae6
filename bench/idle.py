"""Idle benchmark: a long-lived stack idles, then approvals and HELP replies arrive at random moments.

    .venv/bin/python bench/idle.py [--minutes 10] [--approvals 8] [--helps 8] [--no-scheduler] [--web]

What a municipality runs all day, with the deployed settings (no compressed timeouts): `sirena
smsc-sim` (carriers alpha and beta), two gateway workers (`sirena worker --share K/2`), the
scheduler (unless --no-scheduler: nothing but the workers' own loops may then carry the work) and,
with --web, `sirena web` (its /readyz is asked at every event). A database of its own
(`sirena_bench_idle`) and a private redis-server. After a first quiet stretch, approvals (an alert
to --recipients contacts, composed, submitted and approved through the lifecycle service) and HELP
replies (AYUDA from a recipient of an earlier alert, sent by the simulator's control port) arrive at
random moments over --minutes.

Measured: approval → first submit_sm recorded (alerts.first_submit_at − approved_at, PostgreSQL's
clock), HELP sent → its reply stored with meaning HELP (the HELP is raised in that transaction;
polled every 20 ms from the moment the simulator was asked to send it), and the workers' RQ loop
restarts (their presence records; each restart used to leave a gap). Targets: approval → first
submit ≤ 1 s and HELP → raised ≤ 2 s at any moment. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import ROOT, bench_settings, drop_database, env_for, sirena, stop
from pipeline import PASSWORDS, carriers_file, sim_config
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base import runtime
from alerting.base.db import transaction
from alerting.base.models import AlertMode, Operator, Priority
from alerting.base.runtime import redis_connection
from audit.actor import Actor
from broadcast import carrier_facts
from broadcast.carriers import load_carriers

TARGET_APPROVAL_S = 1.0
TARGET_HELP_S = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            if redis_connection(url, timeout_s=0.5).ping():
                return proc, url
        except Exception:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def start_simulator(tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict[str, int], int]:
    """`sirena smsc-sim` with carriers alpha and beta (receipts after 1-3 s) and its control port."""
    sim_config(tmp / "sim.toml", receipts=True)
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "sirena"), "smsc-sim", "--config", str(tmp / "sim.toml"),
                             "--control-port", "0", "--no-records"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    while line := proc.stdout.readline():  # type: ignore[union-attr]
        data = json.loads(line) if line.startswith(b"{") else {}
        if data.get("smsc_sim") == "listening":
            return proc, data["ports"], int(data["control_port"])
    raise RuntimeError("the simulator did not start")


class Control:
    """The simulator's control port (JSON lines)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")

    def __call__(self, **request: object) -> dict[str, object]:
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        answer = json.loads(self.reader.readline())
        if not answer.get("ok"):
            raise RuntimeError(f"simulator control: {answer}")
        return answer  # type: ignore[no-any-return]


def seed(n: int) -> tuple[Actor, Actor, list[str]]:
    numbers = [f"+5699{i:07d}" for i in range(1, n + 1)]
    with transaction() as s:
        s.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) VALUES ('vecinos', 'static', '', "
                       "false)"))
        s.execute(text("INSERT INTO contacts (msisdn, name, language, attributes) "
                       "SELECT n, 'Vecino ' || right(n, 4), 'es', '{}'::jsonb FROM unnest(CAST(:n AS varchar[])) n"),
                  {"n": numbers})
        s.execute(text("INSERT INTO group_members (group_id, contact_id) SELECT g.id, c.id FROM groups g, contacts c"))
        ops = [Operator(username=u, password_hash="x", roles=[r]) for u, r in (("comp", "composer"),
                                                                               ("apro", "approver"))]
        s.add_all(ops)
        s.flush()
        composer, approver = (Actor(kind="operator", name=o.username, operator_id=o.id, roles=frozenset(o.roles))
                              for o in ops)
    return composer, approver, numbers


def approval(composer: Actor, approver: Actor, k: int) -> tuple[int, float]:
    """Compose, submit and approve one alert; wait for its first submit; (alert id, seconds)."""
    with transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": f"Aviso {k}: corte de agua en su sector. Responda ACK "
                                                         "{codigo}"}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                            priority=Priority.HIGH, target={"groups": ["vecinos"]}), composer)
        seen = lifecycle.submit(s, alert.id, composer).approval_hash
    with transaction() as s:
        lifecycle.approve(s, alert.id, approver, seen_hash=seen,
                          override_reason="a benchmark: the whole directory on purpose")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with transaction() as s:
            seconds = s.execute(text("SELECT extract(epoch FROM first_submit_at - approved_at) FROM alerts "
                                     "WHERE id = :a"), {"a": alert.id}).scalar()
        if seconds is not None:
            return alert.id, float(seconds)
        time.sleep(0.02)
    return alert.id, float("inf")


def help_reply(control: Control, number: str, k: int) -> float:
    """AYUDA from `number`; seconds until its HELP reply is stored (polled every 20 ms)."""
    with transaction() as s:
        before = int(s.execute(text("SELECT count(*) FROM replies WHERE msisdn = :n AND meaning = 'help'"),
                               {"n": number}).scalar_one())
    sent = time.monotonic()
    control(cmd="send_mo", carrier=random.choice(("alpha", "beta")), source=number.lstrip("+"), dest="4242",
            text=f"AYUDA {k} hay una persona atrapada")
    while time.monotonic() - sent < 180:
        with transaction() as s:
            now = int(s.execute(text("SELECT count(*) FROM replies WHERE msisdn = :n AND meaning = 'help'"),
                                {"n": number}).scalar_one())
        if now > before:
            return time.monotonic() - sent
        time.sleep(0.02)
    return float("inf")


def loop_restarts(redis: object) -> dict[str, int]:
    out = {}
    for key in redis.scan_iter(match="sirena:presence:gateway:*"):  # type: ignore[attr-defined]
        record = json.loads(redis.get(key) or "{}")  # type: ignore[attr-defined]
        out[record.get("name", key)] = int(record.get("loop_restarts", 0))
    return out


def readyz(port: int | None) -> int | None:
    if port is None:
        return None
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"max": None, "p50": None, "min": None}
    return {"max": round(max(values), 3), "p50": round(statistics.median(values), 3), "min": round(min(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long events keep arriving (default 10)")
    parser.add_argument("--approvals", type=int, default=8)
    parser.add_argument("--helps", type=int, default=8)
    parser.add_argument("--recipients", type=int, default=50)
    parser.add_argument("--quiet-s", type=float, default=60.0, help="idle before the first event")
    parser.add_argument("--no-scheduler", action="store_true", help="run without `sirena scheduler`")
    parser.add_argument("--web", action="store_true", help="also run `sirena web` and ask its /readyz at each event")
    parser.add_argument("--seed", type=int, default=None, help="random seed (the moments of the events)")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs' folder")
    args = parser.parse_args()
    rng_seed = args.seed if args.seed is not None else int(time.time())
    random.seed(rng_seed)

    tmp = Path(tempfile.mkdtemp(prefix="sirena-bench-idle-"))
    redis_proc, redis_url = start_redis(tmp)
    settings = bench_settings("sirena_bench_idle")
    settings = replace(settings, redis_url=redis_url)
    runtime.use_database(settings, name="bench-idle")
    redis = redis_connection(redis_url)
    runtime.use_redis(redis)
    env = env_for(settings, **PASSWORDS, SIRENA_CARRIERS_FILE=str(tmp / "carriers.toml"),
                  SIRENA_LOG_LEVEL="INFO")
    os.environ.update(PASSWORDS)
    sim, ports, control_port = start_simulator(tmp, env)
    carriers_file(tmp / "carriers.toml", ports, window=20)
    carrier_facts.sync(load_carriers(tmp / "carriers.toml", None))  # what `sirena setup` does on an install
    composer, approver, numbers = seed(args.recipients)
    procs = [sirena("worker", "--share", f"{k}/2", "--name", f"idle-gw-{k}", env=env, log=tmp / f"worker{k}.log")
             for k in (1, 2)]
    if not args.no_scheduler:
        procs.append(sirena("scheduler", env=env, log=tmp / "scheduler.log"))
    web_port = None
    if args.web:
        web_port = free_port()
        procs.append(sirena("web", "--port", str(web_port), env=env, log=tmp / "web.log"))
    control = Control(control_port)
    deadline = time.monotonic() + 60
    while len(loop_restarts(redis)) < 2:  # both workers listening (their presence records)
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"the workers did not start: see {tmp}")
        time.sleep(0.2)

    span_s = args.minutes * 60
    rest = ["approval"] * (args.approvals - 1) + ["help"] * args.helps
    kinds = ["approval", *random.sample(rest, len(rest))]  # the first event is an approval: HELP needs a recipient
    moments = sorted(random.uniform(args.quiet_s, span_s) for _ in kinds)
    print(f"stack up (2 workers, scheduler {'down' if args.no_scheduler else 'up'}{', web' if args.web else ''}); "
          f"{len(kinds)} events over {args.minutes:g} min, seed {rng_seed}, logs in {tmp}", flush=True)
    started = time.monotonic()
    approvals: list[float] = []
    helps: list[float] = []
    ready: list[int | None] = []
    sent_to: list[str] = []
    for k, (kind, at) in enumerate(zip(kinds, moments, strict=True), start=1):
        time.sleep(max(0.0, started + at - time.monotonic()))
        if kind == "approval" or not sent_to:
            alert_id, seconds = approval(composer, approver, k)
            approvals.append(seconds)
            sent_to = numbers
            line = f"alert {alert_id}: approval -> first submit {seconds:.3f} s"
        else:
            number = random.choice(sent_to)
            seconds = help_reply(control, number, k)
            helps.append(seconds)
            line = f"HELP from …{number[-4:]}: sent -> raised {seconds:.3f} s"
        ready.append(readyz(web_port))
        print(f"{time.monotonic() - started:7.1f} s  {line}" + (f"  (readyz {ready[-1]})" if args.web else ""),
              flush=True)
    time.sleep(max(0.0, started + span_s - time.monotonic()))  # quiet again until the span's end
    restarts = loop_restarts(redis)
    alive = [p.poll() is None for p in procs]
    stop(*procs, sim, timeout_s=20)
    codes = [p.returncode for p in procs]
    redis_proc.terminate()
    result = {
        "bench": "idle", "minutes": args.minutes, "seed": rng_seed, "scheduler": not args.no_scheduler,
        "web": args.web, "approvals": len(approvals), "helps": len(helps),
        "approval_first_submit_s": summary(approvals), "help_raised_s": summary(helps),
        "worker_loop_restarts": restarts, "processes_alive_at_end": all(alive), "exit_codes_on_sigterm": codes,
        "readyz": ready if args.web else None,
        "targets_met": bool(approvals and max(approvals) <= TARGET_APPROVAL_S
                            and (not helps or max(helps) <= TARGET_HELP_S) and not any(restarts.values())),
    }
    print(f"worst approval -> first submit {result['approval_first_submit_s']['max']} s "
          f"(target {TARGET_APPROVAL_S:g}); worst HELP -> raised {result['help_raised_s']['max']} s "
          f"(target {TARGET_HELP_S:g}); worker loop restarts {restarts}; exit codes on SIGTERM {codes}")
    if not args.keep:
        drop_database(settings)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
