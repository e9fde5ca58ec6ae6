"""Incidents over the API: open one, compose an alert into it, put another in, and read the
after-action report as JSON, CSV and HTML (each read audited as an export)."""

from __future__ import annotations

import csv
import io

from sqlalchemy import text

from tests.alerting import report_world


def test_open_compose_into_and_add_to_an_incident(client, make_token, sender, factories):
    composer = make_token(("composer",))
    r = client.post("/api/v1/incidents", json={"title": "Incendio forestal", "description": "ladera norte"},
                    headers=composer.headers)
    assert r.status_code == 201, r.get_json()
    incident = r.get_json()
    assert incident["reference"].startswith("I-") and incident["alerts"] == 0
    body = {"texts": {"es": "Evacuar la ladera norte"}, "mode": "live", "sender": "SIRENA-SC",
            "target": {"groups": ["vecinos"]}, "incident_id": incident["id"]}
    r = client.post("/api/v1/alerts", json=body, headers=composer.headers)
    assert r.status_code == 201 and r.get_json()["incident_id"] == incident["id"]
    r = client.post("/api/v1/alerts", json={**body, "incident_id": 999_999}, headers=composer.headers)
    assert r.status_code == 422 and {"field": "incident", "reason": "no such incident"} in r.get_json()["errors"]
    other = factories.AlertFactory()
    r = client.post(f"/api/v1/incidents/{incident['id']}/alerts", json={"alert": str(other.id)},
                    headers=composer.headers)
    assert r.status_code == 200 and r.get_json() == {"incident": incident["reference"], "alert_ids": [other.id]}
    listed = client.get("/api/v1/incidents", headers=composer.headers).get_json()
    assert listed[0]["reference"] == incident["reference"] and listed[0]["alerts"] == 2
    auditor = make_token(("auditor",))
    r = client.post("/api/v1/incidents", json={"title": "x"}, headers=auditor.headers)
    assert r.status_code == 403


def test_the_report_as_json_csv_and_html(client, make_token, db, factories):
    world = report_world.build(db, factories)
    a, incident = world["a"], world["incident"]
    auditor = make_token(("auditor",))
    r = client.get(f"/api/v1/incidents/{incident.id}/report", headers=auditor.headers)
    assert r.status_code == 200, r.get_json()
    doc = r.get_json()
    mine = next(f for f in doc["figures"] if f["alert_id"] == a.id and f["breakdown"] == "all")
    assert (mine["t50_s"], mine["t90_s"], mine["ack_t50_s"]) == (5.0, None, 50.0)
    assert doc["non_responders"][str(a.id)] == {"count": 2, "rows": []}  # an auditor: counts only
    assert doc["verification"]["command"] == f"sirena audit verify --export {incident.reference}-after-action.json"
    composer = make_token(("composer",))
    rows = client.get(f"/api/v1/incidents/{incident.id}/report", headers=composer.headers).get_json()[
        "non_responders"][str(a.id)]["rows"]
    assert len(rows) == 2 and all(row["number"].startswith("…") for row in rows)
    figures = client.get(f"/api/v1/incidents/{incident.id}/report.csv", headers=auditor.headers)
    assert figures.mimetype == "text/csv"
    assert any(row["alert"] == a.reference for row in csv.DictReader(io.StringIO(figures.get_data(as_text=True))))
    page = client.get(f"/api/v1/incidents/{incident.id}/report.html?lang=en", headers=auditor.headers)
    assert page.mimetype == "text/html" and "After-action report" in page.get_data(as_text=True)
    assert client.get("/api/v1/incidents/999999/report", headers=auditor.headers).status_code == 404
    exports = db.execute(text("SELECT payload->>'format' FROM audit.events WHERE action = 'incident.report_exported' "
                              "ORDER BY id")).scalars().all()
    assert exports == ["json", "json", "csv", "html"]
