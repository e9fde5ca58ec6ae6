"""A contact's numbers in the console: listed, found by any of them, edited with each bad one named (in
Spanish too); the alert page lists the contacts tried on another number."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.base.models import AlertState
from tests.web.conftest import csrf_of, sign_in


@pytest.fixture
def admin(app, db, people):  # type: ignore[no-untyped-def]
    client = app.test_client()
    person = people("jefa", "admin")
    person.operator.language = "en"
    db.flush()
    sign_in(client, person, db)
    return client


def _numbers(db, contact_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return list(db.scalars(text("SELECT msisdn FROM contact_numbers WHERE contact_id = :c ORDER BY position"),
                           {"c": contact_id}))


def test_an_admin_sets_a_contacts_second_and_third_numbers_and_a_bad_one_is_named(admin, db, factories):
    ana = factories.ContactFactory(msisdn="+56961237001", name="Ana")
    factories.ContactFactory(msisdn="+56961237009", name="Beto")
    page = f"/directory/contacts/{ana.id}"
    r = admin.post(f"{page}/numbers", data={"csrf_token": csrf_of(admin, page), "number2": "9 6123 7002",
                                            "number3": "+56961237009"})
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and "already a number of another contact" in body
    assert 'value="+56961237009"' in body and _numbers(db, ana.id) == []  # what was typed stays, nothing saved
    r = admin.post(f"{page}/numbers", data={"csrf_token": csrf_of(admin, page), "number2": "9 6123 7002",
                                            "number3": "961237003"})
    assert r.status_code == 303
    assert _numbers(db, ana.id) == ["+56961237002", "+56961237003"]
    shown = admin.get(page).get_data(as_text=True)
    assert "Numbers saved." in shown and shown.index("+56961237001") < shown.index("+56961237002")
    listed = admin.get("/directory/contacts?q=7003").get_data(as_text=True)  # found by its third number
    assert "Ana" in listed and "+56961237002, +56961237003" in listed and "Beto" not in listed
    (event,) = db.execute(text("SELECT payload FROM audit.events WHERE action = 'contact.numbers_changed'")).scalars()
    assert event == {"before": [], "after": ["…7002", "…7003"]}


def test_the_contact_page_and_its_errors_read_in_spanish(app, db, people, factories):
    client = app.test_client()
    sign_in(client, people("jefe", "admin"), db)  # Spanish: the default
    ana = factories.ContactFactory(msisdn="+56961237101", name="Ana")
    page = f"/directory/contacts/{ana.id}"
    body = client.get(page).get_data(as_text=True)
    assert "Números de teléfono" in body and "Segundo número" in body
    r = client.post(f"{page}/numbers", data={"csrf_token": csrf_of(client, page), "number2": "hola",
                                             "number3": "+56961237101"})
    body = r.get_data(as_text=True)
    assert "no es un número de teléfono" in body and "el mismo número dos veces" in body


def test_the_alert_page_lists_the_contacts_tried_on_another_number(admin, db, factories):
    alert = factories.AlertFactory(state=AlertState.COMPLETED)
    ana = factories.ContactFactory(msisdn="+56961237201", name="Ana Pérez")
    first = db.execute(text("INSERT INTO deliveries (alert_id, contact_id, msisdn, language, state, attempts, "
                            "possible_duplicates, parts_delivered, error_code, carrier) VALUES (:a, :c, :m, 'es', "
                            "'next_number', 1, 0, 0, '001', 'alpha') RETURNING id"),
                       {"a": alert.id, "c": ana.id, "m": ana.msisdn}).scalar_one()
    db.execute(text("INSERT INTO deliveries (alert_id, contact_id, msisdn, language, state, attempts, "
                    "possible_duplicates, parts_delivered, number_position, previous_delivery_id, carrier) "
                    "VALUES (:a, :c, '+56961237202', 'es', 'delivered', 1, 0, 1, 2, :p, 'beta')"),
               {"a": alert.id, "c": ana.id, "p": first})
    body = admin.get(f"/alerts/{alert.id}").get_data(as_text=True)
    section = body[body.index('id="next-numbers"'):]
    assert "Tried on another number (1)" in section and "Ana Pérez" in section
    assert "…7201 (001)" in section and "…7202" in section and "delivered" in section
