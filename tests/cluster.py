"""Real processes for tests that kill things: gateway workers and the scheduler as `sirena` children.

The simulator runs in the test process (its fault switches are then plain calls); workers and the
scheduler are separate processes talking to the test's own database and Redis, exactly as deployed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base.db import transaction
from alerting.base.models import Alert, AlertMode, AlertState, Operator, Priority
from alerting.base.settings import Settings
from tests.factories import actor_for

SIRENA = str(Path(sys.executable).parent / "sirena")


class Cluster:
    """Workers and a scheduler as child processes; every one is killed when the test ends."""

    def __init__(self, settings: Settings, carriers_file: Path, env: dict[str, str], logs: Path) -> None:
        self.logs = logs
        self.env = dict(os.environ)
        self.env.update(env)
        self.env.update({
            "SIRENA_DATABASE_URL": settings.database_url,
            "SIRENA_DATABASE_OWNER_URL": settings.database_owner_url,
            "SIRENA_REDIS_URL": settings.redis_url,
            "SIRENA_CARRIERS_FILE": str(carriers_file),
            "SIRENA_SECRET_KEY_FILE": str(settings.secret_key_file),
            "SIRENA_AUDIT_CHECKPOINT_DIR": str(settings.audit_checkpoint_dir),
            "SIRENA_LEASE_S": "3",
            "SIRENA_RECONCILE_INTERVAL_S": "0.5",
            "SIRENA_LOG_LEVEL": "INFO",
            # Idle compressed: a worker's blocking wait on the queues ends every second (5 s deployed),
            # so a test idling for seconds goes through as many quiet cycles as a worker does in minutes.
            "SIRENA_WORKER_IDLE_WAIT_S": "1",
        })
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: dict[int, str] = {}  # pid → worker name
        self._n = 0

    @classmethod
    def with_carriers(cls, settings: Settings, carriers_text: str, tmp_path: Path) -> Cluster:
        """Write the carriers file, register its senders (as `sirena setup` does), return a Cluster
        whose workers use it (no process started yet)."""
        from broadcast import carrier_facts
        from broadcast.carriers import parse_carriers
        from tests.conftest import sim_env

        carriers = tmp_path / "carriers.toml"
        carriers.write_text(carriers_text)
        carrier_facts.sync(parse_carriers(carriers_text, sim_env()))
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        return cls(settings, carriers, sim_env(), logs)

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        self._n += 1
        log = open(self.logs / f"{args[0]}-{self._n}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([SIRENA, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def worker(self, share: str = "1/1") -> subprocess.Popen[bytes]:
        name = f"test-gw-{os.getpid()}-{self._n + 1}"
        proc = self._start("worker", "--share", share, "--name", name)
        self.names[proc.pid] = name
        return proc

    def web(self, port: int, *args: str) -> subprocess.Popen[bytes]:
        return self._start("web", "--port", str(port), *args)

    def gateway_record(self, redis: object, proc: subprocess.Popen[bytes]) -> dict[str, object] | None:
        """The presence record the worker `proc` publishes (None while it has published none)."""
        import json

        raw = redis.get(f"sirena:presence:gateway:{self.names[proc.pid]}")  # type: ignore[attr-defined]
        return json.loads(raw) if raw else None

    def wait_listening(self, redis: object, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> dict[str, object]:
        """Wait until the worker has published a record in which every carrier has a bind up or an
        error to show, and its RQ loop has registered (it takes jobs); return the record."""
        from broadcast.presence import gateway_carriers

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the worker exited with {proc.returncode}:\n{self.log_text()}")
            record = self.gateway_record(redis, proc)
            if not record or not redis.exists(f"rq:worker:{self.names[proc.pid]}"):  # type: ignore[attr-defined]
                return False
            return all(entry["up"] or any(b["last_error"] for b in entry["binds"].values())
                       for entry in gateway_carriers(record).values())

        wait_until(ready, timeout_s, "the worker to listen", self.log_text)
        return self.gateway_record(redis, proc)  # type: ignore[return-value]

    @staticmethod
    def terminate(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 30) -> tuple[int, float]:
        """Send `sig` to the process itself (as systemd, docker stop or Ctrl-C do); return its exit
        code and the seconds it took to exit."""
        started = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout_s)
        return code, time.monotonic() - started

    def scheduler(self) -> subprocess.Popen[bytes]:
        return self._start("scheduler")

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole process (a machine or container dying), no clean-up of any kind."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def log_text(self, lines: int = 40) -> str:
        """The last lines of every process's log, job chatter left out (for failure messages)."""
        out = []
        for path in sorted(self.logs.glob("*.log")):
            kept = [line for line in path.read_text(errors="replace").splitlines()
                    if "result is kept" not in line and "Job OK" not in line]
            out.append(f"== {path.name}\n" + "\n".join(kept[-lines:]))
        return "\n".join(out)

    def wait_completed(self, alert_id: int, timeout_s: float = 120) -> None:
        wait_until(lambda: state_of(alert_id).value == "completed", timeout_s, f"alert {alert_id} to complete",
                   lambda: f"deliveries: {delivery_totals(alert_id)}\n{self.log_text()}")


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str,
               diagnose: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    details = "\n" + diagnose() if diagnose else ""
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{details}")


def unsealed_events() -> int:
    """Audit events committed but not yet sealed into the hash chain."""
    with transaction() as s:
        return int(s.execute(text("SELECT count(*) FROM audit.events WHERE seq IS NULL")).scalar_one())


def seed_group(n: int, *, group: str = "brigadas", prefix: str = "+5699", drill: bool = False) -> None:
    """n contacts in one static group, written set-based (committed)."""
    with transaction() as s:
        s.execute(text("INSERT INTO groups (name, kind, description, drill_allowed) "
                       "VALUES (:g, 'static', '', :d) ON CONFLICT (name) DO NOTHING"), {"g": group, "d": drill})
        s.execute(text("""
            INSERT INTO contacts (msisdn, name, language, attributes)
            SELECT :p || lpad(i::text, 7, '0'), 'Persona ' || i, CASE WHEN i % 5 = 0 THEN 'en' ELSE 'es' END,
                   jsonb_build_object('unidad', 'U' || (i % 7))
              FROM generate_series(1, :n) i ON CONFLICT (msisdn) DO NOTHING"""), {"n": n, "p": prefix})
        s.execute(text("""
            INSERT INTO group_members (group_id, contact_id)
            SELECT g.id, c.id FROM groups g, contacts c WHERE g.name = :g AND c.msisdn LIKE :p || '%'
            ON CONFLICT DO NOTHING"""), {"g": group, "p": prefix})


def operators(suffix: str = "") -> tuple:  # type: ignore[type-arg]
    with transaction() as s:
        composer = Operator(username=f"compositora{suffix}", password_hash="x", roles=["composer"])
        approver = Operator(username=f"aprobador{suffix}", password_hash="x", roles=["approver"])
        s.add_all([composer, approver])
        s.flush()
        return actor_for(composer), actor_for(approver)


def approved_alert(texts: dict[str, str], *, group: str = "brigadas", priority: Priority = Priority.HIGH,
                   mode: AlertMode = AlertMode.LIVE, suffix: str = "") -> int:
    """Compose, submit and approve (two operators) an alert to one group; returns its id."""
    composer, approver = operators(suffix or f"-{time.monotonic_ns()}")
    with transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts=texts, mode=mode, sender_name="SIRENA-SC", priority=priority,
                                            target={"groups": [group]}), composer)
        lifecycle.submit(s, alert.id, composer)
    with transaction() as s:
        lifecycle.approve(s, alert.id, approver, seen_hash=alert.approval_hash,
                          override_reason="a fault test: the whole directory on purpose")
        return alert.id


def state_of(alert_id: int) -> AlertState:
    with transaction() as s:
        return s.scalar(select(Alert.state).where(Alert.id == alert_id))


def delivery_totals(alert_id: int) -> dict[str, int]:
    """States of the alert's deliveries, and the possible duplicates the system counted."""
    with transaction() as s:
        rows = s.execute(text("SELECT state, count(*), sum(possible_duplicates) FROM deliveries "
                              "WHERE alert_id = :a GROUP BY state"), {"a": alert_id}).all()
    out = {state: int(n) for state, n, _ in rows}
    out["possible_duplicates"] = sum(int(d or 0) for _, _, d in rows)
    return out


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence: killed, it comes back
    empty on the same port (`restart`), as after a crash."""

    def __init__(self, workdir: Path) -> None:
        import shutil
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}/0"
        self.cmd = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(workdir)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL)
        wait_until(self.up, 10, "redis-server to answer")
        return self

    def up(self) -> bool:
        from alerting.base.runtime import redis_connection

        try:
            return bool(redis_connection(self.url, timeout_s=0.5).ping())
        except Exception:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
