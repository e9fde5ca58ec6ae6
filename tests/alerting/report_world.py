"""An incident whose deliveries and replies have known times, for the report's tests: alert A (10
recipients: 1-5 by alpha, 6-10 by beta, 1-4 live in zone Costa) delivered at 1..8 s, one failed,
one cancelled; ACKs from 1-6 at 10..60 s, a HELP from 7 at 100 s handled an hour later (now). Its
correction B went 600 s later to two of them, delivered at 1 and 3 s."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from alerting.alerts import help_desk, incidents
from alerting.base.db import utcnow
from alerting.base.models import AlertKind, AlertState
from audit.actor import Actor
from geo.zones import import_geojson
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


def build(db, factories) -> dict:  # type: ignore[no-untyped-def]
    """The incident (see the module's docstring): {"incident", "a", "b", "help_id", "composer", "approver"}."""
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
    return {"incident": opened, "a": a, "b": b, "help_id": help_id, "composer": composer, "approver": approver}
