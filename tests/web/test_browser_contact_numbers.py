"""A contact's numbers edited in a real Chromium: a clash is named under its field with what was typed
kept, then saved; the contact is found by its new number."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import expect

from alerting.base.db import transaction, utcnow
from alerting.directory.accounts import create_operator, decrypt_totp
from audit.actor import Actor
from tests.web.test_browser import CHROMIUM, PASSWORD, chromium, server  # noqa: F401

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


def _admin(settings) -> str:  # type: ignore[no-untyped-def]
    with transaction() as db:
        new = create_operator(db, "dora", ["admin"], settings.secret_key(), Actor.system("browser-test"),
                              password=PASSWORD)
        new.operator.totp_enrolled_at = utcnow()
        return decrypt_totp(new.operator.totp_secret_enc, settings.secret_key())  # type: ignore[arg-type]


def test_an_admin_gives_a_contact_two_more_numbers_in_chromium(server, chromium, committed_db):  # noqa: F811
    base, _ = server
    seed = _admin(committed_db)
    context = chromium.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(base + "/login")
        page.fill("#username", "dora")
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        page.fill("#code", pyotp.TOTP(seed).now())
        page.click("#verify")
        page.wait_for_url(base + "/")
        page.goto(base + "/directory/contacts")
        page.click("text=+56910000002")
        expect(page.locator("h2", has_text="Números de teléfono")).to_be_visible()
        page.fill("input[name=number2]", "9 8765 4302")
        page.fill("input[name=number3]", "+56910000001")  # another contact's phone
        page.click("#numbers-form button")
        expect(page.locator("#numbers-form .field-error")).to_have_text("ya es un número de otro contacto")
        expect(page.locator("input[name=number3]")).to_have_value("+56910000001")
        page.fill("input[name=number3]", "9 8765 4303")
        page.click("#numbers-form button")
        expect(page.locator("#numbers li")).to_have_text(["+56910000002", "+56987654302", "+56987654303"])
        page.goto(base + "/directory/contacts?q=4303")
        expect(page.locator("#contacts tbody tr")).to_have_count(1)
        expect(page.locator("#contacts tbody tr")).to_contain_text("+56987654302, +56987654303")
    finally:
        context.close()
    assert problems == []
