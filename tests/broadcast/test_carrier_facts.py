"""The carriers file mirrored into PostgreSQL: senders, and each carrier's facts the inbound side reads."""

from dataclasses import replace

from sqlalchemy import select

from alerting.base.db import transaction
from alerting.base.models import Carrier
from broadcast import carrier_facts
from broadcast.carriers import parse_carriers
from tests.conftest import carriers_toml, sim_env


def test_each_carrier_is_mirrored_with_its_style_test_route_and_senders(committed_db):
    config = parse_carriers(carriers_toml({"alpha": 2775, "beta": 2776}), sim_env())
    config = replace(config, carriers=(replace(config.carriers[0], receipt_id_style="hex"), *config.carriers[1:]))
    carrier_facts.sync(config)
    with transaction() as s:
        rows = {c.name: c for c in s.scalars(select(Carrier))}
        assert rows["alpha"].receipt_id_style == "hex" and rows["beta"].receipt_id_style == "string"
        assert set(rows["alpha"].senders) == set(config.carriers[0].senders)
        assert carrier_facts.receipt_styles(s) == {"alpha": "hex", "beta": "string"}
        routes = carrier_facts.routes_by_sender(s)
    for sender in config.senders:
        assert routes.get(sender, set()) == {c.name for c in config.carriers_for(sender)}


def test_a_carrier_that_left_the_file_is_no_route_but_its_receipts_are_still_read(committed_db):
    config = parse_carriers(carriers_toml({"alpha": 2775, "beta": 2776}), sim_env())
    carrier_facts.sync(config)
    assert carrier_facts.sync(config) == []  # idempotent
    carrier_facts.sync(replace(config, carriers=config.carriers[:1]))
    with transaction() as s:
        assert not s.get(Carrier, "beta").active
        assert all(carriers == {"alpha"} for carriers in carrier_facts.routes_by_sender(s).values())
        assert "beta" in carrier_facts.receipt_styles(s)  # a late receipt of beta's is still matched
