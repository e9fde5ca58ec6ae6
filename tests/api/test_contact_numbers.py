"""A contact's several numbers over the API: shown, set on create, replaced on PATCH, refused naming the
field; an alert's deliveries show each number tried."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.base.models import AlertState


@pytest.fixture
def editor(make_token):  # type: ignore[no-untyped-def]
    return make_token(("admin",), scopes=("read", "contacts:write"))


def test_numbers_are_set_shown_replaced_and_refused_by_field(client, db, editor):
    response = client.post("/api/v1/contacts", headers=editor.headers,
                           json={"msisdn": "961236001", "name": "Ana", "more_numbers": ["+56 9 6123 6002"]})
    assert response.status_code == 201, response.get_json()
    ana = response.get_json()
    assert (ana["msisdn"], ana["more_numbers"]) == ("+56961236001", ["+56961236002"])
    response = client.patch(f"/api/v1/contacts/{ana['id']}", headers=editor.headers,
                            json={"more_numbers": ["961236003", "961236002"]})
    assert response.status_code == 200 and response.get_json()["more_numbers"] == ["+56961236003", "+56961236002"]
    listed = client.get("/api/v1/contacts", headers=editor.headers).get_json()["items"]
    assert [c["more_numbers"] for c in listed if c["id"] == ana["id"]] == [["+56961236003", "+56961236002"]]
    response = client.post("/api/v1/contacts", headers=editor.headers,
                           json={"msisdn": "961236010", "more_numbers": ["961236011", "961236003"]})
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "more_numbers[1]", "reason": "already a number of another "
                                                                                    "contact"}]
    response = client.post("/api/v1/contacts", headers=editor.headers, json={"msisdn": "961236002"})
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "msisdn", "reason": "already number 3 of another contact"}]
    assert client.patch(f"/api/v1/contacts/{ana['id']}", headers=editor.headers,
                        json={"more_numbers": ["1", "2", "3"]}).status_code == 422
    response = client.patch(f"/api/v1/contacts/{ana['id']}", headers=editor.headers, json={"more_numbers": []})
    assert response.get_json()["more_numbers"] == []


def test_an_alerts_deliveries_show_each_number_tried(client, db, editor, factories):
    alert = factories.AlertFactory(state=AlertState.COMPLETED)
    contact = factories.ContactFactory(msisdn="+56961236101")
    first = db.execute(text("INSERT INTO deliveries (alert_id, contact_id, msisdn, language, state, attempts, "
                            "possible_duplicates, parts_delivered, error_code) VALUES (:a, :c, :m, 'es', "
                            "'next_number', 1, 0, 0, '001') RETURNING id"),
                       {"a": alert.id, "c": contact.id, "m": contact.msisdn}).scalar_one()
    db.execute(text("INSERT INTO deliveries (alert_id, contact_id, msisdn, language, state, attempts, "
                    "possible_duplicates, parts_delivered, number_position, previous_delivery_id) "
                    "VALUES (:a, :c, '+56961236102', 'es', 'delivered', 1, 0, 1, 2, :p)"),
               {"a": alert.id, "c": contact.id, "p": first})
    items = client.get(f"/api/v1/alerts/{alert.id}/deliveries", headers=editor.headers).get_json()["items"]
    assert [(d["msisdn"], d["number_position"], d["state"], d["previous_delivery_id"]) for d in items] == [
        ("+56961236101", 1, "next_number", None), ("+56961236102", 2, "delivered", first)]
    assert {d["contact_id"] for d in items} == {contact.id}
    body = client.get(f"/api/v1/alerts/{alert.id}", headers=editor.headers).get_json()
    assert body["counts"] == {"delivered": 1}  # one person
    moved = client.get(f"/api/v1/alerts/{alert.id}/deliveries?state=next_number", headers=editor.headers)
    assert [d["id"] for d in moved.get_json()["items"]] == [first]


def test_the_csv_import_takes_phone2_and_phone3_and_names_each_bad_one(client, editor):
    body = "name,phone,phone2,phone3\nAna,961236201,961236202,961236203\nBeto,961236211,hola,\n"
    response = client.post("/api/v1/contacts/import", headers={**editor.headers, "Content-Type": "text/csv"},
                           data=body.encode())
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert (report["inserted"], report["numbers"], report["warnings"]) == (2, 2, 1)
    assert [(r["row"], r["column"], r["outcome"]) for r in report["rejects"]] == [("3", "phone2", "warning")]
    listed = client.get("/api/v1/contacts", headers=editor.headers).get_json()["items"]
    assert {c["msisdn"]: c["more_numbers"] for c in listed}["+56961236201"] == ["+56961236202", "+56961236203"]
