"""Incidents in the console: opening one, putting an alert in from its page, the report page (what
each role sees of it) and its CSV and JSON files (audited as exports)."""

from __future__ import annotations

import csv
import io
import json
import re

from sqlalchemy import text

from tests.alerting import report_world
from tests.web.conftest import page_token, sign_in


def _figure(html: str, alert: str, breakdown: str, key: str, figure: str) -> str:
    row = re.search(rf'<tr class="[^"]*" data-alert="{re.escape(alert)}" data-breakdown="{breakdown}" '
                    rf'data-key="{re.escape(key)}">(.*?)</tr>', html, re.DOTALL)
    assert row, (alert, breakdown, key)
    cell = re.search(rf'data-figure="{figure}" data-value="([^"]*)">([^<]*(?:<span class="never">[^<]*</span>)?)',
                     row.group(1))
    assert cell, figure
    return cell.group(1) + "|" + re.sub(r"<[^>]+>", "", cell.group(2))


def test_the_report_page_shows_the_figures_and_only_permitted_people_see_who_never_answered(
        app, db, factories, people):
    world = report_world.build(db, factories)
    a, incident = world["a"], world["incident"]
    auditor, composer = people("revisa", "auditor"), people("redacta2", "composer")

    client = app.test_client()
    sign_in(client, auditor, db)
    page = client.get(f"/incidents/{incident.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert _figure(html, a.reference, "all", "", "t50_s") == "5.0|5,0 s"  # Spanish: a decimal comma
    assert _figure(html, a.reference, "all", "", "t90_s") == "|no alcanzado"
    assert _figure(html, a.reference, "carrier", "beta", "t50_s") == "8.0|8,0 s"
    assert _figure(html, a.reference, "zone", "Costa", "t99_s") == "4.0|4,0 s"
    assert _figure(html, "", "all", "", "recipients") == "12|12"  # the whole incident
    assert f'data-chart="alert:{a.id}:delivered"' in html and "uPlot.iife.min.js" in html
    assert "llamé, va la brigada" in html  # the HELP and its handling note
    assert f'id="non-responders-{a.id}"' not in html  # an auditor may not see who they are
    assert "Quiénes son se muestra solo" in html

    other = app.test_client()
    sign_in(other, composer, db)
    html = other.get(f"/incidents/{incident.id}").get_data(as_text=True)
    listed = re.search(rf'id="non-responders-{a.id}">.*?<tbody>(.*?)</tbody>', html, re.DOTALL).group(1)
    assert listed.count("<tr>") == 2 and "…" in listed
    numbers = {r[0] for r in db.execute(text("SELECT msisdn FROM deliveries WHERE alert_id = :a"), {"a": a.id})}
    assert not any(n in html for n in numbers)  # masked everywhere

    csv_file = client.get(f"/incidents/{incident.id}/report?format=csv")
    assert csv_file.status_code == 200 and "attachment" in csv_file.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(csv_file.get_data(as_text=True))))
    mine = next(r for r in rows if r["alert"] == a.reference and r["breakdown"] == "all")
    assert (mine["recipients"], mine["t50_s"], mine["t90_s"], mine["ack_t50_s"]) == ("10", "5.0", "", "50.0")
    doc = json.loads(client.get(f"/incidents/{incident.id}/report?format=json").get_data(as_text=True))
    assert doc["format"] == "sirena-incident-report-v1" and doc["non_responders"][str(a.id)]["rows"] == []
    assert doc["verification"]["command"].startswith("sirena audit verify --export ")
    exported = db.execute(text("SELECT actor_name, payload->>'format' FROM audit.events "
                               "WHERE action = 'incident.report_exported' ORDER BY id")).all()
    assert [tuple(e) for e in exported] == [("revisa", "csv"), ("revisa", "json")]


def test_opening_an_incident_and_adding_an_alert_from_its_page(app, db, factories, people):
    composer = people("compone", "composer")
    alert = factories.AlertFactory(composed_by_id=composer.operator.id)
    client = app.test_client()
    sign_in(client, composer, db)
    token = page_token(client, "/incidents")
    r = client.post("/incidents", data={"csrf_token": token, "title": ""})
    assert r.status_code == 422 and "obligatorio" in r.get_data(as_text=True)
    r = client.post("/incidents", data={"csrf_token": token, "title": "Marejada", "description": "oleaje"})
    assert r.status_code == 303
    incident_id = int(r.headers["Location"].rsplit("/", 1)[1])
    page = client.get(f"/alerts/{alert.id}").get_data(as_text=True)
    assert 'id="add-to-incident"' in page
    r = client.post(f"/alerts/{alert.id}/incident", data={"csrf_token": token, "incident": str(incident_id)})
    assert r.status_code == 303
    page = client.get(f"/alerts/{alert.id}").get_data(as_text=True)
    assert f'href="/incidents/{incident_id}"' in page
    listing = client.get("/incidents").get_data(as_text=True)
    assert "Marejada" in listing
    report_page = client.get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert alert.reference in report_page and 'data-action="incident.alert_added"' in report_page
