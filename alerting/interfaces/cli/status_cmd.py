"""`sirena status [--json]`: the whole system's health, and what to do about each problem.

Exit 0 when everything is fine or only degraded, 1 when alerts cannot leave (a critical problem),
so a cron job or a monitoring probe can run it as is.
"""

from __future__ import annotations

import os
import sys

from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx


@cli.command("status")
@json_option
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """Workers, queues per priority, binds and breakers, alerts in flight, reconciler lag, problems."""
    from alerting.interfaces.status import system_status

    ctx.db()
    report = system_status(ctx.settings, dict(os.environ))
    emit(as_json, report.as_dict(), _human(report))
    if report.level == "down":
        sys.exit(1)


def _human(report) -> str:
    lines = [f"Sirena: {report.level.upper()}"]
    if report.problems:
        lines.append("")
        for p in report.problems:
            lines.append(f"  [{p.severity}] {p.what}")
            lines.append(f"      → {p.do}")
    if report.notes:
        lines.append("")
        lines += [f"  [note] {n}" for n in report.notes]
    pg = report.postgres
    lines += ["", f"PostgreSQL: {'ok, schema ' + ','.join(pg.get('schema', [])) if pg.get('ok') else pg.get('error')}"]
    rd = report.redis
    if rd.get("ok"):
        depth = ", ".join(f"{q} {n}" for q, n in rd["queue_depth"].items())
        lines.append(f"Redis: ok; queued jobs: {depth}")
    else:
        lines.append(f"Redis: {rd.get('error')}")
    lines.append(f"Gateway workers: {len(report.workers)}")
    for w in report.workers:
        binds = sum(len(c.get("binds", {})) for c in w.get("carriers", {}).values())
        up = sum(b.get("state") == "up" for c in w.get("carriers", {}).values() for b in c.get("binds", {}).values())
        lines.append(f"  {w['name']} on {w['host']} share {w.get('share')}: {up}/{binds} binds up, "
                     f"seen {w['age_s']:.0f} s ago, {w.get('loop_restarts', 0)} loop restart(s)"
                     + (" (last: " + w["loop_last_restart_reason"] + ")" if w.get("loop_last_restart_reason") else "")
                     + (", STOPPING" if w.get("stopping") else ""))
    lines.append("Carriers:")
    for name, c in sorted(report.carriers.items()):
        lines.append(f"  {name}{' (test)' if c.get('test') else ''}: {c['up']}/{c['binds']} binds up, "
                     f"{c['breakers_open']} breaker(s) open, {c['in_flight']} in flight"
                     + (f", last error: {c['last_error']}" if c["last_error"] else ""))
    rec = report.reconciler
    age = rec.get("last_pass_age_s")
    lines.append(f"Schedulers: {len(report.schedulers)}; last reconcile pass "
                 f"{'never' if age is None else f'{age:.0f} s ago'}; expired leases {rec.get('expired_leases', '?')}")
    if report.audit.get("unsealed_events") is not None:
        oldest = report.audit.get("oldest_unsealed_s")
        lines.append(f"Audit events waiting for their seal: {report.audit['unsealed_events']}"
                     + (f", the oldest {oldest:.0f} s" if oldest is not None else ""))
    if "unmatched_receipts" in report.inbound:
        lines.append(f"Receipts kept unmatched (no message of ours has their id): "
                     f"{report.inbound['unmatched_receipts']}")
    if "replies_unread" in report.inbound:
        unread = report.inbound
        lines.append(f"Stored, not read yet: {unread['replies_unread']} replies, {unread['receipts_unread']} receipts"
                     + ("" if unread["oldest_unread_receipt_s"] is None else
                        f" (the oldest receipt {unread['oldest_unread_receipt_s']:.0f} s: receipts wait while "
                        f"send batches are queued, up to SIRENA_RECEIPTS_MAX_HOLD_S)"))
    lines.append(f"Alerts in flight: {len(report.alerts)}")
    for a in report.alerts:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(a["counts"].items()))
        lines.append(f"  {a['reference']} (id {a['id']}, {a['state']}, {a['priority']}): "
                     f"{counts or 'no deliveries yet'}; last submit {a['idle_s']:.0f} s ago")
    return "\n".join(lines)
