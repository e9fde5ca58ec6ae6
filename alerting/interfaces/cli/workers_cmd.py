"""`sirena worker`, `sirena scheduler`, `sirena reconcile`: the processes that move alerts."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import click
from redis import Redis

from alerting.base.outbox import PRIORITY_QUEUES
from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx

WORKER_QUEUES = (*PRIORITY_QUEUES, "webhooks")  # flash first: reply interpretation goes there too


def load_carriers(ctx: Context):
    """The carriers file of the settings; passwords from the environment variables it names."""
    from broadcast.carriers import load_carriers as load

    return load(ctx.settings.carriers_file, os.environ)


def _redis(ctx: Context, name: str) -> Redis:
    """Start this process's runtime with a Redis client (short timeouts): what jobs enqueue, the
    presence heartbeat."""
    conn = ctx.start(name).redis
    if conn is None:
        raise RuntimeError("the runtime was started without Redis")
    return conn


@cli.command("worker")
@click.option("--queues", default=",".join(WORKER_QUEUES), show_default=True,
              help="Comma-separated, highest priority first.")
@click.option("--share", default="1/1", show_default=True,
              help="K/N: this process opens the K-th of N equal shares of every carrier's binds and TPS.")
@click.option("--name", default=None, help="Worker name (default gw-HOST-PID).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--metrics-port", type=int, default=0, help="Serve Prometheus metrics on this port (default: off).")
@pass_ctx
def worker(ctx: Context, queues: str, share: str, name: str | None, burst: bool, metrics_port: int) -> None:
    """A gateway worker: holds the SMPP binds and runs fan-out and send-batch jobs.

    SIGTERM or SIGINT stops it cleanly (exit 0): idle at once; busy, after the slice in flight is
    recorded (the rest of its batch goes back to the queue), then it unbinds. A second signal stops
    it at once."""
    from alerting.base.db import engine
    from audit.seal import Sealer
    from broadcast import carrier_facts, replies
    from broadcast.gateway import Gateway, split_config
    from broadcast.inbound import InboundStore
    from broadcast.presence import watch_gateway
    from broadcast.worker import GatewayWorker, LoopStats, StopSignal, pinger, run_until_stopped, worker_connection
    from broadcast.worker import queues as worker_queues

    logging.getLogger().setLevel(ctx.settings.log_level)
    k, _, n = share.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise click.BadParameter(f'expected K/N such as 1/2, got "{share}"', param_hint="--share")
    settings = ctx.settings
    conn = _redis(ctx, name or "sirena-worker")
    config = load_carriers(ctx)
    carrier_facts.sync(config)
    replies.current_vocabulary()  # SIRENA_VOCABULARY_FILE: a bad one stops the worker now, not at a reply
    pools: list[Any] = []  # the gateway's, once built: the store is built first (the gateway delivers to it)
    inbound = InboundStore(after_store=_process_inbound_hook(),
                           after_receipts=_receipts_hook(settings.receipts_max_hold_s,
                                                         lambda: bool(pools) and pools[0].tps_bound()))
    gateway = Gateway(split_config(config, int(k) - 1, int(n)), name=name,
                      drill_allowlist=frozenset(settings.drill_allowlist), on_deliver=inbound,
                      lease_s=settings.lease_s)
    pools.append(gateway.pool)
    stop = StopSignal(on_stop=gateway.request_stop).install()  # from here on a SIGTERM is never lost
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: every thread's stack, to stderr
    sealer = Sealer.start_for(engine())  # audit events this process writes get their link within a second
    try:
        gateway.start()
    except Exception as exc:
        click.echo(f"warning: {exc}; binds keep retrying in the background", err=True)
    # The RQ loop's own client: its socket timeout outlasts the blocking pop (an idle worker stays listening).
    rq_conn = worker_connection(settings.redis_url, idle_wait_s=settings.worker_idle_wait_s,
                                connect_timeout_s=settings.redis_timeout_s)
    qs = worker_queues([q.strip() for q in queues.split(",") if q.strip()], rq_conn)
    click.echo(f"gateway {gateway.name} on queues {', '.join(q.name for q in qs)}")
    stats = LoopStats()
    beat = watch_gateway(gateway, conn, queues=[q.name for q in qs], share=share, metrics_port=metrics_port,
                         extra=lambda: {**stats.as_dict(), "stopping": stop.requested.is_set()})

    def make_worker(restarts: int) -> GatewayWorker:
        # A restarted loop takes a new RQ name: the old one may still be registered (Redis hung, not
        # restarted) and RQ refuses a second live worker of one name. Leases use the gateway's name.
        return GatewayWorker(qs, connection=rq_conn, serializer=qs[0].serializer, stop=stop,
                             worker_ttl=settings.worker_idle_wait_s + 15,  # RQ pops for worker_ttl - 15 s
                             name=gateway.name if restarts == 0 else f"{gateway.name}-r{restarts}")

    try:
        run_until_stopped(make_worker, stop, redis_up=pinger(conn), burst=burst, logging_level=settings.log_level,
                          stats=stats)
    finally:
        beat.stop()
        gateway.stop()
        inbound.close()
        sealer.stop()
    if stop.requested.is_set():
        click.echo(f"gateway {gateway.name}: stopped on {stop.signal_name} "
                   f"({stats.restarts} loop restart(s) since it started)")


def _process_inbound_hook() -> Callable[[list[int]], None]:
    """After raw inbound rows commit, queue the interpretation of the replies among them at once
    (coalesced: one job per 0.3 s)."""
    from broadcast.inbound import Coalescer, queue_replies

    return Coalescer(queue_replies, interval_s=0.3).poke


def _receipts_hook(max_hold_s: int, tps_bound: Callable[[], bool] = lambda: False) -> Callable[[list[int]], None]:
    """The same for receipts, held while send batches wait (at most `max_hold_s`; 0: never) unless
    the sending is bounded by the carriers' TPS (`tps_bound()`): then the machine has room for them."""
    from broadcast.inbound import Coalescer, queue_receipts, send_work_waiting

    def hold() -> bool:
        return not tps_bound() and send_work_waiting()  # the local answer first: no Redis round trip

    return Coalescer(queue_receipts, interval_s=0.3, hold=hold if max_hold_s > 0 else None, max_hold_s=max_hold_s).poke


@cli.command("scheduler")
@click.option("--metrics-port", type=int, default=0, help="Serve Prometheus metrics on this port (default: off).")
@pass_ctx
def scheduler(ctx: Context, metrics_port: int) -> None:
    """Fires scheduled alerts when due and reconciles Redis with Postgres every few seconds."""
    from alerting.interfaces.scheduler import run_forever
    from broadcast.presence import watch_scheduler

    logging.getLogger().setLevel(ctx.settings.log_level)
    conn = _redis(ctx, "sirena-scheduler")
    stop = threading.Event()
    got: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        got.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    click.echo(f"scheduler: reconciling every {ctx.settings.reconcile_interval_s:g} s")
    watch_scheduler(conn, metrics_port=metrics_port)
    run_forever(conn, interval_s=ctx.settings.reconcile_interval_s, stop=stop, settings=ctx.settings)
    click.echo(f"scheduler: stopped on {got[0] if got else 'request'} after its pass")


@cli.command("reconcile")
@json_option
@pass_ctx
def reconcile(ctx: Context, as_json: bool) -> None:
    """One pass: reap expired leases, re-queue lost work from Postgres, fire due schedules."""
    from broadcast.reconciler import reconcile as run

    report = run(_redis(ctx, "sirena-reconcile"))
    data = report.as_dict()
    emit(as_json, data, "\n".join(f"{k}: {v}" for k, v in data.items()))
