"""The live page and every console page in a real Chromium (issue 20, items 3, 5 and 6).

What the pages' scripts write counts here: the live page's numbers, bar, chart, carriers and
replies after live updates, the compose form's explanations, counter and preview, the dashboard's
refreshed counts. The app is served on a committed database; the gateway sends to the simulator
and handsets answer through it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select, text

from alerting.base.db import transaction
from alerting.base.models import Operator
from alerting.directory import accounts
from tests.cluster import seed_group
from tests.conftest import carriers_toml, sim_env
from tests.web import console_world as town
from tests.web.console_text import foreign, page_texts
from tests.web.test_browser import CHROMIUM, _screenshot, chromium, committed_app, serving  # noqa: F401

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]

RECIPIENTS = 1200  # above a thousand: the number has a separator in both languages


@pytest.fixture
def slow_gateway(committed_db, redis_db, simulator) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """The in-process gateway at 100 SMS/s a carrier: 1,200 messages take seconds, the page sees them go."""
    from broadcast import carrier_facts
    from broadcast.carriers import parse_carriers
    from broadcast.gateway import Gateway
    from broadcast.inbound import InboundStore

    config = parse_carriers(carriers_toml(simulator.ports(), binds=1, tps=100), sim_env())
    carrier_facts.sync(config)
    inbound = InboundStore()
    gw = Gateway(config, name="gw-slow", on_deliver=inbound, flash_lane=False)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
        inbound.close()


def _sign_in(page, base: str, name: str, seed: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/login")
    page.fill("#username", name)
    page.fill("#password", town.PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r"/login/code$"))
    page.fill("#code", pyotp.TOTP(seed).now())
    page.click("#verify")
    page.wait_for_url(base + "/")


def _first_number(alert_id: int) -> str:
    with transaction() as db:
        return db.execute(text("SELECT msisdn FROM deliveries WHERE alert_id = :a ORDER BY id LIMIT 1"),
                          {"a": alert_id}).scalar_one()


def _language(name: str, lang: str) -> None:
    with transaction() as db:
        operator_id = db.scalar(select(Operator.id).where(Operator.username == name))
        accounts.set_language(db, operator_id, lang, town.actor("jefa"))  # type: ignore[arg-type]


def test_the_live_page_keeps_its_numbers_while_they_change(committed_db, redis_db, slow_gateway, simulator,
                                                           run_jobs, chromium, monkeypatch):  # noqa: F811
    app = committed_app(committed_db, monkeypatch)
    seeds = town.operators(committed_db)
    seed_group(RECIPIENTS, group=town.GROUP, prefix="+5696")
    seed_group(3, group="otros", prefix="+5695")
    redacta, aprueba = town.actor("redacta"), town.actor("aprueba")
    alert_id, other_id = town.compose(redacta), town.compose(redacta, group="otros")
    for a in (alert_id, other_id):  # most of the directory: the approver says why
        town.approve(a, town.submit(a, redacta), aprueba, override_reason="simulacro de toda la brigada")
    _language("jefa", "en")
    problems: list[str] = []
    with serving(app) as base:
        context = chromium.new_context()
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        try:
            _sign_in(page, base, "jefa", seeds["jefa"])
            page.goto(f"{base}/alerts/{alert_id}")
            expect(page.locator("#big-recipients .n")).to_have_text("0")  # approved, not fanned out yet
            # Every value the bar takes while the alert goes out, as the page shows it.
            page.evaluate("""() => {
                window.seen = [];
                const bar = document.getElementById('progress');
                new MutationObserver(() => window.seen.push(Number(bar.getAttribute('aria-valuenow'))))
                    .observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
            }""")
            run_jobs()  # fan-out and send, at 200 SMS/s: some seconds, while the page keeps polling
            town.pipeline(run_jobs, lambda: town.count(
                "SELECT count(*) FROM alerts WHERE state = 'completed'") == 2)
            expect(page.locator("#alert-state")).to_have_text("completed", timeout=20_000)
            expect(page.locator("#big-recipients .n")).to_have_text("1,200")  # written by live.js: separator kept
            expect(page.locator("#big-sent .n")).to_have_text("1,200")
            expect(page.locator("#progress-percent")).to_have_text("100%")
            expect(page.locator("#progress-words")).to_have_text("1,200 of 1,200 sent to carriers")
            expect(page.locator("#all-sent")).to_be_visible()
            expect(page.locator("#eta-box")).to_be_hidden()
            seen = page.evaluate("window.seen")
            assert seen == sorted(seen) and seen[-1] == RECIPIENTS, seen  # it only moves forward
            assert any(0 < v < RECIPIENTS for v in seen), f"the bar jumped, never moved: {seen}"
            width = float(page.locator("#progress rect.bar-delivered").get_attribute("width") or 0) + \
                float(page.locator("#progress rect.bar-sent").get_attribute("width") or 0) + \
                float(page.locator("#progress rect.bar-failed").get_attribute("width") or 0)
            assert width == pytest.approx(1000, abs=1)
            # The chart: axes with their titles and ticks, a line per series, the legend.
            expect(page.locator("#chart-x-title")).to_have_text("time since approval (minutes:seconds)")
            assert page.locator("#chart .x-tick").all_text_contents()[:2] == ["0:00", "0:15"]
            expect(page.locator("#chart-y-title")).to_have_text("messages")
            assert {"0", "1,000", "2,000"} <= set(page.locator("#chart .y-tick").all_text_contents())
            assert page.locator("#chart polyline.line").count() == 4
            assert page.locator("#chart-legend li").all_inner_texts() == ["sent to carriers", "delivered", "failed",
                                                                          "ACK"]
            assert page.locator("#carriers tbody tr").count() == 2  # alpha and beta, each with its share
            _screenshot(page, "live.png")
            # This alert's unmatched replies: its recipient's unknown keyword, not the other alert's.
            mine, theirs = (_first_number(a) for a in (alert_id, other_id))
            simulator.send_mo("alpha", mine.lstrip("+"), "5555", "POLICIA la calle se inunda")
            simulator.send_mo("alpha", theirs.lstrip("+"), "5555", "POLICIA en otro barrio")
            simulator.send_mo("alpha", mine.lstrip("+"), "4242", "ACK")
            town.pipeline(run_jobs, lambda: town.count("SELECT count(*) FROM replies") == 3)
            expect(page.locator("#alert-unmatched")).to_contain_text("POLICIA la calle se inunda", timeout=15_000)
            expect(page.locator("#alert-unmatched")).not_to_contain_text("POLICIA en otro barrio")
            expect(page.locator("#big-unmatched .n")).to_have_text("1")
            expect(page.locator("#big-ack .n")).to_have_text("1")
            expect(page.locator("#big-recipients .n")).to_have_text("1,200")  # still grouped after more updates

            # The same page in Spanish: grouped the Spanish way, on load and after an update.
            _language("jefa", "es")
            page.goto(f"{base}/alerts/{alert_id}")
            expect(page.locator("#big-recipients .n")).to_have_text("1.200")
            expect(page.locator("#progress-percent")).to_have_text("100\u00a0%")
            simulator.send_mo("alpha", mine.lstrip("+"), "4242", "AYUDA")
            town.pipeline(run_jobs, lambda: town.count("SELECT count(*) FROM replies") == 4)
            expect(page.locator("#big-help .n")).to_have_text("1", timeout=15_000)
            expect(page.locator("#big-help")).to_have_class(re.compile(r"\balarm\b"))
            expect(page.locator("#big-recipients .n")).to_have_text("1.200")
            expect(page.locator("#alert-state")).to_have_text("completada")
            expect(page.locator("#chart-x-title")).to_have_text("tiempo desde la aprobación (minutos:segundos)")
            assert "1.000" in page.locator("#chart .y-tick").all_text_contents()
            assert problems == [], problems
        finally:
            context.close()


def _visit(page, base: str, path: str, lang: str) -> str:  # type: ignore[no-untyped-def]
    """The page after its scripts have written what they write."""
    page.goto(base + path)
    if path == "/alerts/new":
        page.check("input[name=mode][value=live]")
        page.check(f"input[name=groups][value='{town.GROUP}']")
        page.fill("#text_es", "Corte de agua en su sector.")
        page.click("#preview-button")
        expect(page.locator("#preview-out")).not_to_have_text(re.compile(r"^(…)?$"))
        expect(page.locator("#segments-es")).not_to_be_empty()
    elif re.fullmatch(r"/alerts/\d+", path):
        page.wait_for_selector("#live[data-updates]", timeout=25_000)  # a live answer came and was shown
    elif path == "/":
        page.wait_for_timeout(5_500)  # the dashboard's own refresh of alerts in progress
    return page.content()


def test_every_page_in_each_language_in_chromium(committed_db, redis_db, gateway, simulator, run_jobs,
                                                  chromium, monkeypatch):  # noqa: F811
    app = committed_app(committed_db, monkeypatch)
    world = town.build(committed_db, simulator, run_jobs)
    paths = ["/", "/alerts", "/alerts/new", "/approvals", "/replies/unmatched", "/directory/contacts",
             "/directory/groups", "/directory/zones", "/admin/operators", "/audit/timeline", "/audit/verify",
             f"/alerts/{world.alerts['pending_approval']}/review", f"/directory/groups/{world.groups[town.GROUP]}",
             "/templates", f"/templates/{world.templates['own']}", f"/templates/{world.templates['water']}/history",
             *(f"/alerts/{a}" for a in world.alerts.values())]
    with transaction() as db:  # the contact with a second number (issue 21)
        paths.append(f"/directory/contacts/{db.execute(text('SELECT min(contact_id) FROM contact_numbers')).scalar()}")
    problems: list[str] = []
    with serving(app) as base:
        context = chromium.new_context()
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        try:
            _sign_in(page, base, "jefa", world.seeds["jefa"])  # Spanish, the default
            for lang in ("es", "en"):
                if page.locator("html").get_attribute("lang") != lang:
                    page.click("#language-switch")  # the operator switches on the console itself
                    expect(page.locator("html")).to_have_attribute("lang", lang)
                found = {}
                for path in paths:
                    shown, texts = page_texts(_visit(page, base, path, lang))
                    assert shown == lang, path
                    hits = foreign(texts, lang, world.data)
                    if hits:
                        found[path] = hits[:6]
                assert found == {}, f"{lang}: {found}"
        finally:
            context.close()
    assert problems == [], problems
