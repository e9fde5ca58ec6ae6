"""The flash lane: a thread of every gateway process that takes flash work from PostgreSQL at once.

A gateway's RQ loop runs one job at a time: a 100,000-contact fan-out chunk, a routine send batch,
a receipt interpretation. A flash alert queued behind them waited for whatever was in hand, on
every worker at once (issue 17: 100 s in the demo). The lane does not wait for the loop. Woken by
NOTIFY on FLASH_CHANNEL (sent at commit when a flash alert is approved and when a chunk of one is
written: `notify`) and every POLL_S anyway (a notice lost in a reconnect, a scheduled flash alert
coming due, deliveries back in the queue after a retry), it:

1. runs the fan-out of flash alerts approved (or scheduled and due): their first chunk;
2. sends the queued deliveries of sending flash alerts, slice by slice, through this process's
   binds, where the pool serves them before any routine submit;
3. writes the next chunk of a flash alert whose fan-out is not done, and sends it (2) …

until no flash work is left, then completes the alert. It does what the RQ jobs do, through the
same code (`jobs.fan_out`, `Gateway.send_batch`), so every guarantee holds: a slice is a committed
claim with a lease (a job or another lane never takes the same rows; a killed process's leases
expire and the reconciler re-queues them), a chunk is claimed in `fanout_chunks`. It queues no RQ
job for what it writes (it sends that itself; rows still queued a few seconds later get batches
from the reconciler), so it makes no Redis call: a flash alert leaves with Redis hung. The RQ jobs
queued at approval still run and find less to do.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from alerting.base.db import engine, transaction
from alerting.base.outbox import FLASH_CHANNEL
from broadcast import jobs

if TYPE_CHECKING:
    from broadcast.gateway import Gateway

log = logging.getLogger("sirena.flash_lane")

POLL_S = 1.0
RETRY_REST_S = 10.0  # an alert whose work raised is left to the RQ jobs this long
ALL_IDS = (0, 2**62)

_WORK = text("""
SELECT a.id, a.state, a.fanout_done,
       EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = a.id AND d.state = 'queued') AS queued
  FROM alerts a
 WHERE a.priority = 'flash'
   AND (a.state IN ('approved', 'sending') OR (a.state = 'scheduled' AND a.scheduled_at <= now()))
 ORDER BY a.approved_at, a.id
""")


class FlashLane:
    """The lane of one gateway; `start()` runs it in a daemon thread, `stop()` ends it."""
    def __init__(self, gateway: Gateway, *, poll_s: float = POLL_S) -> None:
        self.gateway = gateway
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._listener: Any = None
        self._thread = threading.Thread(target=self._run, name="flash-lane", daemon=True)
        self._resting: dict[int, float] = {}  # alert → monotonic time before which the lane leaves it alone
        self.sent = 0  # send calls this lane made (each a slice or more)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ends the lane after the slice in hand (if any) is recorded."""
        self._stop.set()
        self._thread.join(timeout_s)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    self._listen()
                    self.drain()
                    failures = 0
                    self._wait()
                except Exception as exc:  # PostgreSQL restarting: the lane comes back with it
                    failures += 1
                    self._close_listener()
                    pause_s = min(0.2 * 2 ** failures, 5.0)
                    log.warning("flash lane: %s; again in %.1f s", str(exc).splitlines()[0] or exc, pause_s)
                    self._stop.wait(pause_s)
        finally:
            self._close_listener()

    def drain(self) -> int:
        """Do every piece of flash work there is now (see the module's docstring); returns send calls made."""
        sent = 0
        while not self._stopping():
            with transaction() as session:
                work = session.execute(_WORK).all()
            progressed = False
            for alert_id, state, fanout_done, queued in work:
                if self._stopping():
                    break
                if self._resting.get(alert_id, 0.0) > time.monotonic():
                    continue
                try:
                    moved, calls = self._step(alert_id, state, fanout_done, queued)
                except Exception as exc:  # this alert's problem (a zone deleted…): the jobs report it too
                    log.warning("flash lane: alert_id=%s: %s; left to the queued jobs for %.0f s", alert_id,
                                str(exc).splitlines()[0] or exc, RETRY_REST_S)
                    self._resting[alert_id] = time.monotonic() + RETRY_REST_S
                    continue
                sent += calls
                progressed = progressed or moved
            if not progressed:
                break
        self.sent += sent
        return sent

    def _step(self, alert_id: int, state: str, fanout_done: bool, queued: bool) -> tuple[bool, int]:
        """One piece of work on one flash alert; returns (whether anything moved, send calls made)."""
        if state in ("approved", "scheduled"):
            # The first chunk (after the lock, if a worker is writing it: then nothing), then its slices.
            jobs.fan_out(alert_id, first_only=True, queue_jobs=False)
            return True, 0
        if queued:
            totals = self.gateway.send_batch(alert_id, *ALL_IDS, max_slices=1)  # each flash alert in turn
            if totals.get("retry"):  # a transient refusal: the retry is queued; this lane looks again soon
                self._resting[alert_id] = time.monotonic() + self.poll_s
            return bool(totals.get("claimed")), 1
        if not fanout_done:
            # The next chunk, if one is left to claim (others may be writing theirs).
            jobs.fan_out(alert_id, queue_jobs=False)
            return self._fanout_moved(alert_id), 0
        with transaction() as session:  # all written and handed over: completed (else in flight elsewhere)
            return jobs.finish_if_done(session, alert_id), 0

    def _fanout_moved(self, alert_id: int) -> bool:
        """After a fan-out call: True when it wrote something this lane can now send or move on from."""
        with transaction() as session:
            return bool(session.execute(text(
                "SELECT fanout_done OR EXISTS (SELECT 1 FROM deliveries WHERE alert_id = :a AND state = 'queued') "
                "FROM alerts WHERE id = :a"), {"a": alert_id}).scalar())

    def _stopping(self) -> bool:
        """Asked to stop, or the gateway is draining for a clean stop (it takes no new slice)."""
        return self._stop.is_set() or bool(getattr(self.gateway, "draining", False))

    # -- LISTEN --------------------------------------------------------------------------------

    def _listen(self) -> None:
        """A connection of its own (outside the pool), LISTENing on FLASH_CHANNEL, kept open."""
        if self._listener is not None:
            return
        bound = engine()
        cargs, cparams = bound.dialect.create_connect_args(bound.url)
        conn = bound.dialect.loaded_dbapi.connect(*cargs, **{**cparams, "application_name": "sirena-flash-lane",
                                                              "connect_timeout": 5})
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {FLASH_CHANNEL}")
        self._listener = conn

    def _wait(self) -> None:
        """Until a notice arrives (drained at once: one pass serves them all) or POLL_S passes."""
        conn = self._listener
        if select.select([conn], [], [], self.poll_s) != ([], [], []):
            conn.poll()
            conn.notifies.clear()

    def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already gone with the server
                conn.close()
