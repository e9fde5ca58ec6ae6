"""Incidents group an event's alerts: opened, joined at compose or later, a correction follows its
original, closed; every change audited, every refusal named."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.alerts import corrections, drafts, incidents, lifecycle, prearmed
from alerting.base.errors import InvalidInput, InvalidTransition, Refused
from alerting.base.models import AlertKind, AlertMode, AlertState
from tests.factories import actor_for


@pytest.fixture
def team(db, factories):  # type: ignore[no-untyped-def]
    factories.SenderFactory(name="SIRENA-SC")
    factories.audience_group(db, "x")
    return {role: actor_for(factories.OperatorFactory(roles=[role]))
            for role in ("composer", "approver", "auditor", "admin")}


def _compose(db, who, **extra):  # type: ignore[no-untyped-def]
    draft = drafts.AlertDraft(texts={"es": "Evacuar la costa"}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                              target={"groups": ["x"]}, **extra)
    return lifecycle.compose(db, draft, who)


def _events(db, action: str) -> list[dict]:
    return [dict(r) for r in db.execute(text(
        "SELECT actor_name, subject_type, subject_id, payload FROM audit.events WHERE action = :a ORDER BY id"),
        {"a": action}).mappings()]


def test_an_alert_joins_an_incident_when_composed_and_its_correction_follows(db, team, factories):
    incident = incidents.open_incident(db, "  Tsunami   Costa Norte ", team["composer"], description="sismo 7.8")
    assert incident.reference.startswith("I-") and incident.title == "Tsunami Costa Norte"
    alert = _compose(db, team["composer"], incident_id=incident.id)
    assert alert.incident_id == incident.id
    composed = _events(db, "alert.composed")[-1]
    assert composed["payload"]["incident_id"] == incident.id
    assert _events(db, "incident.opened")[-1]["subject_id"] == str(incident.id)

    alert.state, alert.approved_at = AlertState.SENDING, alert.created_at
    prearmed.arm_on_approval(db, alert, team["approver"])
    fixed = corrections.fire_correction(db, alert.id, team["approver"])
    assert fixed.kind is AlertKind.CORRECTION and fixed.incident_id == incident.id
    assert [a.id for a in incidents.incident_alerts(db, incident.id)] == [alert.id, fixed.id]


def test_adding_an_alert_later_moves_its_whole_family_and_is_audited(db, team):
    first = incidents.open_incident(db, "Incendio", team["composer"])
    second = incidents.open_incident(db, "Incendio forestal", team["approver"])
    original = _compose(db, team["composer"], incident_id=first.id)
    original.state, original.approved_at = AlertState.SENDING, original.created_at
    prearmed.arm_on_approval(db, original, team["approver"])
    fixed = corrections.fire_correction(db, original.id, team["approver"])

    moved = incidents.add_to_incident(db, fixed.id, second.id, team["admin"])  # the correction: both go
    assert moved == [original.id, fixed.id]
    assert {a.id for a in incidents.incident_alerts(db, second.id)} == {original.id, fixed.id}
    assert incidents.incident_alerts(db, first.id) == []
    added = _events(db, "incident.alert_added")[-1]
    assert added["subject_type"] == "incident" and added["subject_id"] == str(second.id)
    assert added["payload"]["alert_id"] == fixed.id  # so it is in the alert's own trail too
    assert added["payload"]["from_incidents"] == {str(original.id): first.id, str(fixed.id): first.id}
    assert incidents.add_to_incident(db, original.id, second.id, team["admin"]) == []  # in it already

    assert incidents.remove_from_incident(db, original.id, team["composer"]) == [original.id, fixed.id]
    assert incidents.incident_alerts(db, second.id) == []
    with pytest.raises(InvalidTransition, match="in no incident"):
        incidents.remove_from_incident(db, original.id, team["composer"])


def test_a_closed_incident_takes_no_new_alert_but_can_be_reopened(db, team):
    incident = incidents.open_incident(db, "Aluvión", team["composer"])
    alert = _compose(db, team["composer"])
    incidents.close_incident(db, incident.id, team["approver"])
    with pytest.raises(InvalidTransition, match="closed"):
        incidents.add_to_incident(db, alert.id, incident.id, team["composer"])
    with pytest.raises(InvalidInput) as refused:
        _compose(db, team["composer"], incident_id=incident.id)
    assert "incident" in refused.value.details["fields"]
    with pytest.raises(InvalidTransition, match="closed already"):
        incidents.close_incident(db, incident.id, team["approver"])
    incidents.close_incident(db, incident.id, team["approver"], reopen=True)
    assert incidents.add_to_incident(db, alert.id, incident.id, team["composer"]) == [alert.id]
    assert [e["actor_name"] for e in _events(db, "incident.closed") + _events(db, "incident.reopened")] == [
        team["approver"].name, team["approver"].name]


def test_who_may_manage_incidents_and_bad_input_named(db, team):
    with pytest.raises(Refused, match="may not open incidents"):
        incidents.open_incident(db, "x", team["auditor"])
    with pytest.raises(InvalidInput) as bad:
        incidents.open_incident(db, "   ", team["composer"])
    assert bad.value.details["fields"] == {"title": "required"}
    with pytest.raises(InvalidInput) as unknown:
        _compose(db, team["composer"], incident_id=999_999)
    assert unknown.value.details["fields"] == {"incident": "no such incident"}
    incident = incidents.open_incident(db, "Sismo", team["composer"])
    assert incidents.incident_id_of(db, incident.reference.lower()) == incident.id
    assert incidents.incident_id_of(db, str(incident.id)) == incident.id
    with pytest.raises(InvalidInput, match="I-2026-000007"):
        incidents.incident_id_of(db, "sismo")
    assert next(r.reference for r in incidents.list_incidents(db)) == incident.reference
