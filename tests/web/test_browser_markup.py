"""Every string from outside reaches the DOM as text, in a real Chromium (issue 16).

Markup goes in through each door a stranger or a careless operator has: a zone's name (the map's
tooltip, the zone lists), a group's name, a contact's name, a user name typed at sign-in (the
audit trail's actor), a handset's reply (through the simulator, the gateway and the inbound
interpretation, then the live reply stream), and a carrier's error (the gateway's bind error,
published to Redis and shown on the dashboard). Each page is then searched for any element the
markup would have created; the text itself must be there, shown as typed.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from alerting.alerts import drafts, lifecycle
from alerting.base.db import transaction
from alerting.base.models import AlertMode, Contact, Priority
from alerting.directory import contacts as directory
from audit.actor import Actor
from broadcast import replies as replies_job
from geo.zones import import_geojson
from tests.conftest import SIM_PASSWORDS, carriers_toml, sim_env
from tests.factories import actor_for
from tests.web.test_browser import CHROMIUM, _sign_in, chromium, server  # noqa: F401  (fixtures)

MARK = '<img src=x class=xss-probe><b class="xss-probe">!</b>'
PROBE = ".xss-probe"
ZONE = f"Zona {MARK}"
GROUP = f"grupo {MARK}"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


@pytest.fixture
def simulator():  # type: ignore[no-untyped-def]
    """alpha and beta, whose handsets all answer at once with markup in the text."""
    from smsc_sim import CarrierConfig, SimConfig, Simulator
    from smsc_sim.config import HandsetConfig

    handsets = HandsetConfig(reply_share=1.0, delay_s=(0.0, 0.0), texts=[(f"ACK {{code}} {MARK}", 1.0)])
    sim = Simulator(SimConfig(carriers=[CarrierConfig(name=name, port=0, system_id=name, password=pw,
                                                      handsets=handsets) for name, pw in SIM_PASSWORDS.items()]))
    sim.start_in_thread()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def gateway(committed_db, redis_db, simulator):  # type: ignore[no-untyped-def]
    """The in-process gateway, plus a carrier `gamma` whose host is markup: its connect error says so,
    and the gateway's presence heartbeat carries that error to the dashboard."""
    from broadcast import carrier_facts
    from broadcast.binds import CarrierUnavailable
    from broadcast.carriers import parse_carriers
    from broadcast.gateway import Gateway
    from broadcast.inbound import InboundStore
    from broadcast.presence import watch_gateway

    gamma = f"""
[senders.OTRO]
kind = "short"
address = "4343"

[carriers.gamma]
host = "{MARK.replace('"', "'")}.invalid"
port = 2775
system_id = "gamma"
password_env = "SIM_ALPHA_PASSWORD"
binds = 1
senders = ["OTRO"]
"""
    config = parse_carriers(carriers_toml(simulator.ports(), extra=gamma), sim_env())
    carrier_facts.sync(config)
    inbound = InboundStore()
    gw = Gateway(config, name="gw-markup", on_deliver=inbound, flash_lane=False)  # jobs run by hand
    with contextlib.suppress(CarrierUnavailable):  # gamma is down on purpose; `sirena worker` goes on too
        gw.start()
    beat = watch_gateway(gw, redis_db, queues=["flash", "high"], share="1/1")
    try:
        yield gw
    finally:
        beat.stop()
        gw.stop()
        inbound.close()


def _seed_markup(seeds_zone_polygon: list) -> None:
    system = Actor.system("browser-test")
    with transaction() as db:
        import_geojson(db, {"type": "Feature", "properties": {"name": ZONE},
                            "geometry": {"type": "Polygon", "coordinates": seeds_zone_polygon}}, actor=system)
        group = directory.create_group(db, GROUP, drill_allowed=True, actor=system)
        numbers = list(db.scalars(select(Contact.msisdn).order_by(Contact.id)))
        directory.add_members(db, group, numbers, actor=system)
        db.execute(update(Contact).values(name=Contact.name + " " + MARK))


def _approved_live_alert() -> int:
    with transaction() as db:
        from alerting.base.models import Operator

        ana, beto = (actor_for(db.scalar(select(Operator).where(Operator.username == n))) for n in ("ana", "beto"))
        alert = lifecycle.compose(db, drafts.AlertDraft(
            texts={"es": "Evacuar. Responda ACK {codigo}"}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
            priority=Priority.HIGH, target={"groups": [GROUP]}), ana)
        lifecycle.submit(db, alert.id, ana)
        lifecycle.approve(db, alert.id, beto, seen_hash=alert.approval_hash)
        return alert.id


def _no_markup_and_the_text_shown(page, where: str, *, expect_text: str = MARK) -> None:  # type: ignore[no-untyped-def]
    assert page.locator(PROBE).count() == 0, f"{where}: markup became elements"
    assert expect_text in page.inner_text("body"), f"{where}: the text is not shown as typed"


def test_markup_from_every_door_is_shown_as_text(server, chromium, gateway, simulator, run_jobs,  # noqa: F811
                                                 redis_db):
    base, seeds = server
    _seed_markup([[[-70.85, -33.45], [-70.75, -33.45], [-70.75, -33.35], [-70.85, -33.35], [-70.85, -33.45]]])
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # A user name typed at sign-in becomes the actor of a refused sign-in in the audit trail.
        page.goto(base + "/login")
        page.fill("#username", MARK)
        page.fill("#password", "not the password at all")
        page.click("#sign-in")
        _sign_in(page, base, "carmen", seeds["carmen"], enrol=False)
        page.goto(base + "/audit/timeline")
        _no_markup_and_the_text_shown(page, "audit timeline")

        # A handset's reply, through the simulator, the gateway and the interpretation job.
        alert_id = _approved_live_alert()
        deadline = time.monotonic() + 30
        while True:
            run_jobs()
            replies_job.sweep(min_age_s=0.0)  # the scheduler's pass over stored inbound rows
            with transaction() as db:
                replies = db.execute(text("SELECT count(*) FROM replies WHERE alert_id = :a AND text LIKE :m"),
                                     {"a": alert_id, "m": f"%{MARK}"}).scalar_one()
            if replies >= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert replies >= 5, "the handsets' replies did not come back through the gateway"

        context.close()
        context = chromium.new_context()
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        _sign_in(page, base, "ana", seeds["ana"], enrol=True)
        page.goto(f"{base}/alerts/{alert_id}")
        page.wait_for_selector("#reply-stream li")  # the live stream, written by live.js
        page.wait_for_function("document.querySelectorAll('#reply-stream li').length >= 5")
        _no_markup_and_the_text_shown(page, "alert detail (replies, non-responders, target)")
        assert MARK in page.inner_text("#reply-stream")

        # Zone names: the lists, and the map's tooltip (Leaflet would have used innerHTML).
        for path in ("/directory/zones", "/alerts/new"):
            page.goto(base + path)
            page.wait_for_selector("path.leaflet-interactive")
            paths, tips = page.locator("path.leaflet-interactive"), []
            for i in range(paths.count()):
                paths.nth(i).hover(force=True)
                page.wait_for_selector(".leaflet-tooltip")
                tips += page.locator(".leaflet-tooltip").all_inner_texts()
                assert page.locator(PROBE).count() == 0, f"{path}: a tooltip made elements of {tips[-1]}"
            assert f"{ZONE} v1" in tips, tips
            _no_markup_and_the_text_shown(page, path)
        for path in ("/directory/groups", "/directory/contacts"):
            page.goto(base + path)
            _no_markup_and_the_text_shown(page, path)

        # A carrier's error, from the gateway's heartbeat, on the dashboard.
        page.goto(base + "/")
        page.wait_for_selector("text=cannot connect to")
        _no_markup_and_the_text_shown(page, "dashboard", expect_text=MARK.replace('"', "'"))
        # The same heartbeat is what /readyz reads: SIRENA-SC is carried, gamma's sender is not.
        from broadcast.presence import read_all, routes_up

        published = routes_up(read_all(redis_db))
        assert published["SIRENA-SC"] == ["alpha", "beta"] and published["OTRO"] == []
        assert errors == [], errors
    finally:
        context.close()
