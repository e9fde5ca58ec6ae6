"""The after-action report's figures, on deliveries and replies whose times are known exactly: the
times to 50/90/99 % delivered per alert, carrier, zone and for the incident, the answer times,
non-responders, HELP handling times and the curves."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import text

from alerting.alerts import help_desk, incidents, report
from alerting.base.db import utcnow
from alerting.base.models import AlertKind, AlertState
from geo.zones import import_geojson
from audit.actor import Actor
from tests.factories import actor_for, stored_reply

SQUARE = [[[-70.70, -33.45], [-70.60, -33.45], [-70.60, -33.35], [-70.70, -33.35], [-70.70, -33.45]]]


def _deliver(db, alert_id: int, contact, *, carrier: str, state: str, at=None) -> int:  # type: ignore[no-untyped-def]
    return db.execute(text("""
        INSERT INTO deliveries (alert_id, contact_id, msisdn, language, state, carrier, attempts, possible_duplicates,
                                parts_delivered, queued_at, updated_at, delivered_at, submitted_at)
        VALUES (:a, :c, :m, 'es', :s, :carrier, 1, 0, 0, now(), now(), :at, now()) RETURNING id"""),
        {"a": alert_id, "c": contact.id, "m": contact.msisdn, "s": state, "carrier": carrier, "at": at}).scalar_one()


def _answer(db, alert_id: int, delivery_id: int, number: str, meaning: str, at) -> int:  # type: ignore[no-untyped-def]
    reply_id = stored_reply(db, number, meaning.upper(), alert_id=alert_id, meaning=meaning)
    db.execute(text("UPDATE replies SET delivery_id = :d, created_at = :at WHERE id = :r"),
               {"d": delivery_id, "at": at, "r": reply_id})
    return reply_id


@pytest.fixture
def incident(db, factories):  # type: ignore[no-untyped-def]
    """Alert A (10 recipients: 1-5 by alpha, 6-10 by beta, 1-4 live in zone Costa) delivered at 1..8 s,
    one failed, one cancelled; ACKs from 1-6 at 10..60 s, a HELP from 7 at 100 s handled an hour later (now).
    Its correction B went 600 s later to two of them, delivered at 1 and 3 s."""
    composer = actor_for(factories.OperatorFactory(roles=["composer"], username="redacta"))
    approver = actor_for(factories.OperatorFactory(roles=["approver"], username="aprueba"))
    import_geojson(db, {"type": "Feature", "properties": {"name": "Costa"},
                        "geometry": {"type": "Polygon", "coordinates": SQUARE}}, actor=Actor.system("t"))
    zone_id = db.execute(text("SELECT id FROM zones WHERE name = 'Costa'")).scalar_one()
    people = [factories.ContactFactory() for _ in range(10)]
    for person in people[:4]:
        factories.LocationFactory(contact=person, lon=-70.65, lat=-33.40)
    factories.LocationFactory(contact=people[4], lon=-71.5, lat=-30.0)  # located, elsewhere
    t0 = utcnow() - timedelta(seconds=3700)
    a = factories.AlertFactory(state=AlertState.COMPLETED, approved_at=t0, composed_by_id=composer.operator_id,
                               approved_by_id=approver.operator_id, title="Tsunami",
                               target={"zones": ["Costa"]},
                               resolved={"zones": [{"name": "Costa", "version": 1, "zone_id": zone_id}]})
    b = factories.AlertFactory(state=AlertState.COMPLETED, kind=AlertKind.CORRECTION, corrects_alert_id=a.id,
                               approved_at=t0 + timedelta(seconds=600), composed_by_id=approver.operator_id)
    deliveries = []
    for i, person in enumerate(people, 1):
        carrier = "alpha" if i <= 5 else "beta"
        state = "delivered" if i <= 8 else "failed" if i == 9 else "cancelled"
        at = t0 + timedelta(seconds=i) if state == "delivered" else None
        deliveries.append(_deliver(db, a.id, person, carrier=carrier, state=state, at=at))
    for i in range(6):
        _answer(db, a.id, deliveries[i], people[i].msisdn, "ack", t0 + timedelta(seconds=10 * (i + 1)))
    help_id = _answer(db, a.id, deliveries[6], people[6].msisdn, "help", t0 + timedelta(seconds=100))
    for i, s in ((0, 1), (1, 3)):
        _deliver(db, b.id, people[i], carrier="alpha", state="delivered", at=b.approved_at + timedelta(seconds=s))
    opened = incidents.open_incident(db, "Tsunami Costa", composer)
    incidents.add_to_incident(db, a.id, opened.id, composer)
    help_desk.mark_help_handled(db, help_id, approver, note="llamé, va la brigada")
    return {"incident": opened, "a": a, "b": b, "help_id": help_id}


def test_times_to_50_90_99_percent_delivered_and_answered_per_alert_carrier_zone_and_incident(db, incident):
    a, b = incident["a"], incident["b"]
    rep = report.build_report(db, incident["incident"].id, list_non_responders=True)
    whole = rep.figure(a.id)
    assert {k: whole[k] for k in ("recipients", "sent", "delivered", "failed", "cancelled", "answered",
                                  "non_responders")} == {"recipients": 10, "sent": 9, "delivered": 8, "failed": 1,
                                                         "cancelled": 1, "answered": 7, "non_responders": 2}
    # Half the people had it when the 5th did; 90 % never did (two of ten never had it).
    assert (whole["t50_s"], whole["t90_s"], whole["t99_s"]) == (5.0, None, None)
    # Of the 9 it was sent to, the 5th answer came at 50 s; the 9th never.
    assert (whole["ack_t50_s"], whole["ack_t90_s"]) == (50.0, None)
    alpha, beta = rep.figure(a.id, "carrier", "alpha"), rep.figure(a.id, "carrier", "beta")
    assert (alpha["t50_s"], alpha["t90_s"], alpha["t99_s"]) == (3.0, 5.0, 5.0)
    assert (beta["recipients"], beta["t50_s"], beta["t90_s"]) == (5, 8.0, None)
    costa = rep.figure(a.id, "zone", "Costa")
    assert (costa["recipients"], costa["t50_s"], costa["t90_s"], costa["t99_s"]) == (4, 2.0, 4.0, 4.0)
    correction = rep.figure(b.id)
    assert (correction["recipients"], correction["t50_s"], correction["t99_s"]) == (2, 1.0, 3.0)
    # The incident pools every message, each timed from its own alert: 1,1,2,3,3,4,5,6,7,8,-,-.
    overall = rep.figure(None)
    assert (overall["recipients"], overall["t50_s"], overall["t90_s"]) == (12, 4.0, None)
    assert rep.figure(None, "carrier", "alpha")["recipients"] == 7
    assert rep.figure(None, "zone", "Costa")["recipients"] == 6  # A's four and B's two
    assert rep.silent_people == 2 and rep.zones == ["Costa"]


def test_curves_helps_non_responders_and_the_figures_csv(db, incident):
    a, b = incident["a"], incident["b"]
    rep = report.build_report(db, incident["incident"].id, list_non_responders=True)
    chart = rep.curves["alerts"][str(a.id)]
    delivered = dict(zip(chart["delivered"]["x"], chart["delivered"]["series"]["all"], strict=True))
    assert delivered[0.0] == 0 and delivered[1.0] == 1 and delivered[8.0] == 8 and max(delivered) == 8.0
    alpha = dict(zip(chart["delivered"]["x"], chart["delivered"]["series"]["alpha"], strict=True))
    assert alpha[5.0] == 5 and alpha[8.0] == 5  # holds after its last delivery
    answered = dict(zip(chart["answered"]["x"], chart["answered"]["series"]["all"], strict=True))
    assert answered[10.0] == 1 and answered[60.0] == 6 and answered[100.0] == 7
    on_incident_clock = rep.curves["incident"]["delivered"]
    points = dict(zip(on_incident_clock["x"], on_incident_clock["series"][b.reference], strict=True))
    assert points[600.0] == 0 and points[601.0] == 1 and points[603.0] == 2  # B started 600 s after A
    assert [v for v in on_incident_clock["series"][b.reference][:3]] == [None, None, None]

    (help_row,) = rep.helps
    assert help_row["handled_by"] == "aprueba"
    assert 3590 <= help_row["handled_after_s"] <= 3700 and help_row["from"].startswith("…")
    assert rep.help_summary["helps"] == 1 and rep.help_summary["open"] == 0
    silent = rep.non_responders[a.id]
    assert silent["count"] == 2 and len(silent["rows"]) == 2
    assert all(r["number"].startswith("…") and len(r["number"]) == 5 for r in silent["rows"])
    assert b.id not in rep.non_responders  # a correction asks for no answer

    hidden = report.build_report(db, incident["incident"].id, list_non_responders=False)
    assert hidden.non_responders[a.id] == {"count": 2, "rows": []}

    out = io.StringIO()
    report.write_figures_csv(rep, out)
    lines = out.getvalue().splitlines()
    assert lines[0].split(",")[:6] == ["incident", "scope", "alert", "kind", "breakdown", "key"]
    row = next(line.split(",") for line in lines if f",{a.reference},alert,all," in line)
    assert row[report.CSV_COLUMNS.index("t50_s")] == "5.0" and row[report.CSV_COLUMNS.index("t90_s")] == ""
    doc = report.as_json(rep)
    assert doc["format"] == report.FORMAT and doc["incident"]["reference"] == incident["incident"].reference
    assert doc["non_responders"][str(a.id)]["count"] == 2
