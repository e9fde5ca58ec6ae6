"""CAP over HTTP: import endpoint, CAP export endpoint, Atom feed; refused documents kept for review."""

from __future__ import annotations

from sqlalchemy import select

from alerting.base.models import Alert, AlertState
from alerting.base.models.intake import IntakeMessage
from alerting.interfaces.intake import cap
from tests.intake.conftest import cap_file, resident_in_the_circle

XML = {"Content-Type": "application/cap+xml"}


def test_posting_cap_makes_an_alert_pending_approval_and_logs_it(client, composer, sender, db):
    resident_in_the_circle(db)
    response = client.post("/api/v1/cap", data=cap_file("australia-circle.xml"), headers={**composer.headers, **XML})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["action"] == "drafted" and body["state"] == "pending_approval"
    assert db.get(Alert, body["alert_id"]).state is AlertState.PENDING_APPROVAL
    logged = db.scalar(select(IntakeMessage).where(IntakeMessage.alert_id == body["alert_id"]))
    assert logged.channel == "cap-http" and logged.outcome == "draft_created"


def test_a_hostile_document_is_refused_with_422_and_kept_for_review(client, composer, sender, db):
    hostile = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&x;</alert>')
    response = client.post("/api/v1/cap", data=hostile, headers={**composer.headers, **XML})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "cap"
    kept = db.scalar(select(IntakeMessage).where(IntakeMessage.outcome == "refused"))
    assert kept.raw == hostile and "DTD" in kept.reason


def test_an_unknown_reference_is_refused_naming_it_and_nothing_is_recorded_as_seen(client, composer, sender, db):
    response = client.post("/api/v1/cap", data=cap_file("ipaws-cancel.xml"), headers={**composer.headers, **XML})
    assert response.status_code == 422
    assert "1017033100951096-517189320160225203219800" in response.get_json()["detail"]
    from alerting.base.models.intake import CapMessage

    assert db.scalar(select(CapMessage).where(CapMessage.sender == "AtHoc")) is None


def test_an_alert_exports_as_valid_cap_and_approved_ones_are_in_the_feed(client, composer, factories, db):
    alert = factories.AlertFactory(state=AlertState.SENDING, title="Corte de agua")
    response = client.get(f"/api/v1/alerts/{alert.id}/cap", headers=composer.headers)
    assert response.status_code == 200 and response.mimetype == "application/cap+xml"
    doc, _ = cap.load(response.data)
    assert doc.identifier == alert.reference
    draft = factories.AlertFactory(state=AlertState.DRAFT, title="borrador secreto")
    feed = client.get("/api/v1/cap/feed", headers=composer.headers)
    assert feed.mimetype == "application/atom+xml"
    assert alert.reference.encode() in feed.data and draft.reference.encode() not in feed.data
    assert f"/api/v1/alerts/{alert.id}/cap".encode() in feed.data
