"""The whole system's health in one report (`sirena status`): what runs, what is stuck, what to do.

Reads, never writes: PostgreSQL (schema version, alerts in flight and their live counters, expired
leases, receipts kept unmatched, inbound rows not read yet, reconciler evidence), Redis (queue
depth per priority, failed jobs, the presence records workers and schedulers publish:
broadcast/presence.py) and the carriers file (which senders each carrier carries). Every problem
found is a sentence saying what is wrong and one saying what to do, most serious first; `level`
is "ok", "degraded" (something to look at, alerts still leave) or "down" (alerts cannot leave, or
will not without a person).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text

from alerting.base import migrate
from alerting.base.db import transaction
from alerting.base.outbox import PRIORITY_QUEUES
from alerting.base.runtime import redis_connection
from alerting.base.settings import Settings
from audit.seal import LATE_DO, unsealed_backlog
from broadcast import presence, receipts
from broadcast.carriers import load_carriers, password_problems
from broadcast.jobs import counts_by_state

STALE_S = 30  # a scheduler pass older than this means the reconciler is not running
STALLED_S = 60  # an alert with work left and no submit for this long is stuck


@dataclass
class Problem:
    severity: str  # "critical" (alerts cannot leave) or "warning"
    what: str
    do: str


@dataclass
class Status:
    level: str = "ok"
    postgres: dict[str, Any] = field(default_factory=dict)
    redis: dict[str, Any] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    schedulers: list[dict[str, Any]] = field(default_factory=list)
    carriers: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    inbound: dict[str, Any] = field(default_factory=dict)
    reconciler: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    oncall: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # What this shell could not check, or advice that needs no action now: never a problem by itself.
    notes: list[str] = field(default_factory=list)

    def problem(self, severity: str, what: str, do: str) -> None:
        self.problems.append(Problem(severity, what, do))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def system_status(settings: Settings, env: Mapping[str, str]) -> Status:
    """Build the report; see the module docstring. Never raises for an unreachable component.

    `env` is the process environment the entry point passes in: the carriers file names the
    variables holding its passwords."""
    status = Status()
    _postgres(status, settings)
    redis = _redis(status, settings)
    if redis is not None:
        _presence(status, redis)
    _carriers(status, settings, env)
    if status.postgres.get("schema_current"):
        try:
            _alerts(status)
        except Exception as exc:
            status.problem("warning", f"alerts in flight could not be read: {_first_line(exc)}",
                           "Run sirena status again; if it persists, check the PostgreSQL log.")
        _inbound(status, settings)
        _audit(status)
        _oncall(status, settings)
    _reconciler(status, settings)
    status.problems.sort(key=lambda p: p.severity != "critical")
    if any(p.severity == "critical" for p in status.problems):
        status.level = "down"
    elif status.problems:
        status.level = "degraded"
    return status


def _postgres(status: Status, settings: Settings) -> None:
    try:
        with transaction() as session:
            session.execute(text("SELECT 1"))
            version = session.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            autovacuum = session.execute(text("SHOW autovacuum")).scalar_one()
        status.postgres = {"ok": True, "schema": sorted(version), "autovacuum": autovacuum == "on"}
    except Exception as exc:
        status.postgres = {"ok": False, "error": _first_line(exc)}
        status.problem("critical", f"PostgreSQL is unreachable: {_first_line(exc)}",
                       "Start it (pg_ctlcluster --skip-systemctl-redirect 15 main start) or fix "
                       "SIRENA_DATABASE_URL; nothing can be approved or sent without it.")
        return
    if not status.postgres["autovacuum"]:
        status.problem("warning", "PostgreSQL's autovacuum is off: every audit seal and every delivery state "
                                  "change leaves a dead row, so tables and indexes only grow and the planner's "
                                  "statistics go stale",
                       "Turn it on (as a superuser): ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();")
    heads = migrate.script_heads()
    status.postgres["schema_current"] = set(status.postgres["schema"]) == heads
    if not status.postgres["schema_current"]:
        status.problem("critical", f"the database schema is at {status.postgres['schema']}, the code expects "
                                   f"{sorted(heads)}", "Run: sirena db upgrade")


def _redis(status: Status, settings: Settings) -> Any:
    try:
        conn = redis_connection(settings.redis_url, timeout_s=1.0)
        conn.ping()
        depth = {q: conn.llen(f"rq:queue:{q}") for q in PRIORITY_QUEUES}
        failed = {q: conn.zcard(f"rq:failed:{q}") for q in PRIORITY_QUEUES}
    except Exception as exc:
        status.redis = {"ok": False, "error": _first_line(exc)}
        status.problem("critical", f"Redis is unreachable: {_first_line(exc)}",
                       "Start Redis (runbooks/redis-loss.md). Approvals still commit; once Redis is back the "
                       "scheduler re-queues all work from PostgreSQL.")
        return None
    status.redis = {"ok": True, "queue_depth": depth, "failed_jobs": failed}
    for queue, n in failed.items():
        if n:
            status.problem("warning", f"{n} failed job(s) in queue {queue}",
                           "Read the worker logs for the error; the scheduler re-derives the work from PostgreSQL, "
                           f"so they need no retry. Clear them with: rq empty --url $SIRENA_REDIS_URL failed ({queue})")
    return conn


def _presence(status: Status, redis: Any) -> None:
    now = time.time()
    for record in presence.read_all(redis):
        record["age_s"] = round(now - float(record.get("at", now)), 1)
        if record.get("role") == "gateway":
            record["carriers"] = presence.gateway_carriers(record)
            record["possible_duplicates"] = (record.pop("health", None) or {}).get("possible_duplicates", 0)
            status.workers.append(record)
        elif record.get("role") == "scheduler":
            status.schedulers.append(record)
    if not status.workers:
        status.problem("critical", f"no gateway worker is running (none announced itself in {presence.TTL_S} s)",
                       "Start one or more: sirena worker --share K/N (runbooks/stuck-alert.md)")
    depth = sum((status.redis.get("queue_depth") or {}).values())
    if depth > 200 and status.workers:
        status.problem("warning", f"{depth} jobs are waiting in the queues",
                       "Alerts are going out slower than work arrives; add gateway workers if carriers allow more "
                       "TPS (runbooks/capacity.md).")


def _carriers(status: Status, settings: Settings, env: Mapping[str, str]) -> None:
    """Merge every worker's view of every bind; a carrier no worker has up is down."""
    for worker in status.workers:
        for name, entry in worker.get("carriers", {}).items():
            agg = status.carriers.setdefault(name, {"binds": 0, "up": 0, "breakers_open": 0, "test": entry.get("test"),
                                                    "in_flight": 0, "last_error": "", "connect_attempts_last_min": 0})
            for bind in entry.get("binds", {}).values():
                agg["binds"] += 1
                agg["up"] += bind.get("state") == "up"
                agg["breakers_open"] += bind.get("breaker") == "open"
                agg["in_flight"] += bind.get("in_flight", 0)
                agg["connect_attempts_last_min"] += bind.get("connect_attempts_last_min", 0)
                agg["last_error"] = bind.get("last_error") or agg["last_error"]
            agg["degraded"] = entry.get("degraded") or agg.get("degraded")
    for name, agg in sorted(status.carriers.items()):
        if agg["up"] == 0:
            error = agg["last_error"] or "no error reported"
            status.problem("warning", f"carrier {name}: no bind is up in any worker ({error})",
                           "Traffic moves to the other carriers of each sender; follow runbooks/carrier-outage.md.")
        elif agg.get("degraded"):
            status.problem("warning", f"carrier {name} degraded by its receipts: {agg['degraded']}",
                           "It gets a quarter of its rate while another carrier can take the rest; it recovers on its "
                           "own once its receipts look like the others' (runbooks/carrier-outage.md).")
        elif agg["breakers_open"]:
            status.problem("warning", f"carrier {name}: {agg['breakers_open']} breaker(s) open",
                           "That bind failed repeatedly; it is probed again on its own. Check the carrier's answers "
                           "in the worker log (runbooks/carrier-outage.md).")
    if not status.workers:
        return

    try:
        # The routes need no password: a shell without the carriers' passwords (an operator's, a
        # cron job's) checks the routes all the same and says what it could not check.
        config = load_carriers(settings.carriers_file, None)
    except Exception as exc:
        status.problem("warning", f"the carriers file cannot be read: {_first_line(exc)}",
                       "Fix it; a worker started now would refuse to start with the same message.")
        return
    for what in password_problems(config, env):
        status.notes.append(f"not checked here: {what}; the workers check their own at start, and one that "
                            "started is up above")
    for sender in config.senders:
        carriers = [c.name for c in config.carriers_for(sender)]
        if carriers and not any(status.carriers.get(c, {}).get("up") for c in carriers):
            status.problem("critical", f"sender {sender}: none of its carriers ({', '.join(carriers)}) has a bind up",
                           "Its alerts wait (state waiting_route) until one comes back: runbooks/carrier-outage.md.")


def _alerts(status: Status) -> None:
    with transaction() as session:
        rows = session.execute(text("""
            SELECT a.id, a.reference, a.state, a.priority, a.approved_at, a.scheduled_at, a.first_submit_at,
                   a.last_submit_at, extract(epoch FROM now() - coalesce(a.last_submit_at, a.sending_at,
                   a.approved_at)) AS idle_s
              FROM alerts a
             WHERE a.state IN ('approved', 'sending') OR (a.state = 'scheduled' AND a.scheduled_at <= now())
             ORDER BY a.id""")).mappings().all()
        # failed/expired are final; `retrying`: re-sent through another carrier, not final yet.
        counts_of = {r["id"]: counts_by_state(session, r["id"]) for r in rows}
        expired = session.scalar(text(
            "SELECT count(*) FROM deliveries WHERE state = 'submitting' AND lease_until < now()"))
    status.reconciler["expired_leases"] = int(expired or 0)
    for r in rows:
        counts = counts_of[r["id"]]
        left = sum(int(counts.get(s, 0)) for s in ("queued", "submitting", "waiting_route"))
        alert = {"id": r["id"], "reference": r["reference"], "state": r["state"], "priority": r["priority"],
                 "counts": counts, "left": left, "idle_s": round(float(r["idle_s"] or 0), 1),
                 "first_submit_at": r["first_submit_at"], "last_submit_at": r["last_submit_at"]}
        status.alerts.append(alert)
        if r["state"] != "sending" and alert["idle_s"] > STALLED_S:
            status.problem("critical", f"alert {r['reference']} (id {r['id']}) is {r['state']} since "
                                       f"{alert['idle_s']:.0f} s and has not started",
                           "Check that a scheduler and a gateway worker run; then: sirena reconcile "
                           "(runbooks/stuck-alert.md)")
        elif left and alert["idle_s"] > STALLED_S:
            status.problem("critical", f"alert {r['reference']} (id {r['id']}): {left} messages left and nothing "
                                       f"submitted for {alert['idle_s']:.0f} s",
                           "Follow runbooks/stuck-alert.md (carriers up? workers alive? then sirena reconcile)")
    if expired:
        status.problem("warning", f"{expired} deliveries hold an expired lease (their worker died)",
                       "The scheduler re-queues them within seconds; if it does not run, run: sirena reconcile")


# A reply not read within this long means nothing reads inbound rows: no gateway worker queues
# their job and no scheduler sweeps them (every 5 s).
REPLIES_LATE_S = 60.0


def _inbound(status: Status, settings: Settings) -> None:
    """Receipts kept without a message to match (an id we never sent, or one not stored yet): a
    figure to watch, never dropped (broadcast/receipts.py). And the inbound rows stored but not read
    yet: replies are read within seconds; receipts wait up to SIRENA_RECEIPTS_MAX_HOLD_S while send
    batches are queued (broadcast/inbound.py). Older than that, nothing is reading them."""
    try:
        with transaction() as session:
            status.inbound["unmatched_receipts"] = receipts.pending_count(session)
            unread = {bool(r[0]): (int(r[1]), float(r[2])) for r in session.execute(text("""
                SELECT kind = 'receipt', count(*), extract(epoch FROM now() - min(received_at))
                  FROM inbound_messages WHERE processed_at IS NULL GROUP BY 1"""))}
    except Exception as exc:
        status.inbound["error"] = _first_line(exc)
        return
    for is_receipt, name, one, late_s in ((False, "replies", "reply", REPLIES_LATE_S),
                                          (True, "receipts", "receipt", settings.receipts_max_hold_s + REPLIES_LATE_S)):
        n, oldest = unread.get(is_receipt, (0, None))
        status.inbound[f"{name}_unread"] = n
        status.inbound[f"oldest_unread_{one}_s"] = None if oldest is None else round(oldest, 1)
        if oldest is not None and oldest > late_s:
            status.problem("warning", f"{name.capitalize()} stored but not read: {n}, the oldest for {oldest:.0f} s"
                           + (" (a HELP among them reaches nobody)" if name == "replies" else ""),
                           "Check that gateway workers and the scheduler run (above); the scheduler's sweep "
                           "reads every row left behind within seconds.")


def _audit(status: Status) -> None:
    """Audit events waiting for their seal (their link in the hash chain): seconds, unless nothing seals."""
    try:
        with transaction() as session:
            backlog = unsealed_backlog(session)
    except Exception as exc:
        status.audit["error"] = _first_line(exc)
        return
    status.audit = backlog.as_dict()
    warning = backlog.warning()
    if warning:
        status.problem("warning", warning, LATE_DO)


def _oncall(status: Status, settings: Settings) -> None:
    """The on-call group (SIRENA_ONCALL_GROUP) told of a HELP whose alert names no supervisors."""
    name = settings.oncall_group
    if name is None:
        status.notes.append("no on-call group (SIRENA_ONCALL_GROUP): a HELP on an alert that names no supervisors "
                            "is pinned on the console but told to nobody by SMS")
        return
    try:
        with transaction() as session:
            members = session.execute(text(
                "SELECT count(gm.contact_id) FROM groups g LEFT JOIN group_members gm ON gm.group_id = g.id "
                "WHERE g.name = :g GROUP BY g.id"), {"g": name}).scalar()
    except Exception as exc:
        status.oncall = {"group": name, "error": _first_line(exc)}
        return
    status.oncall = {"group": name, "exists": members is not None, "members": int(members or 0)}
    if members is None or not members:
        status.problem("warning", f"the on-call group {name} (SIRENA_ONCALL_GROUP) "
                                  f"{'does not exist' if members is None else 'has nobody in it'}: a HELP on an alert "
                                  "that names no supervisors reaches nobody by SMS",
                       f"sirena groups {'create ' + name + '; sirena groups ' if members is None else ''}"
                       f"add {name} +569… (the phones of whoever is on call)")


def _reconciler(status: Status, settings: Settings) -> None:
    leaders = [s for s in status.schedulers if s.get("leader")]
    if not status.redis.get("ok"):
        return
    if not status.schedulers:
        status.problem("critical", "no scheduler is running",
                       "Start one: sirena scheduler. Without it scheduled alerts do not fire and lost work is not "
                       "re-queued.")
        return
    freshest = min((s["age_s"] for s in leaders), default=None)
    status.reconciler.update({"schedulers": len(status.schedulers), "last_pass_age_s": freshest,
                              "interval_s": settings.reconcile_interval_s})
    lag_limit = max(STALE_S, 5 * settings.reconcile_interval_s)
    if freshest is None or freshest > lag_limit:
        status.problem("critical", "the reconciler has not completed a pass for "
                                   f"{'ever' if freshest is None else f'{freshest:.0f} s'}",
                       "Check the scheduler log (PostgreSQL reachable?) and restart it: sirena scheduler")


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    return text_[0][:200] if text_ else type(exc).__name__
