"""The auditors' pages: an export from the console is audited like one from the CLI."""

from __future__ import annotations

import json

from sqlalchemy import text

from tests.web.conftest import sign_in


def test_a_console_export_is_recorded_in_the_trail(client, people, db, factories):
    auditor = people("auditora", "auditor")
    alert = factories.AlertFactory()
    sign_in(client, auditor, db)
    r = client.get(f"/audit/export?format=json&alert={alert.id}")
    assert r.status_code == 200 and json.loads(r.get_data(as_text=True))["format"] == "sirena-audit-export-v1"
    row = db.execute(text("SELECT actor_name, origin_interface, subject_id, payload FROM audit.events "
                          "WHERE action = 'audit.exported'")).one()
    assert row.actor_name == "auditora" and row.origin_interface == "console" and row.subject_id == str(alert.id)
    assert row.payload["format"] == "json" and row.payload["scope"]["alert_ids"] == [alert.id]
    assert row.payload["output"] == "console download"


def test_an_unknown_export_format_exports_and_records_nothing(client, people, db):
    sign_in(client, people("auditor2", "auditor"), db)
    assert client.get("/audit/export?format=xml").status_code == 422
    assert db.execute(text("SELECT count(*) FROM audit.events WHERE action = 'audit.exported'")).scalar_one() == 0
