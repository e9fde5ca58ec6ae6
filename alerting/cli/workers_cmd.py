"""`sirena worker`, `sirena scheduler`, `sirena reconcile`: the processes that move alerts."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from alerting.cli.app import Context, cli, emit, json_option, pass_ctx
from alerting.outbox import PRIORITY_QUEUES

WORKER_QUEUES = (*PRIORITY_QUEUES, "webhooks")  # flash first: reply interpretation goes there too


def load_carriers(ctx: Context):  # type: ignore[no-untyped-def]
    """The carriers file of the settings; passwords from the environment variables it names."""
    from broadcast.carriers import load_carriers as load

    return load(ctx.settings.carriers_file, os.environ)


def _redis(ctx: Context):  # type: ignore[no-untyped-def]
    from alerting.outbox import configure_outbox, redis_connection

    conn = redis_connection(ctx.settings.redis_url, timeout_s=ctx.settings.redis_timeout_s)
    configure_outbox(conn)
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
    """A gateway worker: holds the SMPP binds and runs fan-out and send-batch jobs."""
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    from broadcast.gateway import Gateway, split_config, sync_senders
    from broadcast.inbound import InboundStore
    from broadcast.presence import watch_gateway

    logging.getLogger().setLevel(ctx.settings.log_level)
    k, _, n = share.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise click.BadParameter(f'expected K/N such as 1/2, got "{share}"', param_hint="--share")
    ctx.db()
    conn = _redis(ctx)
    from alerting.webhooks import configure_webhooks

    configure_webhooks(ctx.settings.secret_key())
    config = load_carriers(ctx)
    sync_senders(config)
    from broadcast import replies

    replies.configure_vocabulary(ctx.settings)  # SIRENA_VOCABULARY_FILE, read once for this process
    inbound = InboundStore(after_store=_process_inbound_hook())
    gateway = Gateway(split_config(config, int(k) - 1, int(n)), name=name,
                      drill_allowlist=frozenset(ctx.settings.drill_allowlist), on_deliver=inbound,
                      lease_s=ctx.settings.lease_s)
    try:
        gateway.start()
    except Exception as exc:
        click.echo(f"warning: {exc}; binds keep retrying in the background", err=True)
    qs = [Queue(q.strip(), connection=conn, serializer=JSONSerializer) for q in queues.split(",") if q.strip()]
    rq_worker = SimpleWorker(qs, connection=conn, serializer=JSONSerializer, name=gateway.name)
    click.echo(f"gateway {gateway.name} on queues {', '.join(q.name for q in qs)}")
    beat = watch_gateway(gateway, conn, queues=[q.name for q in qs], share=share, metrics_port=metrics_port)
    try:
        rq_worker.work(burst=burst, with_scheduler=False, logging_level=ctx.settings.log_level)
    finally:
        beat.stop()
        gateway.stop()
        inbound.close()


def _process_inbound_hook():  # type: ignore[no-untyped-def]
    """After raw inbound rows commit, queue their interpretation (when the inbound service exists)."""
    try:
        from broadcast import replies
    except ImportError:
        return None
    from broadcast.inbound import Coalescer

    return Coalescer(replies.queue_interpretation, interval_s=0.3).poke


@cli.command("scheduler")
@click.option("--metrics-port", type=int, default=0, help="Serve Prometheus metrics on this port (default: off).")
@pass_ctx
def scheduler(ctx: Context, metrics_port: int) -> None:
    """Fires scheduled alerts when due and reconciles Redis with Postgres every few seconds."""
    from broadcast.presence import watch_scheduler
    from broadcast.reconciler import run_forever

    logging.getLogger().setLevel(ctx.settings.log_level)
    ctx.db()
    conn = _redis(ctx)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"scheduler: reconciling every {ctx.settings.reconcile_interval_s:g} s")
    watch_scheduler(conn, metrics_port=metrics_port)
    run_forever(conn, interval_s=ctx.settings.reconcile_interval_s, stop=stop, settings=ctx.settings)


@cli.command("reconcile")
@json_option
@pass_ctx
def reconcile(ctx: Context, as_json: bool) -> None:
    """One pass: reap expired leases, re-queue lost work from Postgres, fire due schedules."""
    from broadcast.reconciler import reconcile as run

    ctx.db()
    report = run(_redis(ctx))
    data = report.as_dict()
    emit(as_json, data, "\n".join(f"{k}: {v}" for k, v in data.items()))
