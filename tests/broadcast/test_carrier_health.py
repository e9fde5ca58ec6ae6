"""A carrier its receipts judge degraded gets less traffic, unless nothing else can carry its senders."""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import text

from alerting.base.db import transaction
from alerting.base.sms_text import encoding
from broadcast.carrier_health import DEGRADED_SHARE
from broadcast.carriers import parse_carriers
from broadcast.gateway import Gateway
from broadcast.pool import CarrierPool, OutboundMessage, Outcome
from tests.conftest import carriers_toml, sim_env

TPS = 200  # per carrier: low enough that the rate, not the window, decides who sends what


def _sms(n: int, sender: str = "SIRENA-SC") -> list[OutboundMessage]:
    out = []
    for i in range(n):
        encoded = encoding.encode_parts(f"Aviso {i}", ref=i % 256)
        out.append(OutboundMessage(i, sender, f"+5697{i:07d}", encoded.parts, encoded.data_coding, 0))
    return out


def _binds_tps(pool: CarrierPool, carrier: str) -> set[float]:
    return {b["tps"] for b in pool.health()["carriers"][carrier]["binds"].values()}


def test_a_degraded_carrier_sends_a_quarter_of_its_rate_and_the_other_takes_the_rest(simulator):
    pool = CarrierPool(parse_carriers(carriers_toml(simulator.ports(), tps=TPS), sim_env()), lambda *_: None)
    pool.start()
    try:
        pool.set_degraded({"beta": "50% of receipts failed (others 0%)"}, DEGRADED_SHARE)
        assert _binds_tps(pool, "beta") == {TPS / 2 * DEGRADED_SHARE}  # 2 binds share the carrier's TPS
        assert pool.health()["carriers"]["beta"]["degraded"] == "50% of receipts failed (others 0%)"
        results = pool.submit_many(_sms(600), timeout_s=30)
        carried = Counter(r.carrier for r in results if r.outcome is Outcome.SUBMITTED)
        assert sum(carried.values()) == 600
        assert carried["beta"] < 600 * 0.35, carried  # ~20 % at a quarter of an equal rate

        pool.set_degraded({}, DEGRADED_SHARE)  # recovered: climbs back to its full rate
        assert pool.health()["carriers"]["beta"]["degraded"] is None
    finally:
        pool.stop()


def test_the_only_carrier_of_a_sender_keeps_its_rate_when_degraded(simulator):
    pool = CarrierPool(parse_carriers(carriers_toml(simulator.ports(), tps=TPS), sim_env()), lambda *_: None)
    try:
        pool.set_degraded({"alpha": "receipts arrive after 300 s"}, DEGRADED_SHARE)  # BOMBEROS goes only by alpha
        assert _binds_tps(pool, "alpha") == {TPS / 2}
        assert pool.health()["carriers"]["alpha"]["degraded"] == "receipts arrive after 300 s"
    finally:
        pool.stop()


def test_gateways_follow_the_verdict_stored_by_the_scheduler(committed_db, simulator):
    gateway = Gateway(parse_carriers(carriers_toml(simulator.ports(), tps=TPS), sim_env()), name="gw-health",
                      lease_s=2, flash_lane=False)
    gateway.start()
    try:
        with transaction() as s:
            s.execute(text("INSERT INTO carrier_health (carrier, degraded, reason) "
                           "VALUES ('beta', true, '40% of receipts failed (others 1%)')"))
        deadline = time.monotonic() + 10
        while gateway.pool.degraded != {"beta": "40% of receipts failed (others 1%)"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gateway.pool.degraded == {"beta": "40% of receipts failed (others 1%)"}
        assert _binds_tps(gateway.pool, "beta") == {TPS / 2 * DEGRADED_SHARE}
    finally:
        gateway.stop()
