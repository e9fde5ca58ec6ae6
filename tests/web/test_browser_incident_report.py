"""Issue 21's after-action report in a real Chromium, on an incident made by the real pipeline (an
alert sent over SMPP to the simulator, receipts back, handsets answering, a HELP handled, the
pre-approved correction fired: tests/web/incident_world.py).

The operator opens the report from the incidents list; the figures it shows are checked against
the deliveries and replies in the database, the charts are drawn by the vendored uPlot with no
CSP complaint, and the HTML file it downloads names no address at all and, opened from disk with
the network cut, still draws its charts and requests nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web import incident_world
from tests.web import test_browser as browser
from tests.web.test_browser import ROOT, _csp_watch, _sign_in, committed_app, serving

pytestmark = browser.pytestmark
chromium = browser.chromium  # the fixture of tests/web/test_browser.py


@pytest.fixture
def town(committed_db, redis_db, gateway, simulator, run_jobs, monkeypatch):  # type: ignore[no-untyped-def]
    app = committed_app(committed_db, monkeypatch)
    world = incident_world.build(committed_db, simulator, run_jobs)
    with serving(app) as base:
        yield base, world


def _shown(value: float | None) -> str:
    """A time as the Spanish page writes it (incident_report.seconds)."""
    if value is None:
        return "no alcanzado"
    if value < 60:
        return f"{value:.1f}".replace(".", ",") + " s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes} min {seconds:02d} s"


def test_the_report_shows_the_pipelines_figures_and_its_html_file_is_self_contained(town, chromium, request,
                                                                                    tmp_path):
    base, world = town
    problems: list[str] = []
    context = chromium.new_context(accept_downloads=True)
    page = context.new_page()
    _csp_watch(page, problems)
    offline = chromium.new_context(offline=True)
    try:
        _sign_in(page, base, "jefa", world.seeds["jefa"], enrol=False)
        page.goto(base + "/incidents")
        page.click(f"text={world.reference}")
        page.wait_for_url(f"{base}/incidents/{world.incident_id}")

        # The figures on the page are the database's.
        with_alert = page.locator("#report-alerts tr[data-alert]")
        expect(with_alert).to_have_count(2)  # the alert and its correction, which joined by itself
        expected = incident_world.expected(world.alert_id)
        reference = _reference(page, world.alert_id)
        row = page.locator(f'#figures tr[data-breakdown="all"][data-alert="{reference}"]')
        assert row.locator('td[data-figure="recipients"]').inner_text() == str(expected["recipients"]) == "6"
        assert row.locator('td[data-figure="answered"]').inner_text() == str(expected["answered"]) == "3"
        for key in ("t50_s", "t90_s", "t99_s", "ack_t50_s", "ack_t90_s"):
            cell = row.locator(f'td[data-figure="{key}"]')
            value = cell.get_attribute("data-value")
            want = expected[key]
            assert (value == "") == (want is None), (key, value, want)
            if want is not None:
                assert abs(float(value) - want) < 0.002, (key, value, want)
                assert cell.inner_text() == _shown(float(value)), key
            else:
                assert cell.inner_text() == "no alcanzado"
        zone = page.locator(f'#figures tr[data-breakdown="zone"][data-alert="{reference}"][data-key="Sector 7"]')
        assert zone.locator('td[data-figure="recipients"]').inner_text() == "4"  # four of the six live there

        # Charts drawn by uPlot, served by the app; the HELP, how long it waited and who handled it.
        expect(page.locator(f"#chart-{world.alert_id}-delivered .uplot canvas")).to_have_count(1)
        expect(page.locator("#chart-incident-delivered .uplot")).to_have_count(1)
        helps = page.locator("#helps tbody tr")
        expect(helps).to_have_count(1)
        expect(helps).to_contain_text(world.help_text.split(" ", 2)[2])
        expect(helps).to_contain_text("llamamos a bomberos")
        expect(helps).to_contain_text("jefa")
        actions = page.locator("#actions")
        for action in ("incident.opened", "alert.composed", "alert.approved", "alert.correction_fired",
                       "reply.help_handled"):
            expect(actions.locator(f'tr[data-action="{action}"]').first).to_be_visible()
        expect(page.locator(f"#non-responders-{world.alert_id} tbody tr")).to_have_count(3)  # jefa may see who
        head = page.inner_text("#head-seq")
        assert head.isdigit() and int(head) > 0

        # The HTML file: nothing outside it, charts drawn offline, the verification line.
        with page.expect_download() as download:
            page.click("#export-html")
        path = Path(download.value.path())
        html = path.read_text(encoding="utf-8")
        assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE), "an address in the file"
        assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html, re.IGNORECASE)
        assert f"sirena audit verify --export {world.reference}-after-action.html" in html
        requested: list[str] = []
        offline.on("request", lambda r: requested.append(r.url))
        local = offline.new_page()
        errors: list[str] = []
        local.on("pageerror", lambda e: errors.append(str(e)))
        saved = tmp_path / download.value.suggested_filename  # as the operator saves it: …-after-action.html
        download.value.save_as(saved)
        local.goto(saved.as_uri())
        # The incident's two charts, the alert's two and the correction's delivery chart (it asks
        # for no answer).
        expect(local.locator("[data-chart][data-drawn] .uplot canvas")).to_have_count(5)
        expect(local.locator("[data-chart]")).to_have_count(5)
        local.screenshot(path=str(ROOT / "test-results" / "after-action-report.png"), full_page=True)
        assert [u for u in requested if not u.startswith("file:")] == []
        assert errors == []
        assert local.locator('#figures tr[data-breakdown="all"] td[data-figure="t50_s"]').first.inner_text()
        assert problems == [], problems
    except Exception:
        out = ROOT / "test-results"
        out.mkdir(exist_ok=True)
        page.screenshot(path=str(out / f"{request.node.name}.png"), full_page=True)
        raise
    finally:
        context.close()
        offline.close()


def _reference(page, alert_id: int) -> str:  # type: ignore[no-untyped-def]
    return page.locator(f'#report-alerts a[href="#alert-{alert_id}"]').inner_text()
