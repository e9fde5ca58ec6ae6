"""The template library and the compose picker in a real Chromium (Debian's), against the real app.

An author writes a template with placeholders on /templates, two other approvers approve it with
their codes, and a composer starts a flash alert from it: the picker fills the text as the
placeholder is typed, says when the text is no longer the template's, and the alert needs one
approver, whom the review page tells why. Screenshots go to test-results/ (docs/ with
SIRENA_UPDATE_SCREENSHOT=1).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from alerting.base.db import transaction, utcnow
from alerting.base.models import Alert, AlertState, MessageTemplate, TemplateState
from alerting.directory.accounts import create_operator, decrypt_totp
from audit.actor import Actor
from tests.web.test_browser import (  # noqa: F401  (chromium: the browser fixture)
    CHROMIUM,
    PASSWORD,
    ROOT,
    _csp_watch,
    _next_code,
    _screenshot,
    _seed,
    _sign_in,
    chromium,
    committed_app,
    serving,
)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]

TEXT_ES = "Corte de ruta {ruta} hasta las {hora}. Responda ACK {codigo}."


@pytest.fixture
def server(committed_db, redis_db, monkeypatch):  # type: ignore[no-untyped-def]
    app = committed_app(committed_db, monkeypatch)
    seeds = _seed(committed_db)  # ana (composer, approver: not enrolled yet), beto (approver), carmen (auditor)
    key = committed_db.secret_key()
    with transaction() as db:
        for name in ("dora", "elena"):  # a TOTP code is single-use: each approval below is someone's first
            new = create_operator(db, name, ["approver"], key, Actor.system("browser-test"), password=PASSWORD)
            new.operator.totp_enrolled_at = utcnow()
            seeds[name] = decrypt_totp(new.operator.totp_secret_enc, key)  # type: ignore[arg-type]
    with serving(app) as base:
        yield base, seeds


def test_a_template_is_written_approved_by_two_and_an_alert_starts_from_it(server, chromium, request):  # noqa: F811
    base, seeds = server
    problems: list[str] = []
    pages = {name: chromium.new_context().new_page() for name in ("ana", "beto", "dora", "elena")}
    for page in pages.values():
        _csp_watch(page, problems)
    ana, beto, dora, elena = pages["ana"], pages["beto"], pages["dora"], pages["elena"]
    try:
        _sign_in(ana, base, "ana", seeds["ana"], enrol=True)
        ana.click("#nav-templates")
        ana.click("#new-template")
        ana.fill("#name", "corte-ruta")
        ana.fill("#title_es", "Corte de ruta")
        ana.fill("#text_es", TEXT_ES)
        ana.locator("input.ph-name").nth(0).fill("ruta")
        ana.locator("input.ph-name").nth(1).fill("hora")
        ana.locator("input.ph-default").nth(1).fill("nuevo aviso")
        ana.select_option("#priority_hint", "flash")
        ana.click("#save-submit-template")
        ana.wait_for_url(re.compile(r"/templates/\d+$"))
        template_id = int(ana.url.rsplit("/", 1)[1])
        expect(ana.locator("#template-state")).to_have_attribute("data-state", "pending_approval")
        assert ana.locator("#author-note").is_visible()  # she holds the approver role too: not for her own

        for name, page in (("beto", beto), ("dora", dora)):
            _sign_in(page, base, name, seeds[name], enrol=False)
            page.goto(f"{base}/templates/{template_id}")
            assert "{hora}" in page.inner_text("pre.template-text")
            page.fill("#step_up_code", _next_code(seeds[name]))
            page.click("#approve-template")
            page.wait_for_url(re.compile(rf"/templates/{template_id}$"))
        expect(dora.locator("#template-state")).to_have_attribute("data-state", "approved")
        dora.goto(f"{base}/templates")
        expect(dora.locator('tr[data-name="corte-ruta"] .template-state')).to_have_text("aprobada")
        _screenshot(dora, "templates.png")
        with transaction() as db:
            assert db.get(MessageTemplate, template_id).state is TemplateState.APPROVED

        # Compose from it: the picker fills the text as the placeholder is typed.
        ana.goto(base + "/alerts/new")
        ana.check("input[name=mode][value=live]")
        ana.check("input[name=zones][value='Zona Norte']")
        ana.select_option("#template", str(template_id))
        ruta = ana.locator(f"#tv-{template_id}-ruta")
        expect(ruta).to_be_visible()
        expect(ana.locator("select[name=priority]")).to_have_value("flash")  # the template's hint
        expect(ana.locator("input[name=title]")).to_have_value("Corte de ruta")
        ruta.fill("68")
        filled = "Corte de ruta 68 hasta las nuevo aviso. Responda ACK {codigo}."
        expect(ana.locator("#text_es")).to_have_value(filled)
        expect(ana.locator("#template-note")).to_contain_text("basta un aprobador")
        ana.locator("#text_es").press("End")
        ana.locator("#text_es").type(" Evacúe.")
        expect(ana.locator("#template-note")).to_contain_text("se aplican las aprobaciones habituales")
        ana.fill("#text_es", filled)
        ana.locator("#text_es").dispatch_event("input")
        expect(ana.locator("#template-note")).to_contain_text("basta un aprobador")
        _screenshot(ana, "compose-template.png")
        ana.click("#preview-button")
        expect(ana.locator("#preview-out")).to_contain_text("destinatarios")
        ana.fill("#confirm_live", ana.inner_text("#confirm-phrase"))
        ana.click("#save-submit")
        ana.wait_for_url(re.compile(r"/alerts/\d+$"))
        alert_id = int(ana.url.rsplit("/", 1)[1])
        with transaction() as db:
            alert = db.get(Alert, alert_id)
            assert alert.texts == {"es": filled} and alert.template_values == {"ruta": "68", "hora": "nuevo aviso"}
            assert alert.priority.value == "flash" and alert.required_approvals == 1

        # One approver, told why one is enough.
        _sign_in(elena, base, "elena", seeds["elena"], enrol=False)
        elena.goto(f"{base}/alerts/{alert_id}/review")
        expect(elena.locator("#from-template")).to_contain_text("basta una aprobación")
        elena.fill("#step_up_code", _next_code(seeds["elena"]))
        elena.click("#approve")
        elena.wait_for_url(re.compile(rf"/alerts/{alert_id}$"))
        with transaction() as db:
            assert db.get(Alert, alert_id).state in (AlertState.APPROVED, AlertState.SENDING)
        assert problems == [], problems
    except Exception:
        out = ROOT / "test-results"
        out.mkdir(exist_ok=True)
        for name, page in pages.items():
            page.screenshot(path=str(out / f"{request.node.name}-{name}.png"), full_page=True)
        raise
    finally:
        for page in pages.values():
            page.context.close()
