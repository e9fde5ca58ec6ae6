"""Gateway workers: long-lived processes that hold the SMPP binds and run send-batch jobs.

A gateway is a non-forking RQ worker (`sirena worker`): a fork per job would share the parent's
sockets between horses. It claims a batch in Postgres (lease), renders and encodes each message
(mode prefix and placeholders are applied here, below any user interface), submits through the
carrier pool, and records every outcome in one statement.

Throughput limits across processes: a fixed split. Each of N gateway processes opens its share
of every carrier's binds (and of its TPS), so the per-account bind count and TPS hold without a
Redis round trip per PDU. A dead process leaves its share idle until it is restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError

from alerting.base import job_ids
from alerting.base.db import transaction, utcnow
from alerting.base.models import Alert, AlertMode, AlertState, Priority
from alerting.base.outbox import enqueue_after_commit
from alerting.base.sms_text.encoding import ConcatReference, encode_parts
from alerting.base.sms_text.rendering import is_personalised, mode_prefix, render, texts_for_phones
from audit import trail
from audit.actor import Actor
from broadcast import carrier_health, claims, jobs, local_gateway, next_numbers
from broadcast.carriers import CarriersConfig
from broadcast.flash_lane import FlashLane
from broadcast.pool import CarrierPool, OutboundMessage, Outcome, SubmitResult, submit_within_cap

log = logging.getLogger("sirena.gateway")

MAX_QUICK_ATTEMPTS = 6
DRILL_REFUSALS = frozenset({"drill_unmarked", "drill_no_test_route"})
# A completed alert may still have queued deliveries: a contact's next number, tried after the
# alert's last submit when a receipt said the first failed (broadcast/next_numbers.py).
SENDS = frozenset({AlertState.SENDING, AlertState.COMPLETED})


def split_config(config: CarriersConfig, index: int, count: int) -> CarriersConfig:
    """This process's share (index of count, from 0) of every carrier's binds and TPS."""
    if count <= 1:
        return config
    carriers = []
    for carrier in config.carriers:
        share = len(range(index, carrier.binds, count))
        if share == 0:
            continue
        carriers.append(replace(carrier, binds=share, tps=carrier.tps * share / carrier.binds))
    # A sender's own TPS is split evenly; its daily cap is shared through PostgreSQL (broadcast.allowance).
    senders = {name: replace(sender, tps=sender.tps / count) if sender.tps else sender
               for name, sender in config.senders.items()}
    return replace(config, carriers=tuple(carriers), senders=senders)


@dataclass(frozen=True)
class _Plan:
    """What every message of one alert shares, read once per batch."""

    alert_id: int
    reference: str
    code: str
    mode: AlertMode
    priority: Priority
    sender: str
    texts: dict[str, str]
    personalized: bool


class Gateway:
    """The carrier pool of this process plus the send-batch logic that uses it."""

    def __init__(self, config: CarriersConfig, *, name: str | None = None,
                 drill_allowlist: frozenset[str] = frozenset(), on_deliver: Any = None,
                 lease_s: int = claims.LEASE_S, flash_lane: bool = True) -> None:
        self.name = name or f"gw-{socket.gethostname()}-{os.getpid()}"
        self.config = config
        self.test_carriers = frozenset(c.name for c in config.carriers if c.test)
        self.drill_allowlist = drill_allowlist
        self.references = ConcatReference()
        self.pool = CarrierPool(config, on_deliver or _ignore_deliver)
        self.lease_s = lease_s
        self._stopping = threading.Event()
        self._draining = threading.Event()
        # A slice is what one worker may have in flight: the duplicates a SIGKILL can cause.
        self.slice_size = max(20, min(500, sum(c.window * c.binds for c in config.carriers)))
        # Flash work taken from PostgreSQL at once, whatever the RQ loop is doing (broadcast.flash_lane).
        # Off for gateways a test drives job by job.
        self.flash_lane = FlashLane(self) if flash_lane else None

    def start(self, wait_s: float = 5.0) -> None:
        """Bind to every carrier and start renewing this worker's leases."""
        local_gateway.install(self)
        self._heartbeat = threading.Thread(target=self._renew_leases, name="lease-heartbeat", daemon=True)
        self._heartbeat.start()
        try:
            self.pool.start(wait_s=wait_s)
        finally:  # binds still coming up keep retrying; flash work waits for them in the pool
            if self.flash_lane is not None:
                self.flash_lane.start()

    def request_stop(self) -> None:
        """Take no new slice: the one in flight is finished and recorded, the rest of its batch is
        queued again for another worker. Only sets a flag (called from the SIGTERM handler)."""
        self._draining.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def stop(self) -> None:
        if self.flash_lane is not None:
            self.flash_lane.stop()  # after the slice in hand is recorded
        self._stopping.set()
        self.pool.stop()
        local_gateway.uninstall(self)

    def _renew_leases(self) -> None:
        """A live worker keeps its claims: only a dead one's leases expire and get reclaimed. The same
        beat follows the carriers' health judged from receipts (broadcast.carrier_health)."""
        while not self._stopping.wait(max(0.5, self.lease_s / 3)):
            try:
                with transaction() as session:
                    claims.renew_leases(session, worker=self.name, lease_s=self.lease_s)
                    self.pool.set_degraded(carrier_health.degraded_carriers(session), carrier_health.DEGRADED_SHARE)
            except Exception as exc:  # Postgres restarting: the leases outlive a short outage
                log.warning("lease renewal failed: %s", exc)

    def send_batch(self, alert_id: int, lo: int, hi: int, *, max_slices: int | None = None) -> dict[str, Any]:
        """Send the queued deliveries of `alert_id` with ids in [lo, hi]. Idempotent.

        Works in slices no larger than this process's windows: claim (commit), submit, record
        (commit), next slice. A worker killed mid-slice re-sends at most one slice, which is what
        bounds duplicates by the window; a cancel takes effect at the next slice. With `max_slices`
        it returns after that many (`more`: True), leaving the rest queued (the flash lane takes one
        slice of each flash alert in turn).
        """
        totals = {"claimed": 0, "submitted": 0, "retry": False, "completed": False, "more": False}
        slices = 0
        while True:
            if max_slices is not None and slices >= max_slices:
                totals["more"] = True
                return totals
            with transaction() as session:
                alert = session.get(Alert, alert_id)
                if alert is None or alert.state not in SENDS:
                    return totals
                if self.draining:  # this worker is stopping: another one takes what is left, at once
                    jobs.queue_batches(session, alert, [(lo, hi)], tag=f"-h{utcnow():%H%M%S%f}")
                    log.info("alert_id=%s: stopping; the rest of batch %s-%s is queued for another worker",
                             alert_id, lo, hi)
                    totals["handed_over"] = True
                    return totals
                sender = self.config.senders.get(alert.sender_name)
                plan = _Plan(alert.id, alert.reference, alert.reply_code, alert.mode, alert.priority,
                             alert.sender_name, texts_for_phones(alert, sender.keyword if sender else None),
                             any(is_personalised(t) for t in alert.texts.values()))
                claimed = claims.claim_batch(session, alert_id, lo, hi, worker=self.name, limit=self.slice_size,
                                             with_contact=plan.personalized, lease_s=self.lease_s)
            if not claimed:
                break
            slices += 1
            outcomes = self._submit(plan, claimed)
            retry = any(o.state == "queued" for o in outcomes)
            self._record_until_stored(plan, outcomes, lo, hi, retry)
            totals["claimed"] += len(claimed)
            totals["submitted"] += sum(o.state == "submitted" for o in outcomes)
            if retry:
                totals["retry"] = True
                break
        with transaction() as session:
            totals["completed"] = jobs.finish_if_done(session, alert_id)
        return totals

    def _record_until_stored(self, plan: _Plan, outcomes: list[claims.Outcome], lo: int, hi: int,
                             retry: bool) -> None:
        """Record a slice's outcomes, retrying while PostgreSQL is unreachable (a restart, a failover).

        The outcomes live only in this process: given up, the slice's rows would stay `submitting`
        under leases this live worker keeps renewing (a stuck alert), or be sent again.
        """
        delay_s = 0.2
        while True:
            try:
                with transaction() as session:
                    self._record(session, plan, outcomes)
                    if retry:  # at the back of the queue: other work goes first, then these again
                        job = job_ids.send_batch(plan.alert_id, lo, hi, f"-r{utcnow():%H%M%S%f}")
                        enqueue_after_commit(session, job.func, plan.alert_id, lo, hi,
                                             queue=plan.priority.queue_name, job_id=job.job_id)
                return
            except (OperationalError, InterfaceError) as exc:  # a deadlock victim too: rolled back whole
                if self._stopping.is_set():
                    raise
                log.warning("alert_id=%s: recording %d outcomes failed, retrying in %.1f s: %s", plan.alert_id,
                            len(outcomes), delay_s, str(exc).splitlines()[0])
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    def _submit(self, plan: _Plan, claimed: list[claims.Claimed]) -> list[claims.Outcome]:
        messages, refused = self._messages(plan, claimed)
        results = submit_within_cap(self.pool, messages, priority=plan.priority.rank) if messages else []
        by_id = {c.id: c for c in claimed}
        return refused + [self._outcome(r, by_id[r.delivery_id]) for r in results]

    def _record(self, session: Any, plan: _Plan, outcomes: list[claims.Outcome]) -> None:
        claims.record_outcomes(session, outcomes, worker=self.name)
        refused_for_good = [o.id for o in outcomes if o.state == "failed" and o.error_code not in DRILL_REFUSALS]
        if refused_for_good:  # a final submit refusal: the contact's next number, if any (rare: off the hot path)
            next_numbers.try_next_numbers(session, refused_for_good)
        if any(o.state == "submitted" for o in outcomes):
            session.execute(text(
                "UPDATE alerts SET first_submit_at = coalesce(first_submit_at, now()), last_submit_at = now() "
                "WHERE id = :a"), {"a": plan.alert_id})
        refused = [o for o in outcomes if o.error_code in DRILL_REFUSALS]
        if refused:
            trail.append(session, actor=Actor.system(self.name), action="gateway.drill_refused",
                         subject_type="alert", subject_id=plan.alert_id, outcome="refused",
                         reason=refused[0].error_reason, payload={"deliveries": len(refused)})

    def _messages(self, plan: _Plan, claimed: list[claims.Claimed]) -> tuple[list[OutboundMessage],
                                                                            list[claims.Outcome]]:
        ref = self.references.next_reference()
        cache: dict[str | tuple[str, str], Any] = {}  # language → text; ("enc", text) → its parts
        messages: list[OutboundMessage] = []
        refused: list[claims.Outcome] = []
        live = plan.mode is AlertMode.LIVE
        for row in claimed:
            language = row.language if row.language in plan.texts else next(iter(plan.texts))
            body = plan.texts[language]
            if plan.personalized:
                rendered = render(body, mode=plan.mode, language=language, code=plan.code,
                                  reference=plan.reference, contact_name=row.name, attributes=row.attributes)
            else:
                rendered = cache.get(language) or render(body, mode=plan.mode, language=language,
                                                         code=plan.code, reference=plan.reference)
                cache[language] = rendered
            if not live and not rendered.startswith(mode_prefix(plan.mode, language)):
                refused.append(claims.Outcome(row.id, "failed", error_code="drill_unmarked",
                                              error_reason="exercise/test text without its prefix: refused"))
                continue
            encoded = cache.get(("enc", rendered)) or encode_parts(rendered, ref)
            cache[("enc", rendered)] = encoded
            allowed = None if live or row.msisdn in self.drill_allowlist else self.test_carriers
            if allowed is not None and not allowed:
                refused.append(claims.Outcome(row.id, "failed", error_code="drill_no_test_route",
                                              error_reason="exercise/test alerts may only use test carriers; "
                                                           "none is configured"))
                continue
            messages.append(OutboundMessage(
                delivery_id=row.id, sender=plan.sender, destination=row.msisdn, parts=encoded.parts,
                data_coding=encoded.data_coding, esm_class=0x40 if encoded.esm_class_udhi else 0,
                allowed_carriers=allowed, avoid_carriers=self._tried_before(plan.sender, row, allowed)))
        return messages, refused

    def _tried_before(self, sender: str, row: claims.Claimed, allowed: frozenset[str] | None) -> frozenset[str]:
        """A delivery back for another attempt goes through a carrier it has not tried yet, when its
        sender has one (else through any: a carrier that failed once is better than none)."""
        if not row.carriers_tried:
            return frozenset()
        usable = {c.name for c in self.config.carriers_for(sender) if allowed is None or c.name in allowed}
        tried = usable & set(row.carriers_tried)
        return frozenset(tried) if usable - tried else frozenset()

    @staticmethod
    def _outcome(result: SubmitResult, row: claims.Claimed) -> claims.Outcome:
        reason = result.reason or None
        code = f"0x{result.error_code:02X}" if result.error_code is not None else None
        if result.outcome is Outcome.SUBMITTED:
            return claims.Outcome(row.id, "submitted", result.carrier, result.bind,
                                  [i or "" for i in result.message_ids], len(result.message_ids),
                                  possible_duplicates=result.possible_duplicates)
        if result.outcome is Outcome.FAILED:
            return claims.Outcome(row.id, "failed", result.carrier, result.bind, error_code=code or "failed",
                                  error_reason=reason, possible_duplicates=result.possible_duplicates)
        if result.outcome is Outcome.WAITING_ROUTE:
            return claims.Outcome(row.id, "waiting_route", error_code="no_route", error_reason=reason)
        # Transient: tried again at once a few times, then every few seconds (waiting_route, retried by
        # the reconciler) until it goes or the alert is cancelled. Never failed for a transient reason.
        state = "queued" if row.attempts < MAX_QUICK_ATTEMPTS else "waiting_route"
        return claims.Outcome(row.id, state, result.carrier, result.bind, error_code=code or "retry",
                              error_reason=reason, possible_duplicates=result.possible_duplicates)


def _ignore_deliver(carrier: str, bind: str, fields: dict[str, Any]) -> None:
    log.info("deliver_sm on %s/%s not stored: this gateway has no inbound handler", carrier, bind)




