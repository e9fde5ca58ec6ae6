"""The template library and area bounds over the API, against the real app, Postgres and Redis."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.directory import areas
from audit.actor import Actor
from geo.zones import import_geojson
from tests.api.conftest import live_alert_body

TEMPLATE = {"name": "cierre-ruta", "titles": {"es": "Cierre de ruta", "en": "Road closure"},
            "texts": {"es": "Ruta {ruta} cortada. Responda ACK {codigo}.",
                      "en": "Road {ruta} closed. Reply ACK {codigo}."},
            "placeholders": [{"name": "ruta", "default": None}], "priority_hint": "flash", "mode_hint": "live"}


def _refusals(db, action: str) -> list[str]:
    return list(db.execute(text("SELECT reason FROM audit.events WHERE outcome = 'refused' AND action = :a "
                                "ORDER BY id"), {"a": action}).scalars())


@pytest.fixture
def approved(client, composer, make_token):  # type: ignore[no-untyped-def]
    """The template, written by `composer`, approved by two approvers; returns them."""
    r = client.post("/api/v1/templates", json=TEMPLATE, headers=composer.headers)
    assert r.status_code == 201, r.get_json()
    seen = client.post("/api/v1/templates/cierre-ruta/submit", headers=composer.headers).get_json()["approval_hash"]
    first, second = make_token(("approver",)), make_token(("approver",))
    for who in (first, second):
        r = client.post("/api/v1/templates/cierre-ruta/approve", json={"seen_hash": seen}, headers=who.headers)
        assert r.status_code == 200, r.get_json()
    assert r.get_json()["state"] == "approved"
    return first, second


def test_a_template_is_written_and_approved_by_two_others_over_the_api(client, db, composer, make_token):
    r = client.post("/api/v1/templates", json=TEMPLATE, headers=composer.headers)
    assert r.status_code == 201 and r.get_json()["state"] == "draft" and r.get_json()["authors"] == [composer.username]
    both = make_token(("composer", "approver"))
    r = client.put("/api/v1/templates/cierre-ruta", json={**TEMPLATE, "titles": {"es": "Ruta cortada"}},
                   headers=both.headers)
    assert r.status_code == 200 and r.get_json()["version"] == 2
    seen = client.post("/api/v1/templates/cierre-ruta/submit", headers=composer.headers).get_json()["approval_hash"]
    r = client.post("/api/v1/templates/cierre-ruta/approve", json={"seen_hash": seen}, headers=both.headers)
    assert r.status_code == 403 and r.get_json()["code"] == "two_person_rule"  # the editor is an author
    r = client.post("/api/v1/templates/cierre-ruta/approve", json={"seen_hash": seen}, headers=composer.headers)
    assert r.status_code == 403  # a composer's token lacks alerts:approve
    first = make_token(("approver",))
    assert client.post("/api/v1/templates/cierre-ruta/approve", json={"seen_hash": "a" * 64},
                       headers=first.headers).status_code == 403
    r = client.post("/api/v1/templates/cierre-ruta/approve", json={"seen_hash": seen}, headers=first.headers)
    assert r.status_code == 200 and r.get_json()["state"] == "pending_approval" and r.get_json()["approvals"] == [
        first.username]
    r = client.post("/api/v1/templates/cierre-ruta/approve", json={"seen_hash": seen}, headers=first.headers)
    assert r.status_code == 403 and "already approved" in r.get_json()["detail"]
    second = make_token(("approver",))
    r = client.post("/api/v1/templates/cierre-ruta/approve", json={"seen_hash": seen}, headers=second.headers)
    assert r.get_json()["state"] == "approved"
    listed = client.get("/api/v1/templates?state=approved", headers=composer.headers).get_json()["items"]
    assert [t["name"] for t in listed] == ["cierre-ruta"]
    history = client.get("/api/v1/templates/cierre-ruta/history", headers=composer.headers).get_json()["items"]
    assert [(h["version"], sorted(h["approvers"])) for h in history] == [
        (2, sorted([first.username, second.username])), (1, [])]
    assert client.get("/api/v1/templates/nada", headers=composer.headers).status_code == 404
    refused = _refusals(db, "api.api.approve_template")
    assert len(refused) == 4 and "an author cannot approve it" in refused[0]


def test_an_alert_from_an_approved_template_needs_one_approver_unless_changed(client, db, sender, composer,
                                                                              approved, make_token):
    body = live_alert_body(template="cierre-ruta", template_values={"ruta": "68"})
    del body["texts"], body["priority"]
    r = client.post("/api/v1/alerts", json=body, headers=composer.headers)
    assert r.status_code == 201, r.get_json()
    alert = r.get_json()
    assert alert["texts"]["es"] == "Ruta 68 cortada. Responda ACK {codigo}." and alert["priority"] == "flash"
    assert alert["title"] == "Cierre de ruta" and alert["template"]["values"] == {"ruta": "68"}
    alert = client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=composer.headers).get_json()
    assert alert["required_approvals"] == 1
    approver = make_token(("approver",))
    r = client.post(f"/api/v1/alerts/{alert['id']}/approve", json={"seen_hash": alert["approval_hash"]},
                    headers=approver.headers)
    assert r.status_code == 200 and r.get_json()["state"] in ("approved", "sending")

    changed = live_alert_body(template="cierre-ruta", template_values={"ruta": "68"}, priority="flash",
                              texts={"es": "Ruta 68 cortada. EVACÚE.", "en": "Road 68 closed."})
    made = client.post("/api/v1/alerts", json=changed, headers=composer.headers).get_json()
    made = client.post(f"/api/v1/alerts/{made['id']}/submit", headers=composer.headers).get_json()
    assert made["required_approvals"] == 2
    r = client.post(f"/api/v1/alerts/{made['id']}/approve", json={"seen_hash": made["approval_hash"]},
                    headers=approver.headers)
    assert r.get_json()["state"] == "pending_approval"  # a second approver is needed

    r = client.post("/api/v1/alerts", json={**body, "template_values": {}}, headers=composer.headers)
    assert r.status_code == 422 and {"field": "template_values.ruta",
                                     "reason": "required: this placeholder has no default"} in r.get_json()["errors"]
    r = client.post("/api/v1/alerts", json={k: v for k, v in body.items() if k != "template"},
                    headers=composer.headers)
    assert r.status_code == 422 and r.get_json()["errors"] == [{"field": "texts", "reason": "required, or a template"}]


@pytest.fixture
def bounded(db, factories, sender, make_token):  # type: ignore[no-untyped-def]
    """A composer and an approver bounded to Comuna A and the group vecinos; a group outside it."""
    square = [[[-70.70, -33.45], [-70.60, -33.45], [-70.60, -33.35], [-70.70, -33.35], [-70.70, -33.45]]]
    east = [[[-70.60, -33.45], [-70.50, -33.45], [-70.50, -33.35], [-70.60, -33.35], [-70.60, -33.45]]]
    for name, shape in (("Comuna A", square), ("Comuna B", east)):
        import_geojson(db, {"type": "Feature", "properties": {"name": name},
                            "geometry": {"type": "Polygon", "coordinates": shape}}, actor=Actor.system("t"))
    other = factories.GroupFactory(name="otros")
    factories.add_member(db, other, factories.ContactFactory())
    composer, approver = make_token(("composer",)), make_token(("approver",))
    for who in (composer, approver):
        areas.set_area(db, who.operator_id, ["Comuna A"], ["vecinos"], Actor.system("test"))
    return composer, approver


def test_a_bounded_operator_is_refused_outside_their_area_over_the_api(client, db, bounded, make_token):
    composer, approver = bounded
    r = client.post("/api/v1/alerts", json=live_alert_body(target={"groups": ["vecinos", "otros"],
                                                                   "zones": ["Comuna B"]}),
                    headers=composer.headers)
    assert r.status_code == 403
    assert r.get_json()["detail"] == "outside your area: zones Comuna B; groups otros"
    assert {e["field"] for e in r.get_json()["errors"]} == {"target.zones", "target.groups"}
    r = client.post("/api/v1/targets/preview", json={"target": {"groups": ["otros"]}}, headers=composer.headers)
    assert r.status_code == 403 and "groups otros" in r.get_json()["detail"]
    assert client.post("/api/v1/targets/preview", json={"target": {"groups": ["vecinos"]}},
                       headers=composer.headers).get_json()["total"] == 3
    inside = client.post("/api/v1/alerts", json=live_alert_body(), headers=composer.headers)
    assert inside.status_code == 201

    outsider = make_token(("composer",))  # unbounded: composes for otros, the bounded approver cannot approve it
    made = client.post("/api/v1/alerts", json=live_alert_body(target={"groups": ["otros"]}),
                       headers=outsider.headers).get_json()
    made = client.post(f"/api/v1/alerts/{made['id']}/submit", headers=outsider.headers).get_json()
    r = client.post(f"/api/v1/alerts/{made['id']}/approve", json={"seen_hash": made["approval_hash"]},
                    headers=approver.headers)
    assert r.status_code == 403 and "groups otros" in r.get_json()["detail"]
    assert client.get(f"/api/v1/alerts/{made['id']}", headers=approver.headers).get_json()["state"] == \
        "pending_approval"
    for action in ("api.api.create_alert", "api.api.preview_targets", "api.api.approve_alert"):
        assert _refusals(db, action) and "area" in _refusals(db, action)[0], action
