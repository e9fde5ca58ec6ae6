"""The gateway worker's RQ loop: never deaf when idle, back at once after Redis returns, stopped by SIGTERM.

`sirena worker` runs RQ's non-forking worker (SimpleWorker) on the priority queues. Three things
RQ 2.12 does by default would cost lives here, so this module changes them:

- **Deaf when idle.** RQ blocks in BLPOP for `dequeue_timeout` (worker_ttl − 15 s) and raises the
  client's socket timeout to that plus 10 s, but only for connections made after the worker was
  built: a shared client with a 2 s timeout made its BLPOP time out, RQ quit its loop, and the
  restart waited. The worker now has a Redis client of its own (`worker_connection`) whose socket
  timeout outlasts the blocking pop; the process's other client (outbox, presence) keeps its short
  timeouts, so an enqueue never waits long on a hung Redis.
- **Slow to come back.** RQ sleeps 1, 2, 4 … 60 s between reconnects while Redis is unreachable,
  so a worker could sit out a minute after Redis was back. `GatewayWorker` retries every second,
  and `run_until_stopped` starts a new loop as soon as Redis answers a PING.
- **SIGTERM lost.** RQ answers a signal while idle by raising StopRequested, which ends its loop
  without remembering that a stop was asked, and a signal between loops hit no handler at all.
  `StopSignal` keeps the request for the process: idle (waiting on the queues), the loop ends at
  once; busy, the job finishes — the gateway hands the rest of a batch to another worker after the
  slice in flight is recorded (`Gateway.request_stop`) — and then the loop ends. A second signal
  (Ctrl-C twice) stops at once: the slice in flight is abandoned to its lease, as after a kill.
  RQ's command channel (pub/sub) is off: Sirena sends no RQ commands, and its thread held a stop
  for up to 60 s with redis-py 8.2.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested

log = logging.getLogger("sirena.worker")

RESTART_PAUSE_MAX_S = 2.0  # between loops that die at once with Redis up (a bug, not an outage)
REDIS_POLL_S = 0.25  # how often a worker whose loop ended asks Redis whether it is back


def worker_connection(url: str, *, idle_wait_s: int, connect_timeout_s: float) -> Redis:
    """The Redis client of the RQ loop alone: its socket timeout outlasts the blocking pop of
    `idle_wait_s` (what RQ itself requires: dequeue timeout + 10 s), connecting fails fast, and
    redis-py's own retries are off (the loop's restart is the retry)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Redis.from_url(url, socket_timeout=idle_wait_s + 10, socket_connect_timeout=connect_timeout_s,
                          retry=Retry(NoBackoff(), 0), health_check_interval=30)


class StopSignal:
    """SIGTERM and SIGINT for the whole process: the first asks for a clean stop and is kept until
    the process ends (however many RQ loops come and go); a second one, a second or more later,
    stops at once. `on_stop` runs in the signal handler: it must only set flags."""

    def __init__(self, on_stop: Callable[[], None] = lambda: None) -> None:
        self.requested = threading.Event()
        self.on_stop = on_stop
        self.signal_name = ""
        self._first_at = 0.0
        self.worker: GatewayWorker | None = None  # the RQ loop running now, if any

    def install(self) -> StopSignal:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested.is_set():
            if time.monotonic() - self._first_at < 1.0:
                return  # the same stop sent twice (a process group and its leader): not impatience
            log.warning("second %s: stopping now; the slice in flight is left to its lease",
                        signal.Signals(signum).name)
            raise SystemExit(1)
        self.signal_name = signal.Signals(signum).name
        self._first_at = time.monotonic()
        self.requested.set()
        self.on_stop()
        log.info("%s: stopping after the job in hand (if any) is finished and recorded", self.signal_name)
        worker = self.worker
        if worker is not None:
            worker.stop_when_free()


class _Popped:
    """`holding` is set by the blocking pop as soon as it returns a job id: from then on the job is
    in this process's hands, and a stop must let it run rather than drop it. `stop` is checked
    before each pop: RQ pops again after a timeout without looking at its own stop flag."""

    holding = False
    stop: threading.Event | None = None


class _Queue(Queue):
    @classmethod
    def lpop(cls, queue_keys: Any, timeout: int | None, connection: Redis | None = None) -> Any:
        _Popped.holding = False
        if _Popped.stop is not None and _Popped.stop.is_set():
            raise StopRequested
        result = super().lpop(queue_keys, timeout, connection=connection)
        _Popped.holding = result is not None
        return result

    @classmethod
    def lmove(cls, connection: Redis, queue_key: str, timeout: int | None) -> Any:
        _Popped.holding = False
        if _Popped.stop is not None and _Popped.stop.is_set():
            raise StopRequested
        result = super().lmove(connection, queue_key, timeout)
        _Popped.holding = result is not None
        return result


def queues(names: list[str], connection: Redis) -> list[Queue]:
    """The worker's queues, highest priority first (JSON-serialized jobs, as the outbox writes them)."""
    from rq.serializers import JSONSerializer

    return [_Queue(name, connection=connection, serializer=JSONSerializer) for name in names]


class GatewayWorker(SimpleWorker):
    """RQ's SimpleWorker, reconnecting every half second and stopped through a StopSignal."""

    queue_class = _Queue
    max_connection_wait_time = 0.5  # RQ waits 1 s, then 2, 4 … up to 60 s: Redis back must mean work at once

    def __init__(self, *args: Any, stop: StopSignal, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop = stop
        self._waiting_for_job = False
        _Popped.stop = stop.requested

    def subscribe(self) -> None:
        """No command channel: Sirena sends RQ no commands (a stop is a signal), and with redis-py 8.2
        RQ's teardown waited up to 60 s for the channel's thread (PubSubWorkerThread.stop joins it
        while it sleeps for its subscription), holding a SIGTERM that long."""

    def unsubscribe(self) -> None:
        """Nothing to unsubscribe (see subscribe)."""

    def _install_signal_handlers(self) -> None:
        self.stop.install()  # RQ's own handlers would forget the request when its loop ends

    def work(self, *args: Any, **kwargs: Any) -> bool:
        self.stop.worker = self
        try:
            if self.stop.requested.is_set():
                return False
            return super().work(*args, **kwargs)
        finally:
            self.stop.worker = None

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        _Popped.holding = False
        self._waiting_for_job = True
        try:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        finally:
            self._waiting_for_job = False

    def stop_when_free(self) -> None:
        """From the signal handler: waiting for work (in the blocking pop, or between reconnects),
        end the loop now; holding a job, let it finish and end the loop after it."""
        self._stop_requested = True
        self._shutdown_requested_date = self._shutdown_requested_date or _utcnow()
        if self._waiting_for_job and not _Popped.holding:
            raise StopRequested


def _utcnow() -> Any:
    from rq.utils import now

    return now()


@dataclass
class LoopStats:
    """What the worker publishes about its RQ loop (presence record, `sirena status`)."""

    restarts: int = 0
    last_restart_reason: str = ""
    started_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {"loop_restarts": self.restarts, "loop_last_restart_reason": self.last_restart_reason}


def run_until_stopped(make_worker: Callable[[int], GatewayWorker], stop: StopSignal, *, redis_up: Callable[[], bool],
                      burst: bool = False, logging_level: str = "INFO", stats: LoopStats | None = None) -> LoopStats:
    """Run RQ loops one after another until a stop is asked (or, with `burst`, the queues are empty).

    A loop ends on its own when Redis is lost or hung (its jobs' rows are safe in PostgreSQL); the
    next one starts as soon as Redis answers a PING, or after a pause of at most
    RESTART_PAUSE_MAX_S when loops keep dying at once with Redis up. Each restart is counted.
    """
    stats = stats or LoopStats()
    quick_deaths = 0
    while True:
        started = time.monotonic()
        reason = "its loop returned"
        try:
            make_worker(stats.restarts).work(burst=burst, with_scheduler=False, logging_level=logging_level)
        except StopRequested:
            reason = "stop requested"
        except Exception as exc:  # creating it, or its teardown, against an unreachable Redis
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if burst or stop.requested.is_set():
            return stats
        stats.restarts += 1
        stats.last_restart_reason = reason[:200]
        quick_deaths = quick_deaths + 1 if time.monotonic() - started < 5 else 0
        pause_s = min(REDIS_POLL_S * 2 ** quick_deaths, RESTART_PAUSE_MAX_S) if quick_deaths else 0.0
        log.warning("the RQ loop ended (%s); restart %d as soon as Redis answers", reason, stats.restarts)
        resume_at = time.monotonic() + pause_s
        while not stop.requested.is_set():
            if time.monotonic() >= resume_at and redis_up():
                break
            stop.requested.wait(REDIS_POLL_S)
        if stop.requested.is_set():
            return stats


def pinger(redis: Redis) -> Callable[[], bool]:
    """`redis_up` for run_until_stopped: True when `redis` answers a PING (its own short timeouts)."""

    def up() -> bool:
        try:
            return bool(redis.ping())
        except Exception:
            return False

    return up
