"""Alerts over the API: compose, submit, approve under the two-person rule, cancel, counts, pages."""

from __future__ import annotations

from sqlalchemy import func, select, text

from alerting.base.models import Alert, AlertState, Delivery, DeliveryState, SenderKind
from tests.api.conftest import live_alert_body


def _draft(client, who, **overrides):  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/alerts", json=live_alert_body(**overrides), headers=who.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_token_composes_a_draft_that_is_never_sent_without_approval(client, composer, sender, db):
    alert = _draft(client, composer)
    assert alert["state"] == "draft" and alert["origin"] == "api" and alert["counts"] == {}
    assert db.get(Alert, alert["id"]).composed_by_id == composer.operator_id


def test_the_composers_token_cannot_approve_its_own_alert(client, approver, sender, db):
    alert = _draft(client, approver)
    submitted = client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=approver.headers)
    assert submitted.status_code == 200
    response = client.post(f"/api/v1/alerts/{alert['id']}/approve",
                           json={"seen_hash": submitted.get_json()["approval_hash"]}, headers=approver.headers)
    assert response.status_code == 403
    problem = response.get_json()
    assert response.mimetype == "application/problem+json"
    assert problem["code"] == "two_person_rule" and "cannot approve" in problem["detail"]
    assert db.get(Alert, alert["id"]).state is AlertState.PENDING_APPROVAL
    refused = db.execute(text("SELECT count(*) FROM audit.events WHERE outcome = 'refused' "
                              "AND action = 'api.api.approve_alert'")).scalar_one()
    assert refused == 1


def test_a_second_operators_token_approves_and_the_fan_out_is_queued(client, composer, approver, sender, db,
                                                                     redis_db):
    alert = _draft(client, composer)
    submitted = client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=composer.headers).get_json()
    response = client.post(f"/api/v1/alerts/{alert['id']}/approve", json={"seen_hash": submitted["approval_hash"]},
                           headers=approver.headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "approved"


def test_approving_without_the_approve_scope_is_refused_and_audited(client, make_token, composer, sender, db):
    reader = make_token(("approver",), scopes=("read",))
    alert = _draft(client, composer)
    client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=composer.headers)
    response = client.post(f"/api/v1/alerts/{alert['id']}/approve", json={}, headers=reader.headers)
    assert response.status_code == 403
    assert response.get_json()["errors"] == [{"field": "scope", "reason": "alerts:approve required"}]
    assert db.get(Alert, alert["id"]).state is AlertState.PENDING_APPROVAL


def test_reject_needs_a_reason_and_names_the_field(client, composer, approver, sender):
    alert = _draft(client, composer)
    client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=composer.headers)
    response = client.post(f"/api/v1/alerts/{alert['id']}/reject", json={}, headers=approver.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "reason"
    ok = client.post(f"/api/v1/alerts/{alert['id']}/reject", json={"reason": "texto ambiguo"},
                     headers=approver.headers)
    assert ok.get_json()["state"] == "rejected" and ok.get_json()["reason"] == "texto ambiguo"


def test_bad_fields_are_named_with_their_reason(client, composer, sender):
    response = client.post("/api/v1/alerts", json={"texts": {"fr": "x"}, "mode": "loud", "sender": "SIRENA-SC"},
                           headers=composer.headers)
    assert response.status_code == 422
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert "mode" in fields and any(f.startswith("texts") for f in fields)


def test_an_unknown_sender_is_refused_naming_the_field_and_each_shared_codes_keyword(client, composer, sender,
                                                                                     factories):
    factories.SenderFactory(name="BOMBEROS", kind=SenderKind.SHARED, address="5555", keyword="BOMBEROS")
    response = client.post("/api/v1/alerts", json=live_alert_body(sender="NOPE"), headers=composer.headers)
    assert response.status_code == 422
    reason = next(e["reason"] for e in response.get_json()["errors"] if e["field"] == "sender")
    assert reason.startswith('unknown or inactive sender "NOPE"; the senders are: ')
    assert "BOMBEROS (shared code 5555: replies must start with BOMBEROS)" in reason
    assert "SIRENA-SC (short code " in reason


def test_an_alert_on_a_shared_code_says_its_reply_keyword(client, composer, sender, factories):
    factories.SenderFactory(name="BOMBEROS", kind=SenderKind.SHARED, address="5555", keyword="BOMBEROS")
    shared = client.post("/api/v1/alerts", json=live_alert_body(sender="BOMBEROS"), headers=composer.headers)
    dedicated = client.post("/api/v1/alerts", json=live_alert_body(), headers=composer.headers)
    assert shared.status_code == dedicated.status_code == 201
    assert shared.get_json()["reply_keyword"] == "BOMBEROS"
    assert dedicated.get_json()["reply_keyword"] is None


def test_malformed_json_is_a_422_naming_the_body(client, composer):
    response = client.post("/api/v1/alerts", data=b"{not json", content_type="application/json",
                           headers=composer.headers)
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "body"


def test_cancel_stops_unsent_deliveries_and_counts_show_it(client, composer, approver, sender, factories, db):
    alert = factories.AlertFactory(state=AlertState.SENDING, composed_by_id=composer.operator_id)
    for i in range(3):
        db.add(Delivery(alert_id=alert.id, msisdn=f"+5691000000{i}"))
    db.flush()
    response = client.post(f"/api/v1/alerts/{alert.id}/cancel", json={"reason": "falsa alarma"},
                           headers=approver.headers)
    assert response.status_code == 200
    body = client.get(f"/api/v1/alerts/{alert.id}", headers=approver.headers).get_json()
    assert body["state"] == "cancelled" and body["counts"] == {"cancelled": 3}


def test_deliveries_are_paged_with_a_cursor_until_exhausted(client, composer, factories, db):
    alert = factories.AlertFactory(state=AlertState.SENDING, composed_by_id=composer.operator_id)
    for i in range(5):
        db.add(Delivery(alert_id=alert.id, msisdn=f"+5692000000{i}", state=DeliveryState.SUBMITTED))
    db.flush()
    seen, cursor = [], None
    while True:
        url = f"/api/v1/alerts/{alert.id}/deliveries?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=composer.headers).get_json()
        seen += [d["msisdn"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen))
    assert db.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert.id)) == 5


def test_an_unknown_alert_is_a_404_problem(client, composer):
    response = client.get("/api/v1/alerts/999999", headers=composer.headers)
    assert response.status_code == 404 and response.get_json()["code"] == "not_found"


def test_a_scheduled_drill_at_night_needs_an_override_reason(client, composer, sender, factories, db):
    factories.GroupFactory(name="brigadas", drill_allowed=True)
    night = {"texts": {"es": "Simulacro"}, "mode": "exercise", "sender": "SIRENA-SC",
             "target": {"groups": ["brigadas"]}, "scheduled_at": "2031-03-04T03:00:00-03:00"}
    refused = client.post("/api/v1/alerts", json=night, headers=composer.headers)
    assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == "scheduled_at"
    ok = client.post("/api/v1/alerts", json={**night, "quiet_override_reason": "turno de noche lo pidió"},
                     headers=composer.headers)
    assert ok.status_code == 201
    from datetime import datetime

    assert datetime.fromisoformat(ok.get_json()["scheduled_at"]) == datetime.fromisoformat("2031-03-04T06:00:00+00:00")
    overridden = db.execute(text("SELECT reason FROM audit.events WHERE action = 'alert.quiet_hours_overridden'"))
    assert overridden.scalar_one() == "turno de noche lo pidió"


def test_scheduled_alerts_are_listed_until_they_start_and_can_be_cancelled(client, composer, approver, sender,
                                                                          factories):
    created = client.post("/api/v1/alerts", json=live_alert_body(scheduled_at="2031-03-04T12:00:00-03:00"),
                          headers=composer.headers).get_json()
    submitted = client.post(f"/api/v1/alerts/{created['id']}/submit", headers=composer.headers).get_json()
    approved = client.post(f"/api/v1/alerts/{created['id']}/approve",
                           json={"seen_hash": submitted["approval_hash"]}, headers=approver.headers).get_json()
    assert approved["state"] == "scheduled"
    listed = client.get("/api/v1/alerts?state=scheduled", headers=composer.headers).get_json()
    assert [a["id"] for a in listed["items"]] == [created["id"]]
    cancelled = client.post(f"/api/v1/alerts/{created['id']}/cancel", json={"reason": "ya no hace falta"},
                            headers=approver.headers)
    assert cancelled.get_json()["state"] == "cancelled"


def test_a_drill_schedule_is_created_and_preapproved_by_another_operator(client, composer, approver, sender,
                                                                         factories):
    factories.GroupFactory(name="brigadas", drill_allowed=True)
    body = {"name": "simulacro mensual", "rule": "0 10 1-7 * mon", "timezone": "America/Santiago",
            "policy": "preapproved_exercise",
            "template": {"texts": {"es": "Simulacro"}, "mode": "exercise", "sender": "SIRENA-SC",
                         "target": {"groups": ["brigadas"]}}}
    created = client.post("/api/v1/schedules", json=body, headers=composer.headers)
    assert created.status_code == 201, created.get_json()
    schedule_id = created.get_json()["id"]
    own = client.post(f"/api/v1/schedules/{schedule_id}/approve", headers=composer.headers)
    assert own.status_code == 403
    ok = client.post(f"/api/v1/schedules/{schedule_id}/approve", headers=approver.headers)
    assert ok.status_code == 200 and ok.get_json()["approved"] is True


def test_an_api_approval_arms_the_correction_and_one_approver_fires_it(client, composer, approver, sender, db,
                                                                       redis_db):
    alert = _draft(client, composer)
    submitted = client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=composer.headers).get_json()
    client.post(f"/api/v1/alerts/{alert['id']}/approve", json={"seen_hash": submitted["approval_hash"]},
                headers=approver.headers)
    fired = client.post(f"/api/v1/alerts/{alert['id']}/correct", json={}, headers=approver.headers)
    assert fired.status_code == 201, fired.get_json()
    correction = fired.get_json()
    assert correction["kind"] == "correction" and correction["priority"] == "flash"
    assert correction["corrects_alert_id"] == alert["id"]
    assert db.get(Alert, alert["id"]).state is AlertState.SUPERSEDED


def test_a_composer_token_cannot_fire_a_correction(client, composer, approver, sender, make_token):
    alert = _draft(client, composer)
    submitted = client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=composer.headers).get_json()
    client.post(f"/api/v1/alerts/{alert['id']}/approve", json={"seen_hash": submitted["approval_hash"]},
                headers=approver.headers)
    response = client.post(f"/api/v1/alerts/{alert['id']}/correct", json={}, headers=composer.headers)
    assert response.status_code == 403


def test_an_unknown_group_or_zone_is_refused_naming_each(client, composer, sender):
    response = client.post("/api/v1/alerts", json=live_alert_body(target={"groups": ["nadie"], "zones": ["Atlantida"]}),
                           headers=composer.headers)
    assert response.status_code == 404
    errors = {e["field"]: e["reason"] for e in response.get_json()["errors"]}
    assert 'unknown group "nadie"' in errors["groups"] and 'unknown zone "Atlantida"' in errors["zones"]


def test_a_malformed_criterion_is_refused_naming_its_path(client, composer, sender, factories):
    body = live_alert_body(target={"groups": ["vecinos"], "criteria": {"all": [{"attr": "x", "op": "nope"}]}})
    response = client.post("/api/v1/alerts", json=body, headers=composer.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"].startswith("target.criteria")


def test_submitting_a_live_alert_that_reaches_nobody_is_refused_naming_the_target(client, composer, sender, factories):
    factories.GroupFactory(name="nadie")
    alert = _draft(client, composer, target={"groups": ["nadie"]})
    response = client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=composer.headers)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["errors"][0]["field"] == "target" and "reaches nobody" in problem["errors"][0]["reason"]
    assert client.get(f"/api/v1/alerts/{alert['id']}", headers=composer.headers).get_json()["state"] == "draft"


def _approved(client, composer, approver):  # type: ignore[no-untyped-def]
    alert = _draft(client, composer)
    submitted = client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=composer.headers).get_json()
    assert submitted["submitted_recipients"] == 3
    ok = client.post(f"/api/v1/alerts/{alert['id']}/approve", json={"seen_hash": submitted["approval_hash"]},
                     headers=approver.headers)
    assert ok.status_code == 200, ok.get_json()
    return alert


def test_a_typed_text_cannot_be_fired_by_one_token(client, composer, approver, sender, db, redis_db):
    alert = _approved(client, composer, approver)
    response = client.post(f"/api/v1/alerts/{alert['id']}/correct", json={"text": "Vuelvan a sus casas"},
                           headers=approver.headers)
    assert response.status_code == 403 and "pre-approved" in response.get_json()["detail"]
    assert db.get(Alert, alert["id"]).state is AlertState.APPROVED
    refused = db.execute(text("SELECT count(*) FROM audit.events WHERE action = 'api.api.correct_alert' "
                              "AND outcome = 'refused' AND subject_id = :a"), {"a": str(alert["id"])}).scalar_one()
    assert refused == 1


def test_a_proposed_correction_needs_two_other_approvers(client, composer, approver, make_token, sender, db,
                                                         redis_db):
    alert = _approved(client, composer, approver)
    proposed = client.post(f"/api/v1/alerts/{alert['id']}/corrections",
                           json={"text": "La ruta es por Los Olmos"}, headers=approver.headers)
    assert proposed.status_code == 201, proposed.get_json()
    fix = proposed.get_json()
    assert fix["state"] == "pending_approval" and fix["priority"] == "flash" and fix["kind"] == "correction"
    assert fix["required_approvals"] == 2 and fix["corrects_alert_id"] == alert["id"]
    assert fix["texts"]["es"].endswith(": La ruta es por Los Olmos")
    own = client.post(f"/api/v1/alerts/{fix['id']}/approve", json={"seen_hash": fix["approval_hash"]},
                      headers=approver.headers)
    assert own.status_code == 403
    for other in (make_token(("approver",)), make_token(("approver",))):
        ok = client.post(f"/api/v1/alerts/{fix['id']}/approve", json={"seen_hash": fix["approval_hash"]},
                         headers=other.headers)
        assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["state"] == "approved"
    db.expire_all()
    assert db.get(Alert, alert["id"]).state is AlertState.SUPERSEDED


def test_an_approval_without_the_reviewed_hash_is_a_422_naming_seen_hash(client, composer, approver, sender, db):
    alert = _draft(client, composer)
    submitted = client.post(f"/api/v1/alerts/{alert['id']}/submit", headers=composer.headers).get_json()
    for body in ({}, {"override_reason": "x"}):
        response = client.post(f"/api/v1/alerts/{alert['id']}/approve", json=body, headers=approver.headers)
        assert response.status_code == 422
        assert {"field": "seen_hash", "reason": "Missing data for required field."} in response.get_json()["errors"]
    stale = client.post(f"/api/v1/alerts/{alert['id']}/approve", json={"seen_hash": "f" * 64},
                        headers=approver.headers)
    assert stale.status_code == 403 and "changed since" in stale.get_json()["detail"]
    assert db.get(Alert, alert["id"]).state is AlertState.PENDING_APPROVAL
    ok = client.post(f"/api/v1/alerts/{alert['id']}/approve", json={"seen_hash": submitted["approval_hash"]},
                     headers=approver.headers)
    assert ok.status_code == 200
