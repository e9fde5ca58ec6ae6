"""Issue 20 in a real Chromium: a drill on a shared short code whose replies are matched (the
keyword said where the sender is picked and written into the SMS), and a HELP pinned at the top
of the alert page and the dashboard until an operator marks it handled.

The alert is composed and approved in the browser, sent over SMPP by an in-process gateway to the
simulator, and answered by simulated handsets; replies are read by the same code a worker runs.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import text

from alerting.base.db import transaction
from tests.broadcast.inbound_rig import inbound_rig, process_all, wait_inbound
from tests.web import test_browser as browser
from tests.web.test_browser import ROOT, _csp_watch, _next_code, _sign_in

pytestmark = browser.pytestmark
server, chromium = browser.server, browser.chromium  # the fixtures of tests/web/test_browser.py


def test_a_shared_code_drill_is_answered_and_a_help_is_pinned_until_handled(server, chromium, run_jobs, request):
    base, seeds = server
    problems: list[str] = []
    ana_ctx, beto_ctx = chromium.new_context(), chromium.new_context()
    ana, beto = ana_ctx.new_page(), beto_ctx.new_page()
    _csp_watch(ana, problems)
    _csp_watch(beto, problems)
    try:
        with inbound_rig() as (sim, _gateway):  # its carriers file: BOMBEROS, a shared code on alpha
            _sign_in(ana, base, "ana", seeds["ana"], enrol=True)
            ana.goto(base + "/alerts/new")
            ana.check("input[name=mode][value=live]")
            ana.check("input[name=zones][value='Zona Norte']")
            expect(ana.locator("#sender-hint-BOMBEROS")).to_be_hidden()
            ana.select_option("#sender", "BOMBEROS")
            expect(ana.locator("#sender-hint-BOMBEROS")).to_be_visible()  # said where the sender is picked
            expect(ana.locator("#sender-hint-BOMBEROS")).to_contain_text("Responda BOMBEROS ACK 4821")
            assert "las respuestas deben empezar con BOMBEROS" in ana.inner_text("#sender")
            ana.fill("#text_es", "Simulacro de incendio en Zona Norte. Responda ACK {codigo} o AYUDA {codigo}.")
            ana.click("#preview-button")
            expect(ana.locator("#preview-out")).to_contain_text("destinatarios")  # ana reads Spanish
            ana.fill("#confirm_live", ana.inner_text("#confirm-phrase"))
            ana.click("#save-submit")
            ana.wait_for_url(re.compile(r"/alerts/\d+$"))
            alert_id = int(ana.url.rsplit("/", 1)[1])
            with transaction() as s:
                code = s.execute(text("SELECT reply_code FROM alerts WHERE id = :a"), {"a": alert_id}).scalar_one()

            # The approver sees the SMS as phones will: the keyword is in the reply instruction.
            _sign_in(beto, base, "beto", seeds["beto"], enrol=False)
            beto.goto(f"{base}/alerts/{alert_id}/review")
            expect(beto.locator("pre.phone-text").first).to_contain_text(
                f"Responda BOMBEROS ACK {code} o BOMBEROS AYUDA {code}.")
            beto.fill("#step_up_code", _next_code(seeds["beto"]))
            beto.click("#approve")
            beto.wait_for_url(re.compile(rf"/alerts/{alert_id}$"))
            run_jobs()  # fan-out, then the send batches through the gateway to the simulator
            on_air = {m["dest"]: m["text"] for m in sim.messages()}
            assert len(on_air) == 5 and all(f"BOMBEROS ACK {code}" in t for t in on_air.values()), on_air

            # Handsets answer: one as told, one without the keyword but with the code, one for help.
            sim.send_mo("alpha", "56910000000", "5555", f"BOMBEROS ACK {code}")
            sim.send_mo("alpha", "56910000001", "5555", f"ACK {code}")
            sim.send_mo("alpha", "56910000002", "5555", f"AYUDA {code} estamos atrapados en el techo")
            wait_inbound(sim, 5 + 3)  # the five receipts and the three replies
            process_all()
        with transaction() as s:
            matched = dict(s.execute(text("SELECT msisdn, meaning FROM replies WHERE alert_id = :a"),
                                     {"a": alert_id}).all())
        assert matched == {"+56910000000": "ack", "+56910000001": "ack", "+56910000002": "help"}

        # The HELP is pinned at the top of the alert page and of the dashboard ...
        ana.goto(f"{base}/alerts/{alert_id}")
        panel = ana.locator("#help-panel")
        expect(panel).to_have_class(re.compile(r"help-open"))
        expect(ana.locator("#help-count")).to_have_text("1")
        expect(panel).to_contain_text("estamos atrapados en el techo")
        assert ana.locator("#help-panel").bounding_box()["y"] < ana.locator("#live").bounding_box()["y"]
        ana.goto(base + "/")
        expect(ana.locator("#help-panel .help-item")).to_have_count(1)
        expect(ana.locator("#help-panel")).to_contain_text("Vecino 2")

        # ... and stays there until someone marks it handled (audited, with who and the note).
        ana.fill("#help-panel .help-handle input[name=note]", "llamé, va la brigada 3")
        ana.click("#help-panel .help-handle button")
        ana.wait_for_url(base + "/")
        expect(ana.locator("#help-panel .help-item")).to_have_count(0)
        expect(ana.locator("#help-none")).to_be_visible()
        beto.goto(f"{base}/alerts/{alert_id}")
        expect(beto.locator("#help-panel .help-item")).to_have_count(0)
        expect(beto.locator("#timeline")).to_contain_text("reply.help_handled")
        with transaction() as s:
            event = s.execute(text("SELECT actor_name, reason FROM audit.events WHERE action = 'reply.help_handled'"
                                   )).one()
        assert tuple(event) == ("ana", "llamé, va la brigada 3")
        assert problems == [], problems
    except Exception:
        out = ROOT / "test-results"
        out.mkdir(exist_ok=True)
        for name, page in (("ana", ana), ("beto", beto)):
            page.screenshot(path=str(out / f"{request.node.name}-{name}.png"), full_page=True)
        raise
    finally:
        ana_ctx.close()
        beto_ctx.close()


def test_a_help_arriving_while_the_dashboard_is_open_appears_without_a_reload(server, chromium):
    base, seeds = server
    page = chromium.new_context().new_page()
    _sign_in(page, base, "beto", seeds["beto"], enrol=False)
    expect(page.locator("#help-panel .help-item")).to_have_count(0)
    with inbound_rig() as (sim, _gateway):
        sim.send_mo("alpha", "56977700001", "4242", "AYUDA no estoy en ninguna lista")  # matches no alert
        wait_inbound(sim, 1)
        process_all()
    expect(page.locator("#help-panel .help-item")).to_have_count(1, timeout=10_000)  # refreshed by help_panel.js
    expect(page.locator("#help-panel")).to_contain_text("no estoy en ninguna lista")
    expect(page.locator("#help-panel")).to_contain_text("sin alerta asociada")
    expect(page.locator("#help-count")).to_have_text("1")
