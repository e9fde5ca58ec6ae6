"""Issue 21 in a real Chromium: an admin publishes a registration keyword for a zone and turns
self-registration on; residents text ALTA NORTE to the short code through the simulator and answer
SI; the admin reads the registrations, filters them, exports them as CSV, and a composer's preview
of the zone counts the resident who registered by SMS (who has no location)."""

from __future__ import annotations

import io
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import text

from alerting.base import csv_cells
from alerting.base.db import transaction, utcnow
from alerting.directory.accounts import create_operator, decrypt_totp
from audit.actor import Actor
from broadcast import followups
from tests.broadcast.inbound_rig import inbound_rig, process_all
from tests.web import test_browser as browser
from tests.web.test_browser import PASSWORD, ROOT, _csp_watch, _sign_in

pytestmark = browser.pytestmark
server, chromium = browser.server, browser.chromium  # the fixtures of tests/web/test_browser.py


def _admin(settings) -> str:  # type: ignore[no-untyped-def]
    """Dora, an admin with her authenticator enrolled; returns her TOTP seed."""
    key = settings.secret_key()
    with transaction() as db:
        new = create_operator(db, "dora", ["admin"], key, Actor.system("browser-test"), password=PASSWORD)
        new.operator.totp_enrolled_at = utcnow()
        return decrypt_totp(new.operator.totp_secret_enc, key)  # type: ignore[arg-type]


def _texts(sim, number: str, body: str) -> None:  # type: ignore[no-untyped-def]
    """A handset texts the short code; the gateway stores it, a worker reads it and sends the answer."""
    def stored() -> int:
        with transaction() as s:
            return int(s.execute(text("SELECT count(*) FROM inbound_messages WHERE kind = 'mo' AND source_addr = :n "
                                      "AND text = :t"), {"n": number.lstrip("+"), "t": body}).scalar_one())
    before = stored()
    sim.send_mo("alpha", number.lstrip("+"), "4242", body)
    assert sim.wait_for(lambda: stored() > before, 10)
    process_all()
    followups.send_followups()


def test_an_admin_publishes_a_keyword_and_reads_and_exports_who_registered(server, chromium, committed_db, request):
    base, seeds = server
    dora_seed = _admin(committed_db)
    problems: list[str] = []
    dora_ctx, ana_ctx = chromium.new_context(accept_downloads=True), chromium.new_context()
    dora, ana = dora_ctx.new_page(), ana_ctx.new_page()
    _csp_watch(dora, problems)
    _csp_watch(ana, problems)
    try:
        _sign_in(dora, base, "dora", dora_seed, enrol=False)
        dora.click("text=Administración")
        dora.click("nav.tabs >> text=Autoinscripción")
        expect(dora.locator("#policy-state")).to_contain_text("Apagado")

        # A keyword that is a reply word is refused by field, in her language; what she typed stays.
        dora.fill("#keyword", "si")
        dora.click("#publish")
        expect(dora.locator("#error-keyword")).to_contain_text("una palabra de respuesta")
        dora.fill("#keyword", "Norte")
        dora.select_option("#target", "zone:Zona Norte")
        dora.fill("#description", "Vecinos de la zona norte")
        dora.click("#publish")
        expect(dora.locator("p.flash")).to_contain_text("NORTE publicada: los vecinos pueden enviar ALTA NORTE.")
        expect(dora.locator("#keywords")).to_contain_text("zona Zona Norte")

        dora.check("#enabled")
        dora.fill("#confirm_minutes", "60")
        dora.click("#save-policy")
        expect(dora.locator("#policy-state")).to_contain_text("Encendido")

        with inbound_rig() as (sim, _gateway):
            _texts(sim, "+56977710001", "ALTA NORTE")
            question = sim.messages(dest="56977710001")[-1]["text"]
            assert "de NORTE en este numero responda SI antes de 1 h" in question
            _texts(sim, "+56977710001", "Si")
            assert sim.messages(dest="56977710001")[-1]["text"].startswith("Sirena: registro confirmado para NORTE")
            _texts(sim, "+56977710002", "ALTA SUR")  # nobody published SUR
            assert "Envie ALTA y uno de: NORTE" in sim.messages(dest="56977710002")[-1]["text"]
            _texts(sim, "+56977710003", "JOIN")  # English, not yet confirmed

        dora.reload()
        expect(dora.locator("#keywords tbody tr").first.locator("td").nth(3)).to_have_text("1")  # registered
        dora.click("#to-registrations")
        expect(dora.locator("#registrations tbody tr")).to_have_count(3)
        dora.click("#filter-active")
        expect(dora.locator("#registrations tbody tr")).to_have_count(1)
        expect(dora.locator("#registrations")).to_contain_text("+56977710001")
        expect(dora.locator("#registrations")).to_contain_text("inscrita")
        dora.click("#filter-refused")
        expect(dora.locator("#registrations")).to_contain_text("la palabra clave «SUR» no está publicada")
        dora.click("nav#state-filter >> text=Todas")
        dora.fill("#q", "710003")
        dora.click("#search")
        expect(dora.locator("#registrations tbody tr")).to_have_count(1)
        expect(dora.locator("#registrations")).to_contain_text("esperando confirmación")
        dora.fill("#q", "")  # every number again: the export takes the filter shown
        dora.click("#search")
        expect(dora.locator("#registrations tbody tr")).to_have_count(3)
        with dora.expect_download() as download:
            dora.click("#export-csv")
        raw = Path(download.value.path()).read_text(encoding="utf-8")
        rows = list(csv_cells.dict_reader(io.StringIO(raw)))
        assert sorted((r["msisdn"], r["state"]) for r in rows) == [
            ("+56977710001", "active"), ("+56977710002", "refused"), ("+56977710003", "pending")]
        assert "'+56977710001" in raw  # a spreadsheet shows the number as text

        # A composer's preview of the zone counts the resident who registered by SMS.
        _sign_in(ana, base, "ana", seeds["ana"], enrol=True)
        ana.goto(base + "/alerts/new")
        ana.check("input[name=mode][value=live]")
        ana.check("input[name=zones][value='Zona Norte']")
        ana.fill("#text_es", "Corte de agua en Zona Norte.")
        ana.click("#preview-button")
        expect(ana.locator("#preview-out")).to_contain_text("6 destinatarios")  # 5 located + 1 registered

        with transaction() as s:
            actions = s.execute(text("SELECT action FROM audit.events WHERE action LIKE 'registration.%' "
                                     "ORDER BY id")).scalars().all()
        assert actions == ["registration.keyword_published", "registration.policy_changed",
                           "registration.requested", "registration.confirmed", "registration.refused",
                           "registration.requested", "registration.exported"]
        assert problems == [], problems
    except Exception:
        out = ROOT / "test-results"
        out.mkdir(exist_ok=True)
        for name, page in (("dora", dora), ("ana", ana)):
            page.screenshot(path=str(out / f"{request.node.name}-{name}.png"), full_page=True)
        raise
    finally:
        dora_ctx.close()
        ana_ctx.close()
