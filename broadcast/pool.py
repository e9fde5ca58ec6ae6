"""The carrier pool: every bind of every carrier, and the rules for which one sends what.

`CarrierPool.submit_many(messages)` is the gateway's hot path. The caller's thread posts the batch
on a board; each bind pulls work as its window frees (from its own reader thread, so windows stay
full without a round trip through the caller) within its token bucket. Routing: a message goes
only through carriers that carry its sender (and that it is allowed to use); all parts of a long
message go through one bind. Response policy (SMPP 3.4 command_status in submit_sm_resp):

| response                                   | what happens                                           |
|--------------------------------------------|--------------------------------------------------------|
| 0 (ESME_ROK)                               | message id recorded; `submitted` when every part is in |
| 0x58 ESME_RTHROTTLED                       | that bind pauses and halves its rate; same part again  |
| 0x14 MSGQFUL, 0x08 SYSERR, generic_nack, … | retry on another bind (breaker counts a failure)       |
| no response in time, link lost             | possible duplicate: retry on another bind, counted     |
| anything else (0x0B invalid dest, …)       | `failed` with the code; never retried                  |

A result is always given for every message, nothing is dropped: `waiting_route` when every route
of its sender is down (breakers open, links down, or a long number's daily cap is reached),
`retry`/`ambiguous` when it could not be finished within the call (`ambiguous`: it may have
reached the carrier, so a retry may duplicate it).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from broadcast import allowance
from broadcast.binds import Bind, BindState, CarrierUnavailable, OnDeliver, Part
from broadcast.carriers import CarrierConfig, CarriersConfig, SenderConfig, source_ton_npi
from broadcast.flow import Breaker, BreakerState, TokenBucket

log = logging.getLogger("sirena.pool")

ESME_RTHROTTLED = 0x58
# Transient: the SMSC did not take it, another bind may. 0x45 submit failed, 0x64 temporary app error,
# 0x04 bad bind status (the link is confused), 0x08 system error, 0x14 queue full.
_OTHER_BIND = frozenset({0x04, 0x08, 0x14, 0x45, 0x64})
_DATA_CODING_GSM7 = 0
MAX_ATTEMPTS = 3  # binds tried per message within one submit_many call
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
ROUTE_GRACE_S = 1.0  # how long every route of a sender may be down before its messages wait


class Outcome(StrEnum):
    SUBMITTED = "submitted"
    RETRY = "retry"  # not accepted; try again later (maybe on another carrier)
    FAILED = "failed"  # permanent: the carrier's code says so, or no carrier may carry it
    WAITING_ROUTE = "waiting_route"  # every route for its sender is down; nothing was sent
    AMBIGUOUS = "ambiguous"  # may have reached the carrier: a retry may duplicate it


@dataclass(slots=True)
class OutboundMessage:
    """One SMS to one handset, already encoded (alerting.base.sms_text.encoding.encode_parts).

    `data_coding` 0 means GSM-7: each carrier's `data_coding_gsm7` is used in its place.
    """

    delivery_id: int
    sender: str
    destination: str  # E.164, "+56911112222"
    parts: list[bytes]
    data_coding: int = _DATA_CODING_GSM7
    esm_class: int = 0  # 0x40 (UDHI) when the parts carry a concatenation header
    allowed_carriers: frozenset[str] | None = None  # e.g. only test carriers for an exercise
    avoid_carriers: frozenset[str] = frozenset()  # e.g. the carrier that failed it last time


@dataclass(slots=True)
class SubmitResult:
    delivery_id: int
    outcome: Outcome
    carrier: str | None = None
    bind: str | None = None
    message_ids: list[str | None] = field(default_factory=list)
    error_code: int | None = None
    reason: str = ""
    # Earlier attempts that may have reached a carrier: copies beyond one that may be on the air
    # (for `ambiguous`, counting the attempt given up, since the message will be sent again).
    possible_duplicates: int = 0
    carriers_tried: list[str] = field(default_factory=list)


class _Job:
    __slots__ = ("acked", "attempt", "avoid", "call", "dup", "group", "ids", "msg", "refused", "result",
                 "route", "tries", "written")

    def __init__(self, msg: OutboundMessage, call: _Call, group: _Group) -> None:
        self.msg, self.call, self.group = msg, call, group
        self.result: SubmitResult | None = None
        self.route: _Route | None = None
        self.attempt = self.tries = self.acked = self.written = self.refused = 0
        self.avoid: set[str] = set()
        self.dup = 0  # attempts that may have gone out, before the current one
        self.ids: list[str | None] = [None] * len(msg.parts)


class _Group:
    """Queued jobs sharing a route set (same sender, same allowed/avoided carriers)."""

    def __init__(self, sender: SenderConfig | None, routes: list[_Route]) -> None:
        self.sender, self.routes = sender, routes
        self.queue: deque[_Job] = deque()
        self.retry: deque[_Job] = deque()
        self.down_since: float | None = None


class _Call:
    def __init__(self, priority: int, total: int, allowance: dict[str, int] | None = None) -> None:
        self.priority, self.total, self.allowance = priority, total, allowance
        self.groups: dict[tuple[Any, ...], _Group] = {}
        self.lock = threading.Lock()
        self.finished = 0
        self.closed = False
        self.jobs: list[_Job] = []
        self.done = threading.Event()


class _Route:
    """A bind with its flow control: token bucket, breaker, and the parts it owes a resend."""

    def __init__(self, bind: Bind, carrier: CarrierConfig) -> None:
        self.bind, self.carrier, self.name = bind, carrier, bind.name
        self.bucket = TokenBucket(carrier.bind_tps)
        self.breaker = Breaker(carrier.breaker_failures, carrier.breaker_cooldown_s)
        # Re-entrant: a write that fails inside _pump reports the lost link (on_bind_down) at once.
        self.lock = threading.RLock()
        self.resend: deque[Part] = deque()  # throttled parts, sent again here first
        self.pinned: deque[_Job] = deque()  # jobs with parts still to write on this bind
        self.sources: dict[str, tuple[str, int, int]] = {}
        self.failed = self.ambiguous = self.throttled = 0

    def usable(self) -> bool:
        return self.bind.state is BindState.UP and self.breaker.allows()


class CarrierPool:
    """Every bind to every carrier in `config`, routing messages by sender with failover.

    `on_deliver(carrier, bind_name, fields)` receives every deliver_sm (receipts and replies), from
    a bind's reader thread; it must be quick and must raise if it could not keep the message (the
    SMSC is then told to deliver it again).
    """

    def __init__(self, config: CarriersConfig, on_deliver: OnDeliver, *, carriers: Iterable[str] | None = None):
        self.config = config
        wanted = set(carriers) if carriers is not None else {c.name for c in config.carriers}
        self.routes: list[_Route] = []
        for carrier in config.carriers:
            if carrier.name not in wanted:
                continue
            for index in range(1, carrier.binds + 1):
                route = _Route(Bind(carrier, index, self, on_deliver), carrier)
                for name in carrier.senders:
                    route.sources[name] = (config.senders[name].address, *source_ton_npi(
                        carrier, config.senders[name]))
                self.routes.append(route)
        self._by_bind = {r.bind: r for r in self.routes}
        self._calls: list[_Call] = []
        self._calls_lock = threading.Lock()
        self._sender_buckets = {s.name: TokenBucket(s.tps) for s in config.senders.values() if s.tps}
        self._sender_lock = threading.Lock()
        self._daily: dict[str, tuple[str, int]] = {}
        self.possible_duplicates = 0  # copies possibly on the air beyond one, summed over results
        self.degraded: dict[str, str] = {}  # carrier → why its receipts look bad (broadcast.carrier_health)
        # When a bind or a sender last had work and room in its window but no tokens: the carriers'
        # TPS, not this machine, bounded the sending (tps_bound).
        self.limited_at = float("-inf")

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, wait_s: float = 5.0) -> None:
        """Start every bind; wait up to `wait_s` for each to be up or to have failed once.

        Raises CarrierUnavailable naming every carrier with no bind up and its last error (bad
        credentials, refused connection); the binds keep retrying in the background.
        """
        for route in self.routes:
            route.bind.start()
        deadline = time.monotonic() + wait_s
        # Until every bind is up or has failed once: a refused password need not wait `wait_s`.
        while time.monotonic() < deadline and any(
            r.bind.state is not BindState.UP and not r.bind.stats.connect_failures for r in self.routes
        ):
            time.sleep(0.01)
        down = self._carriers_down()
        if down:
            reasons = "; ".join(self._last_error(name) for name in down)
            raise CarrierUnavailable(f"no bind up to {', '.join(down)}: {reasons}", carriers=down)

    def stop(self, drain_s: float = 5.0) -> None:
        """Finish what is in flight (up to `drain_s`), unbind every bind cleanly."""
        threads = [threading.Thread(target=r.bind.stop, args=(drain_s,)) for r in self.routes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _carriers_down(self) -> list[str]:
        up = {r.carrier.name for r in self.routes if r.bind.state is BindState.UP}
        return sorted({r.carrier.name for r in self.routes} - up)

    def _last_error(self, carrier: str) -> str:
        errors = [r.bind.stats.last_error for r in self.routes if r.carrier.name == carrier]
        return next((e for e in errors if e), f"carrier {carrier}: not bound yet")

    def set_degraded(self, degraded: dict[str, str], share: float = 0.25) -> None:
        """Give the binds of each degraded carrier (carrier → why) `share` of their rate, so the
        others take the rest. A carrier that is the only healthy way out for one of its senders
        keeps its full rate: slower is no better than degraded when nothing else can carry it."""
        healthy = {c.name for c in self.config.carriers} - set(degraded)
        for route in self.routes:
            name = route.carrier.name
            spare = all(any(c.name in healthy for c in self.config.carriers_for(s)) for s in route.carrier.senders)
            with route.lock:
                route.bucket.set_share(share if name in degraded and spare else 1.0)
        if degraded != self.degraded:
            log.warning("carriers degraded by their receipts: %s", degraded or "none")
        self.degraded = dict(degraded)

    # -- submitting ----------------------------------------------------------------------------

    def submit_many(self, messages: list[OutboundMessage], *, timeout_s: float = 30.0,
                    priority: int = 100, allowance: dict[str, int] | None = None) -> list[SubmitResult]:
        """Submit `messages` windowed over every usable bind; one result per message, in order.

        Returns when every message has an outcome. No new submit_sm is written after `timeout_s`;
        what is in flight then gets its answer or its response timeout. A lower `priority` is
        served first by every bind (a flash alert's batch overtakes a routine one's).

        `allowance`: parts each daily-capped sender may still send, reserved by the caller across
        every process (broadcast.allowance); the pool spends it in place, so what is left after the
        call is what to give back. Without it, caps are counted in this process's memory only.
        """
        call = _Call(priority, len(messages), allowance)
        jobs = call.jobs = [self._job(msg, call) for msg in messages]
        if call.finished < call.total:
            with self._calls_lock:
                self._calls = sorted([*self._calls, call], key=lambda c: c.priority)
            try:
                self._drive(call, time.monotonic() + timeout_s)
            finally:
                with self._calls_lock:
                    self._calls = [c for c in self._calls if c is not call]
        return [job.result for job in jobs]  # type: ignore[misc]

    def _job(self, msg: OutboundMessage, call: _Call) -> _Job:
        key = (msg.sender, msg.allowed_carriers, msg.avoid_carriers)
        group = call.groups.get(key)
        if group is None:
            sender = self.config.senders.get(msg.sender)
            routes = [r for r in self.routes if sender is not None and msg.sender in r.carrier.senders
                      and (msg.allowed_carriers is None or r.carrier.name in msg.allowed_carriers)
                      and r.carrier.name not in msg.avoid_carriers]
            group = call.groups[key] = _Group(sender, routes)
        job = _Job(msg, call, group)
        if group.sender is None:
            self._finish(job, Outcome.FAILED, reason=f'unknown sender "{msg.sender}"')
        elif not group.routes:
            self._finish(job, Outcome.FAILED, reason=f'no carrier allowed for this message carries "{msg.sender}"')
        elif not msg.parts or len(msg.parts) > 255:
            self._finish(job, Outcome.FAILED, reason=f"a message has 1-255 parts, this one {len(msg.parts)}")
        elif max(map(len, msg.parts)) > 254:
            self._finish(job, Outcome.FAILED, reason="a part longer than short_message's 254 octets")
        elif not _E164.fullmatch(msg.destination):
            self._finish(job, Outcome.FAILED, reason="destination is not an E.164 number (+ and 7-15 digits)")
        else:
            group.queue.append(job)
        return job

    def _drive(self, call: _Call, deadline: float) -> None:
        routes = {r for g in call.groups.values() for r in g.routes}
        while not call.done.is_set():
            if time.monotonic() > deadline and not call.closed:
                call.closed = True
            self._sweep(call)
            for route in routes:
                self._pump(route)
            call.done.wait(0.02)

    def _sweep(self, call: _Call) -> None:
        """Give an outcome to queued jobs that cannot move: no usable route, or out of time."""
        now = time.monotonic()
        for group in call.groups.values():
            usable = {r.name for r in group.routes if r.usable()}
            if not usable and not call.closed:
                # A bind that drops and rebinds within the grace is not worth a waiting_route.
                group.down_since = group.down_since or now
                if now - group.down_since < ROUTE_GRACE_S:
                    continue
            elif usable:
                group.down_since = None
            if usable and not call.closed:
                # Only jobs that every usable bind has already failed are stuck.
                for _ in range(len(group.retry)):
                    try:
                        job = group.retry.popleft()
                    except IndexError:
                        break
                    if job.result is None and usable <= job.avoid:
                        self._give_up(job, f"failed on every bind left to it ({', '.join(sorted(job.avoid))})")
                    elif job.result is None:
                        group.retry.append(job)
                continue
            for queue in (group.queue, group.retry):
                while queue:
                    try:
                        job = queue.popleft()
                    except IndexError:
                        break
                    if job.result is not None:
                        continue
                    if call.closed:
                        self._give_up(job, f"not submitted within the call's time (binds tried: {job.tries})")
                    elif job.avoid or job.dup:
                        self._give_up(job, f"failed on {', '.join(sorted(job.avoid))}; {self._down_reason(group)}")
                    else:
                        self._finish(job, Outcome.WAITING_ROUTE, reason=self._down_reason(group))
        if call.closed and not any(p.job.call is call for r in self.routes for p in list(r.bind.pending.values())):
            # Nothing of this call is on the wire: what is left (throttled, half-written) ends now.
            for job in call.jobs:
                if job.result is None:
                    self._give_up(job, "not finished within the call's time (throttled or no window)")

    def _down_reason(self, group: _Group) -> str:
        states = ", ".join(f"{r.name} {r.bind.state}/{r.breaker.state}" for r in group.routes)
        return f'every route for "{group.sender.name}" is down ({states})'  # type: ignore[union-attr]

    def _give_up(self, job: _Job, reason: str) -> None:
        dup = job.dup + _maybe_sent(job)  # the attempt given up may have gone out too
        self._finish(job, Outcome.AMBIGUOUS if dup else Outcome.RETRY, reason=reason, dup=dup)

    def _finish(self, job: _Job, outcome: Outcome, *, code: int | None = None, reason: str = "",
                dup: int | None = None) -> None:
        call = job.call
        with call.lock:
            if job.result is not None:
                return
            route = job.route
            job.result = SubmitResult(
                job.msg.delivery_id, outcome, route.carrier.name if route else None,
                route.name if route else None, job.ids if outcome is Outcome.SUBMITTED else [],
                code, reason, job.dup if dup is None else dup,
                _carriers_tried(job),
            )
            call.finished += 1
            if call.finished >= call.total:
                call.done.set()
        self.possible_duplicates += job.result.possible_duplicates

    def tps_bound(self, within_s: float = 1.0) -> bool:
        """Whether, within the last `within_s`, a bind or sender had work and window room but no
        tokens: the sending is bounded by the carriers' TPS, not by this machine (receipts need not
        wait for it: broadcast/inbound.py)."""
        return time.monotonic() - self.limited_at < within_s

    # -- feeding binds -------------------------------------------------------------------------

    def _pump(self, route: _Route) -> None:
        """Fill `route`'s free window within its tokens. Called from any thread, often."""
        bind = route.bind
        with route.lock:
            if not route.breaker.allows():
                return
            free = bind.free_slots()
            if route.breaker.state is BreakerState.HALF_OPEN:
                free = min(free, 1 - len(bind.pending))  # one probe at a time
            if free <= 0:
                return
            granted = route.bucket.take(free)
            if granted < free and self._calls:
                self.limited_at = time.monotonic()
            if granted <= 0:
                return
            parts, resent = self._collect(route, granted)
            route.bucket.give_back(granted - len(parts))
            if parts and bind.submit(parts) == 0:
                self._requeue_unwritten(route, parts, resent)

    def _collect(self, route: _Route, room: int) -> tuple[list[Part], int]:
        """Up to `room` parts for `route`: throttled ones first, then pinned jobs, then the board.
        Returns them and how many of them are throttled parts sent again."""
        parts: list[Part] = []
        while route.resend and len(parts) < room:
            part = route.resend.popleft()
            job = part.job
            if job.result is None and part.attempt == job.attempt:
                if job.call.closed:
                    continue  # the sweep gives it up once nothing of its call is in flight
                job.refused -= 1
                parts.append(part)
        resent = len(parts)
        while route.pinned and len(parts) < room:
            job = route.pinned[0]
            if job.result is not None or job.route is not route or job.call.closed:
                route.pinned.popleft()
                continue
            self._take_parts(route, job, parts, room)
            if job.written == len(job.msg.parts):
                route.pinned.popleft()
        if len(parts) < room:
            for call in self._calls:
                if call.closed:
                    continue
                for group in call.groups.values():
                    if route not in group.routes:
                        continue
                    while len(parts) < room:
                        job = self._pull(route, group)
                        if job is None:
                            break
                        self._take_parts(route, job, parts, room)
                        if job.written < len(job.msg.parts):
                            route.pinned.append(job)
                            return parts, resent
        return parts, resent

    def _pull(self, route: _Route, group: _Group) -> _Job | None:
        sender = group.sender
        for queue in (group.retry, group.queue):
            for _ in range(len(queue) if queue is group.retry else 1):
                try:
                    job = queue.popleft()
                except IndexError:
                    break
                if job.result is not None:
                    continue
                if route.name in job.avoid:
                    queue.append(job)
                    continue
                if sender.tps or sender.daily_cap:  # type: ignore[union-attr]
                    verdict = self._sender_gate(sender, len(job.msg.parts), job.call.allowance)  # type: ignore[arg-type]
                    if verdict is not None:
                        if verdict:
                            self._finish(job, Outcome.WAITING_ROUTE, reason=verdict)
                        else:
                            queue.appendleft(job)
                        return None
                job.route = route
                return job
        return None

    def _sender_gate(self, sender: SenderConfig, parts: int, allowance: dict[str, int] | None) -> str | None:
        """None: go. "": not yet (sender TPS). Otherwise the reason it cannot go today."""
        capped = bool(sender.daily_cap)
        shared = capped and allowance is not None
        with self._sender_lock:
            today = datetime.now(UTC).date().isoformat()
            day, used = self._daily.get(sender.name, (today, 0))
            used = used if day == today else 0
            if shared and parts > allowance.get(sender.name, 0):  # type: ignore[union-attr]
                return (f'daily cap of {sender.daily_cap} parts reached for "{sender.name}" across every gateway '
                        f'(resets 00:00 UTC)')
            if capped and not shared and used + parts > sender.daily_cap:  # type: ignore[operator]
                return f'daily cap of {sender.daily_cap} parts reached for "{sender.name}" (resets 00:00 UTC)'
            bucket = self._sender_buckets.get(sender.name)
            if bucket is not None and not bucket.take_all(parts):
                self.limited_at = time.monotonic()
                return ""
            if shared:
                allowance[sender.name] -= parts  # type: ignore[index]
            if capped:
                self._daily[sender.name] = (today, used + parts)  # this process's share, for sender_usage()
        return None

    def _take_parts(self, route: _Route, job: _Job, parts: list[Part], room: int) -> None:
        msg = job.msg
        data_coding = route.carrier.data_coding_gsm7 if msg.data_coding == _DATA_CODING_GSM7 else msg.data_coding
        source = route.sources[msg.sender]
        destination = msg.destination.lstrip("+")
        while job.written < len(msg.parts) and len(parts) < room:
            index = job.written
            parts.append(Part(job, index, source, destination, msg.parts[index], data_coding, msg.esm_class,
                              job.attempt))
            job.written += 1

    def _requeue_unwritten(self, route: _Route, parts: list[Part], resent: int) -> None:
        """The bind was down before `parts` could be written: nothing of them went out."""
        for number, part in enumerate(parts):
            if number < resent:
                part.job.refused += 1
            else:
                part.job.written -= 1
        for job in {id(p.job): p.job for p in parts}.values():
            self._reroute(job, route, f"{route.name} went down before the write", dup=False)

    def _reroute(self, job: _Job, route: _Route, reason: str, *, dup: bool, code: int | None = None) -> None:
        """Start `job` over on another bind (never `route` again within this call).

        `dup`: some of its parts were written and never answered, so they may have gone out.
        """
        with job.call.lock:
            if job.result is not None or job.route is not route:
                return
            # Every attempt that may have gone out is one more possible copy on the air, whatever
            # later attempts do (a black hole on one bind, then on its sibling, then a good bind).
            job.dup += bool(dup or _maybe_sent(job))
            job.attempt += 1
            job.tries += 1
            job.avoid.add(route.name)
            job.route = None
            job.written = job.acked = job.refused = 0
            job.ids = [None] * len(job.msg.parts)
        if job.tries >= MAX_ATTEMPTS or job.call.closed:
            outcome = Outcome.AMBIGUOUS if job.dup else Outcome.RETRY
            self._finish(job, outcome, code=code, reason=f"{reason} (binds tried: {job.tries})")
        else:
            job.group.retry.append(job)

    # -- bind events (BindListener) --------------------------------------------------------------

    def on_bind_up(self, bind: Bind) -> None:
        route = self._by_bind[bind]
        route.breaker.link_up()
        self._pump(route)

    def on_bind_down(self, bind: Bind, reason: str, unanswered: list[Part]) -> None:
        route = self._by_bind[bind]
        route.breaker.trip()
        current = [p for p in unanswered if p.attempt == p.job.attempt]
        route.ambiguous += len(current)
        unanswered_jobs = {id(p.job) for p in current}
        for job in {id(p.job): p.job for p in current}.values():
            self._reroute(job, route, f"{bind.name}: {reason}", dup=True)
        self._evacuate(route, f"{bind.name}: {reason}", skip=unanswered_jobs)

    def _evacuate(self, route: _Route, reason: str, skip: set[int] | frozenset[int] = frozenset()) -> None:
        """Move the jobs `route` still owes parts (pinned, throttled) to other binds."""
        with route.lock:
            jobs = {id(p.job): p.job for p in route.resend}
            jobs.update({id(j): j for j in route.pinned})
            route.resend.clear()
            route.pinned.clear()
        for key, job in jobs.items():
            if key not in skip:
                self._reroute(job, route, reason, dup=False)

    def on_submit_timeout(self, bind: Bind, parts: list[Part]) -> None:
        route = self._by_bind[bind]
        route.ambiguous += len(parts)
        for part in parts:
            route.breaker.failure()
            if part.attempt == part.job.attempt:
                self._reroute(part.job, route, f"{bind.name}: no submit_sm_resp in time", dup=True)
        if route.breaker.state is BreakerState.OPEN:
            self._evacuate(route, f"{bind.name}: breaker open after timeouts")

    def on_submit_resp(self, bind: Bind, part: Part, status: int, message_id: str | None) -> None:
        job = part.job
        if part.attempt != job.attempt or job.result is not None:
            return
        route = self._by_bind[bind]
        if status == 0:
            route.breaker.success()
            job.ids[part.index] = message_id
            job.acked += 1
            if job.acked == len(job.msg.parts):
                self._finish(job, Outcome.SUBMITTED)
        elif status == ESME_RTHROTTLED:
            route.throttled += 1
            route.bucket.slow_down()
            if job.call.closed:
                self._give_up(job, f"{bind.name}: throttled (0x58) until the call's time ran out")
            else:
                job.refused += 1  # a definite "not taken"; undone when it is written again
                route.resend.append(part)
        elif status in _OTHER_BIND:
            route.failed += 1
            route.breaker.failure()
            job.refused += 1
            self._reroute(job, route, f"{bind.name}: {_describe(status)}", dup=False, code=status)
            if route.breaker.state is BreakerState.OPEN:
                self._evacuate(route, f"{bind.name}: breaker open after {_describe(status)}")
        else:
            route.failed += 1
            route.breaker.success()  # the link works; the message is what the carrier refuses
            self._finish(job, Outcome.FAILED, code=status, reason=f"{bind.name}: {_describe(status)}")

    def on_window_free(self, bind: Bind) -> None:
        self._pump(self._by_bind[bind])

    # -- reporting -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Per carrier, per bind: state, breaker, window in use, rate, counters."""
        carriers: dict[str, Any] = {}
        for route in self.routes:
            bind, stats = route.bind, route.bind.stats
            entry = carriers.setdefault(route.carrier.name, {"test": route.carrier.test, "binds": {},
                                                             "degraded": self.degraded.get(route.carrier.name)})
            entry["binds"][route.name] = {
                "state": str(bind.state), "breaker": str(route.breaker.state), "window": bind.window,
                "in_flight": len(bind.pending), "tps": round(route.bucket.rate, 1),
                "submitted": stats.submitted, "responses": stats.responses, "failed": route.failed,
                "throttled": route.throttled, "timeouts": stats.timeouts, "ambiguous": route.ambiguous,
                "late_responses": stats.late_responses, "delivers": stats.delivers,
                "connects": stats.connects, "connect_failures": stats.connect_failures,
                "connect_attempts_last_min": sum(t > time.monotonic() - 60 for t in stats.attempt_times),
                "last_error": stats.last_error,
            }
        for entry in carriers.values():
            entry["up"] = any(b["state"] == "up" for b in entry["binds"].values())
        return {"carriers": carriers, "possible_duplicates": self.possible_duplicates}

    def sender_usage(self, sender: str) -> dict[str, Any]:
        """Today's use of a long number against its daily cap (this process's view)."""
        config = self.config.senders[sender]
        today = datetime.now(UTC).date().isoformat()
        day, used = self._daily.get(sender, (today, 0))
        used = used if day == today else 0
        left = None if config.daily_cap is None else config.daily_cap - used
        return {"sender": sender, "daily_cap": config.daily_cap, "used_today": used, "left_today": left,
                "tps": config.tps}


def plan_capacity(config: CarriersConfig, sender: str, parts_total: int, used_today: int = 0) -> dict[str, Any]:
    """What sending `parts_total` parts from `sender` takes: seconds at its TPS, and whether it
    exceeds a long number's daily cap (the compose preview shows this)."""
    sender_config = config.senders[sender]
    carriers = config.carriers_for(sender)
    tps = sum(c.tps for c in carriers)
    if sender_config.tps:
        tps = min(tps, sender_config.tps)
    cap = sender_config.daily_cap
    return {
        "sender": sender, "parts": parts_total, "tps": tps,
        "seconds": parts_total / tps if tps else None,
        "daily_cap": cap, "exceeds_daily_cap": cap is not None and used_today + parts_total > cap,
        "carriers": [c.name for c in carriers],
    }


def _carriers_tried(job: _Job) -> list[str]:
    """The carriers of every bind the job was written to or avoided (bind names are carrier-N)."""
    route = job.route
    if not job.avoid:  # the usual case: one attempt, on one bind
        return [route.carrier.name] if route else []
    return sorted({b.rsplit("-", 1)[0] for b in job.avoid | ({route.name} if route else set())})


def _maybe_sent(job: _Job) -> bool:
    """Could a carrier hold some part of `job`'s current attempt? Then sending it again may duplicate it."""
    return job.acked > 0 or job.written > job.acked + job.refused


def _describe(status: int) -> str:
    import smpplib.consts

    return f"{smpplib.consts.DESCRIPTIONS.get(status, 'unknown error')} (0x{status:02X})"


def submit_within_cap(pool: CarrierPool, messages: list[OutboundMessage], *, priority: int) -> list[SubmitResult]:
    """`pool.submit_many`, a daily-capped sender's parts reserved first across every gateway process
    (broadcast.allowance) and what was not spent given back after. Past the cap, or with the
    database unreachable, the messages come back `waiting_route` saying why: never dropped."""
    capped = {m.sender for m in messages if (cfg := pool.config.senders.get(m.sender)) and cfg.daily_cap}
    if not capped:
        return pool.submit_many(messages, priority=priority)
    reservations = {name: allowance.reserve(name, sum(len(m.parts) for m in messages if m.sender == name),
                                            pool.config.senders[name].daily_cap or 0) for name in sorted(capped)}
    left = {name: r.left for name, r in reservations.items()}
    try:
        results = pool.submit_many(messages, priority=priority, allowance=left)
    finally:
        for name, reservation in reservations.items():
            reservation.left = left[name]
            allowance.give_back(reservation)
    why = {name: r.error for name, r in reservations.items() if r.error}
    if why:  # the cap's reason would be wrong: say the database is what stopped them
        for result, message in zip(results, messages, strict=True):
            if result.outcome is Outcome.WAITING_ROUTE and message.sender in why:
                result.reason = why[message.sender]
    return results
