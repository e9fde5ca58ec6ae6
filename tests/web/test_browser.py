"""The console in a real Chromium (Debian's), against the real app, Postgres and Redis.

Playwright's own browser download is unreachable here, so Debian's chromium is launched by path.
A screenshot of the approval page goes to test-results/console.png (and to docs/console.png, the
README's picture, with SIRENA_UPDATE_SCREENSHOT=1); failures leave screenshots in test-results/.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from geoalchemy2.elements import WKTElement
from playwright.sync_api import expect
from sqlalchemy import select, text
from werkzeug.serving import make_server

from alerting.base.db import bind_sessions, engine, transaction, utcnow
from alerting.base.models import Alert, AlertState, Contact, ContactLocation, Group, GroupMember, Sender, SenderKind
from alerting.directory.accounts import create_operator, decrypt_totp
from alerting.interfaces.web.app import create_app
from audit.actor import Actor
from geo.zones import import_geojson

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


def _seed(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    key, system = settings.secret_key(), Actor.system("browser-test")
    with transaction() as db:
        if db.scalar(select(Sender.id).where(Sender.name == "SIRENA-SC")) is None:  # the gateway syncs it
            db.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True))
        zone = {"type": "Feature", "properties": {"name": "Zona Norte"},
                "geometry": {"type": "Polygon", "coordinates": [[[-70.70, -33.45], [-70.60, -33.45], [-70.60, -33.35],
                                                                 [-70.70, -33.35], [-70.70, -33.45]]]}}
        import_geojson(db, zone, actor=system)
        drill = Group(name="simulacro", drill_allowed=True)
        db.add(drill)
        db.flush()
        for i in range(5):
            contact = Contact(msisdn=f"+5691000000{i}", name=f"Vecino {i}", language="es", attributes={})
            db.add(contact)
            db.flush()
            db.add(ContactLocation(contact_id=contact.id, label="home",
                                   geom=WKTElement(f"POINT(-70.6{5 + i % 3} -33.4{i})", srid=4326)))
            if i == 0:
                db.add(GroupMember(group_id=drill.id, contact_id=contact.id))
        seeds = {}
        for name, roles in (("ana", ["composer", "approver"]), ("beto", ["approver"]), ("carmen", ["auditor"])):
            new = create_operator(db, name, roles, key, system, password=PASSWORD)
            if name != "ana":
                new.operator.totp_enrolled_at = utcnow()
            seeds[name] = decrypt_totp(new.operator.totp_secret_enc, key)  # type: ignore[arg-type]
    return seeds


@contextlib.contextmanager
def serving(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app on a free port in a thread (its base URL); every request in flight ends before it stops."""
    in_flight = [0]
    lock = threading.Lock()

    def counted(environ, start_response):  # type: ignore[no-untyped-def]
        with lock:
            in_flight[0] += 1
        try:
            return list(app(environ, start_response))
        finally:
            with lock:
                in_flight[0] -= 1

    httpd = make_server("127.0.0.1", 0, counted, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(5)
        deadline = time.monotonic() + 10
        while in_flight[0] and time.monotonic() < deadline:
            time.sleep(0.05)


def committed_app(settings, monkeypatch):  # type: ignore[no-untyped-def]
    """The console on a committed database, with short long polls."""
    # tests/conftest.py's `db` teardown leaves join_transaction_mode="conservative_savepoint", which
    # SQLAlchemy 2.1 refuses; reset it to the default for this committed database.
    from alerting.interfaces.web.console import monitor

    bind_sessions(engine(), join_transaction_mode="conditional_savepoint")
    # A long poll still open when the test ends would run on into the next test's database session:
    # keep them short here, and let every request in flight finish before the database goes.
    monkeypatch.setattr(monitor, "LONG_POLL_MAX_S", 2.0)
    return create_app(settings, configure_services=False)


@pytest.fixture
def server(committed_db, redis_db, monkeypatch) -> Iterator[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    app = committed_app(committed_db, monkeypatch)
    seeds = _seed(committed_db)
    with serving(app) as base:
        yield base, seeds


@pytest.fixture
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _sign_in(page, base: str, name: str, seed: str, *, enrol: bool) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/login")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r"/login/code$"))
    if enrol:
        assert page.locator("img.qr").is_visible()
        assert page.locator("#manual-key").inner_text() == seed
    page.fill("#code", pyotp.TOTP(seed).now())
    page.click("#verify")
    page.wait_for_url(base + "/")


def _screenshot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Into test-results/; also docs/ (the README's picture) when SIRENA_UPDATE_SCREENSHOT is set."""
    out = ROOT / "test-results"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / name), full_page=True)
    if os.environ.get("SIRENA_UPDATE_SCREENSHOT"):
        shutil.copyfile(out / name, ROOT / "docs" / name)


def _next_code(seed: str) -> str:
    """The code after the one just used to sign in (the window accepts one step ahead)."""
    return pyotp.TOTP(seed).at(int(time.time()) + 30)


def _csp_watch(page, problems: list[str]) -> None:  # type: ignore[no-untyped-def]
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))


def test_console_end_to_end(server, chromium, request):  # type: ignore[no-untyped-def]
    base, seeds = server
    problems: list[str] = []
    ana_ctx, beto_ctx = chromium.new_context(), chromium.new_context()
    ana, beto = ana_ctx.new_page(), beto_ctx.new_page()
    _csp_watch(ana, problems)
    _csp_watch(beto, problems)
    try:
        _sign_in(ana, base, "ana", seeds["ana"], enrol=True)

        # Compose a live alert on the map.
        ana.goto(base + "/alerts/new")
        ana.check("input[name=mode][value=live]")
        ana.wait_for_selector("path.leaflet-interactive")
        ana.locator("path.leaflet-interactive").first.click()
        assert ana.is_checked("input[name=zones][value='Zona Norte']")
        ana.fill("#text_es", "Evacuar Zona Norte por incendio. Responda ACK {codigo}.")
        expect(ana.locator("#segments-es")).to_contain_text("gsm7")  # the live segment counter
        ana.click("#preview-button")
        expect(ana.locator("#preview-out")).to_contain_text("destinatarios")  # her language, Spanish
        assert "5 destinatarios" in ana.inner_text("#preview-out")
        _screenshot(ana, "compose.png")
        ana.fill("#confirm_live", ana.inner_text("#confirm-phrase"))
        ana.click("#save-submit")
        ana.wait_for_url(re.compile(r"/alerts/\d+$"))
        alert_id = int(ana.url.rsplit("/", 1)[1])
        assert ana.locator("#mode-band.band-live").is_visible()

        # The composer cannot approve her own alert, even holding the approver role.
        ana.goto(f"{base}/alerts/{alert_id}/review")
        ana.fill("#step_up_code", _next_code(seeds["ana"]))
        ana.click("#approve")
        assert "no puede aprobarla" in ana.content()

        # A second operator approves, seeing the count and zone in the button, not "are you sure".
        _sign_in(beto, base, "beto", seeds["beto"], enrol=False)
        beto.goto(f"{base}/alerts/{alert_id}/review")
        button = beto.inner_text("#approve")
        assert "REAL → 5 teléfonos en Zona Norte" in button
        beto.wait_for_selector("path.leaflet-interactive")
        _screenshot(beto, "console.png")
        beto.fill("#step_up_code", _next_code(seeds["beto"]))
        beto.click("#approve")
        beto.wait_for_url(re.compile(rf"/alerts/{alert_id}$"))
        assert beto.locator("#alert-state").get_attribute("data-state") in ("approved", "sending")
        with transaction() as db:
            assert db.get(Alert, alert_id).state in (AlertState.APPROVED, AlertState.SENDING)

        # One approver (ana holds the role too) sends the pre-armed correction in one step,
        # confirming with a fresh code; a different text would need another approval.
        ana.goto(f"{base}/alerts/{alert_id}")
        assert ana.locator("#propose-correction").is_visible()
        ana.fill("#correction_step_up_code", _next_code(seeds["ana"]))
        ana.click("#fire-correction")
        ana.wait_for_url(re.compile(r"/alerts/\d+$"))
        assert "corrección" in ana.inner_text("h1")
        assert "CORRECCIÓN: el mensaje A-" in ana.content()

        # An auditor sees the timeline and cannot change anything.
        carmen_ctx = chromium.new_context()
        carmen = carmen_ctx.new_page()
        _sign_in(carmen, base, "carmen", seeds["carmen"], enrol=False)
        carmen.goto(base + "/audit/timeline")
        expect(carmen.locator("#audit-events")).to_contain_text("alert.correction_fired")
        expect(carmen.locator("#audit-events")).to_contain_text("no puede aprobarla")  # the reason, in her words
        response = carmen.goto(base + "/alerts/new")
        assert response is not None and response.status == 403
        carmen.goto(f"{base}/alerts/{alert_id}")
        assert carmen.locator("#fire-correction").count() == 0 and carmen.locator("#cancel").count() == 0
        carmen_ctx.close()

        # An exercise looks different everywhere and its SMS carries the marker.
        ana.goto(base + "/alerts/new")
        ana.check("input[name=mode][value=exercise]")
        ana.check("input[name=groups][value=simulacro]")
        ana.fill("#text_es", "Simulacro de evacuación a las 10:00.")
        ana.click("#save-draft")
        ana.wait_for_url(re.compile(r"/alerts/\d+$"))
        assert ana.locator("#mode-band.band-exercise").is_visible()
        assert ana.inner_text("pre.phone-text").startswith("SIMULACRO: ")
        _screenshot(ana, "exercise.png")
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


def test_chromium_is_debians() -> None:
    assert shutil.which("chromium") == CHROMIUM


def _compose_live(page, base: str, text: str) -> int:  # type: ignore[no-untyped-def]
    page.goto(base + "/alerts/new")
    page.check("input[name=mode][value=live]")
    page.check("input[name=zones][value='Zona Norte']")
    page.fill("#text_es", text)
    page.click("#preview-button")
    expect(page.locator("#preview-out")).to_contain_text("destinatarios")
    page.fill("#confirm_live", page.inner_text("#confirm-phrase"))
    page.click("#save-submit")
    page.wait_for_url(re.compile(r"/alerts/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def test_live_counts_reach_completed_and_the_correction_goes_out(server, chromium, gateway, simulator, run_jobs):
    base, seeds = server
    ana_ctx, beto_ctx = chromium.new_context(), chromium.new_context()
    ana, beto = ana_ctx.new_page(), beto_ctx.new_page()
    try:
        _sign_in(ana, base, "ana", seeds["ana"], enrol=True)
        alert_id = _compose_live(ana, base, "Evacuar Zona Norte. Responda ACK {codigo}.")
        _sign_in(beto, base, "beto", seeds["beto"], enrol=False)
        beto.goto(f"{base}/alerts/{alert_id}/review")
        beto.fill("#step_up_code", _next_code(seeds["beto"]))
        beto.click("#approve")
        beto.wait_for_url(re.compile(rf"/alerts/{alert_id}$"))
        run_jobs()  # fan-out and send batches through the in-process gateway to the simulator
        expect(beto.locator("#alert-state")).to_have_text("completada", timeout=15_000)  # updated by polling
        expect(beto.locator("#big-sent .n")).to_have_text("5")
        with transaction() as db:  # an ACK after the send completed: the page keeps listening
            delivery_id, msisdn = db.execute(text("SELECT id, msisdn FROM deliveries WHERE alert_id = :a "
                                                  "ORDER BY id LIMIT 1"), {"a": alert_id}).one()
            inbound = db.execute(text("INSERT INTO inbound_messages (kind, source_addr, destination_addr, text) "
                                      "VALUES ('mo', :m, '4242', 'ACK tarde') RETURNING id"),
                                 {"m": msisdn}).scalar_one()
            db.execute(text("INSERT INTO replies (inbound_id, delivery_id, alert_id, msisdn, meaning, text) "
                            "VALUES (:i, :d, :a, :m, 'ack', 'ACK tarde')"),
                       {"i": inbound, "d": delivery_id, "a": alert_id, "m": msisdn})
        expect(beto.locator("#reply-stream")).to_contain_text("ACK tarde", timeout=15_000)
        expect(beto.locator("#replies")).to_contain_text("1")
        ana.goto(f"{base}/alerts/{alert_id}")  # beto's codes are spent; ana is an approver too
        ana.fill("#correction_step_up_code", _next_code(seeds["ana"]))
        ana.click("#fire-correction")
        ana.wait_for_url(re.compile(r"/alerts/\d+$"))
        run_jobs()
        expect(ana.locator("#alert-state")).to_have_text("completada", timeout=15_000)
        expect(ana.locator("#correction-seconds")).to_have_text(re.compile(r"^\d+,\d$"), timeout=15_000)  # 12,3 s
        seconds = float(ana.inner_text("#correction-seconds").replace(",", "."))
        print(f"correction: decision to first SMS submitted {seconds:.1f} s")
        assert seconds < 60  # FIELD.md req. 5 aims at under a minute; the jobs here run on demand
        texts = [t for ts in simulator.messages_by_recipient().values() for t in ts]
        assert len(texts) == 10
        assert sum(t.startswith("CORRECCIÓN: el mensaje A-") for t in texts) == 5
    finally:
        ana_ctx.close()
        beto_ctx.close()
