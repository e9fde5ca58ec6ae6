"""A long number's daily cap holds across every gateway process, and across restarts.

Each pool below is what one `sirena worker` process holds; they share only PostgreSQL, as
separate processes do. The simulator's record of the air is what is checked.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import text

from alerting.base.db import transaction
from alerting.base.sms_text import encoding
from broadcast import allowance
from broadcast.carriers import parse_carriers
from broadcast.gateway import split_config
from broadcast.pool import CarrierPool, OutboundMessage, Outcome, submit_within_cap
from tests.conftest import carriers_toml, sim_env

CAP = 30
LONG_NUMBER = f"""
[senders.LN]
kind = "long"
address = "+56900000001"
daily_cap = {CAP}
tps = 50
"""


def _config(simulator):  # type: ignore[no-untyped-def]
    toml = carriers_toml(simulator.ports()).replace('senders = ["SIRENA-SC"', 'senders = ["LN", "SIRENA-SC"')
    return parse_carriers(toml + LONG_NUMBER, sim_env())


def _messages(first: int, n: int, text_: str = "Corte de agua {i}") -> list[OutboundMessage]:
    out = []
    for i in range(first, first + n):
        encoded = encoding.encode_parts(text_.format(i=i), ref=i % 256)
        out.append(OutboundMessage(i, "LN", f"+5698{i:07d}", encoded.parts, encoded.data_coding,
                                   encoding.ESM_CLASS_UDHI if encoded.esm_class_udhi else 0))
    return out


@pytest.fixture
def pools(committed_db, simulator):  # type: ignore[no-untyped-def]
    started: list[CarrierPool] = []

    def make() -> CarrierPool:
        pool = CarrierPool(_config(simulator), lambda *_: None)
        pool.start()
        started.append(pool)
        return pool

    yield make
    for pool in started:
        pool.stop()


def test_two_gateways_together_never_send_more_than_the_cap(pools, simulator):
    first, second = pools(), pools()
    results: dict[str, list] = {}
    threads = [threading.Thread(target=lambda name, pool, lo: results.__setitem__(
        name, submit_within_cap(pool, _messages(lo, 25), priority=100)), args=args)
        for args in (("first", first, 0), ("second", second, 100))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    outcomes = Counter(r.outcome for rs in results.values() for r in rs)
    assert outcomes == {Outcome.SUBMITTED: CAP, Outcome.WAITING_ROUTE: 50 - CAP}
    assert simulator.wait_for(lambda: simulator.submit_count() == CAP)
    waiting = [r for rs in results.values() for r in rs if r.outcome is Outcome.WAITING_ROUTE]
    assert all('daily cap of 30 parts reached for "LN" across every gateway' in r.reason for r in waiting)
    with transaction() as session:
        assert allowance.used_today(session, "LN") == CAP


def test_a_restarted_gateway_does_not_start_the_day_over(pools, simulator):
    assert {r.outcome for r in submit_within_cap(pools(), _messages(0, CAP), priority=100)} == {Outcome.SUBMITTED}
    restarted = pools()  # a new process: nothing in its memory
    results = submit_within_cap(restarted, _messages(100, 5), priority=100)
    assert {r.outcome for r in results} == {Outcome.WAITING_ROUTE}
    assert simulator.wait_for(lambda: simulator.submit_count() == CAP)


def test_parts_count_and_what_a_slice_did_not_spend_is_given_back(pools, simulator):
    pool = pools()
    long_text = "Aviso largo de corte de agua en todo el sector norte de la ciudad {i} " * 3  # 2 parts each
    bad = OutboundMessage(99, "LN", "not-a-number", [b"x"], 0, 0)  # fails before any part is spent
    results = submit_within_cap(pool, [*_messages(0, 4, long_text), bad], priority=100)
    assert [r.outcome for r in results] == [Outcome.SUBMITTED] * 4 + [Outcome.FAILED]
    with transaction() as session:
        assert allowance.used_today(session, "LN") == 8  # 4 messages × 2 parts; the bad one's part given back
        last = session.execute(text("SELECT last_grant FROM sender_usage WHERE sender = 'LN'")).scalar_one()
    assert last == 9  # reserved for the whole slice before it went


def test_a_sender_tps_is_split_between_gateway_processes(simulator):
    config = _config(simulator)
    assert split_config(config, 0, 2).senders["LN"].tps == 25
    assert split_config(config, 1, 2).senders["SIRENA-SC"].tps is None
