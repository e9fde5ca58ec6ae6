"""A small town with an alert in every state, for tests that read every console page.

Built through the services and the real pipeline on a committed database: alerts composed,
submitted, approved, rejected, scheduled, cancelled, sent through the in-process gateway to the
simulator (receipts back), corrected; handsets answering through the simulator (an ACK, a HELP, a
free text, a reply with a keyword the shared code does not know, a stranger's text), interpreted
by the inbound job. Nothing of the pipeline's output is written by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

from geoalchemy2.elements import WKTElement
from sqlalchemy import select, text

from alerting.alerts import corrections, drafts, incidents, lifecycle, templates
from alerting.base.db import transaction, utcnow
from alerting.base.models import Alert, AlertMode, Contact, ContactLocation, Group, Incident, Operator, Priority
from alerting.directory import accounts, areas, registration_keywords
from alerting.directory import contacts as directory
from audit.actor import Actor
from broadcast import replies as replies_job
from geo.zones import import_geojson
from tests.cluster import seed_group
from tests.factories import actor_for

PASSWORD = "correct horse battery staple"
ZONE = "Sector 7"
GROUP = "brigada"
DYNAMIC = "unidad uno"
TITLE = "Corte de agua"
INCIDENT = "Corte de agua en el sector"
SQUARE = [[[-70.70, -33.45], [-70.60, -33.45], [-70.60, -33.35], [-70.70, -33.35], [-70.70, -33.45]]]


@dataclass
class World:
    seeds: dict[str, str]  # username → TOTP seed
    alerts: dict[str, int]  # state (or what it shows) → alert id
    groups: dict[str, int]
    data: tuple[str, ...]  # every string the test typed, that pages show as it was typed
    replies: dict[str, str] = field(default_factory=dict)
    templates: dict[str, int] = field(default_factory=dict)  # name → template id
    incident_id: int | None = None  # the completed and the corrected alert, and the correction


def operators(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    key, system = settings.secret_key(), Actor.system("console-test")
    seeds = {}
    with transaction() as db:
        for name, roles in (("jefa", ["admin", "approver", "composer", "auditor"]), ("redacta", ["composer"]),
                            ("aprueba", ["approver"]), ("revisa", ["auditor"])):
            new = accounts.create_operator(db, name, roles, key, system, password=PASSWORD)
            new.operator.totp_enrolled_at = utcnow()
            seeds[name] = accounts.decrypt_totp(new.operator.totp_secret_enc, key)  # type: ignore[arg-type]
    return seeds


def _town() -> dict[str, int]:
    system = Actor.system("console-test")
    seed_group(6, group=GROUP, prefix="+5698", drill=True)
    with transaction() as db:
        import_geojson(db, {"type": "Feature", "properties": {"name": ZONE},
                            "geometry": {"type": "Polygon", "coordinates": SQUARE}}, actor=system)
        for i, contact_id in enumerate(db.scalars(select(Contact.id).order_by(Contact.id).limit(4))):
            db.add(ContactLocation(contact_id=contact_id, label="home",
                                   geom=WKTElement(f"POINT(-70.6{5 + i % 3} -33.4{i})", srid=4326)))
        directory.create_group(db, DYNAMIC, kind="dynamic", criterion={"attr": "unidad", "eq": "U1"}, actor=system)
        db.execute(text("INSERT INTO contact_numbers (contact_id, position, msisdn) "  # a second phone (issue 21)
                        "SELECT min(id), 2, '+56987000001' FROM contacts"))
        return {name: gid for name, gid in db.execute(select(Group.name, Group.id))}


def actor(username: str) -> Actor:
    with transaction() as db:
        return actor_for(db.scalar(select(Operator).where(Operator.username == username)))  # type: ignore[arg-type]


def compose(who: Actor, *, mode: AlertMode = AlertMode.LIVE, group: str = GROUP, **extra: object) -> int:
    with transaction() as db:
        draft = drafts.AlertDraft(texts={"es": "Corte de agua en su sector. Responda ACK {codigo}."}, mode=mode,
                                     sender_name="SIRENA-SC", priority=Priority.HIGH, title=TITLE,
                                     target={"groups": [group]}, **extra)  # type: ignore[arg-type]
        return lifecycle.compose(db, draft, who).id


def submit(alert_id: int, who: Actor) -> str:
    with transaction() as db:
        return lifecycle.submit(db, alert_id, who).approval_hash  # type: ignore[return-value]


def approve(alert_id: int, seen: str, who: Actor, *, override_reason: str | None = None) -> None:
    with transaction() as db:
        lifecycle.approve(db, alert_id, who, seen_hash=seen, override_reason=override_reason)


def pipeline(run_jobs, until) -> None:  # type: ignore[no-untyped-def]
    """Run the jobs and the inbound sweep until `until()` holds (receipts and replies arrive async)."""
    deadline = time.monotonic() + 60
    while True:
        run_jobs()
        replies_job.sweep(min_age_s=0.0)
        if until() or time.monotonic() > deadline:
            return
        time.sleep(0.3)


def count(sql: str, **params: object) -> int:
    with transaction() as db:
        return int(db.execute(text(sql), params).scalar_one())


def build(settings, simulator, run_jobs) -> World:  # type: ignore[no-untyped-def]
    """The town, its operators and an alert in each state (the gateway and simulator are running)."""
    seeds = operators(settings)
    groups = _town()
    redacta, aprueba, jefa = (actor(n) for n in ("redacta", "aprueba", "jefa"))
    alerts = {"draft": compose(redacta), "exercise": compose(redacta, mode=AlertMode.EXERCISE)}
    alerts["pending_approval"] = compose(redacta)
    submit(alerts["pending_approval"], redacta)
    alerts["rejected"] = compose(redacta)
    submit(alerts["rejected"], redacta)
    with transaction() as db:
        lifecycle.reject(db, alerts["rejected"], aprueba, "texto poco claro")
    alerts["scheduled"] = compose(redacta, scheduled_at=utcnow() + timedelta(days=1))
    approve(alerts["scheduled"], submit(alerts["scheduled"], redacta), aprueba)
    alerts["cancelled"] = compose(redacta)
    approve(alerts["cancelled"], submit(alerts["cancelled"], redacta), aprueba)
    with transaction() as db:
        lifecycle.cancel(db, alerts["cancelled"], aprueba, "zona equivocada")
    alerts["completed"] = compose(redacta)
    approve(alerts["completed"], submit(alerts["completed"], redacta), aprueba)
    alerts["superseded"] = compose(redacta)
    approve(alerts["superseded"], submit(alerts["superseded"], redacta), aprueba)
    pipeline(run_jobs, lambda: count("SELECT count(*) FROM alerts WHERE id IN (:a, :b) AND state = 'completed'",
                                       a=alerts["completed"], b=alerts["superseded"]) == 2)
    with transaction() as db:
        alerts["correction"] = corrections.fire_correction(db, alerts["superseded"], jefa).id
    replies = _answer(simulator, alerts["completed"])
    registered = _register(simulator, jefa)
    pipeline(run_jobs, lambda: count("SELECT count(*) FROM replies") >= len(replies)
              and count("SELECT count(*) FROM registrations") >= registered
              and count("SELECT count(*) FROM alerts WHERE id = :a AND state = 'completed'",
                         a=alerts["correction"]) == 1)
    templates_ = _library(jefa, aprueba)
    with transaction() as db:
        incident = incidents.open_incident(db, INCIDENT, redacta, description="corte programado")
        for name in ("completed", "superseded"):
            incidents.add_to_incident(db, alerts[name], incident.id, redacta)
        incident_id = incident.id
    with transaction() as db:
        names = tuple(db.scalars(select(Contact.name)))
        incident_refs = tuple(db.scalars(select(Incident.reference)))
        references = tuple(db.scalars(select(Alert.reference)))
        codes = tuple(db.scalars(select(Alert.reply_code)))
    data = (ZONE, GROUP, DYNAMIC, TITLE, "texto poco claro", "zona equivocada", INCIDENT, "corte programado", *seeds,
            *names, *references, *codes, *incident_refs, *replies.values(), KEYWORD.upper(), "ESTE", KEYWORD_NOTE)
    return World(seeds=seeds, alerts=alerts, groups=groups, data=data, replies=replies, templates=templates_,
                 incident_id=incident_id)


def _library(jefa: Actor, aprueba: Actor) -> dict[str, int]:
    """The seeded "water" template approved by two approvers, one of the library's own with a
    placeholder (waiting for approval), and the auditor bounded to the town's zone and group."""
    with transaction() as db:
        water = templates.get_template(db, "water")
        for who in (jefa, aprueba):
            templates.approve_template(db, water.id, who, seen_hash=water.approval_hash)
        own = templates.create_template(db, templates.TemplateSpec(
            name="corte-ruta", titles={"es": "Corte de ruta", "en": "Road closed"},
            texts={"es": "Ruta {ruta} cortada. Responda ACK {codigo}.",
                   "en": "Road {ruta} closed. Reply ACK {codigo}."},
            placeholders=[{"name": "ruta", "default": "principal"}], priority_hint="high"), jefa)
        templates.submit_template(db, own.id, jefa)
        revisa = db.scalar(select(Operator.id).where(Operator.username == "revisa"))
        areas.set_area(db, revisa, [ZONE], [GROUP], jefa)  # type: ignore[arg-type]
        return {"water": water.id, "own": own.id}


KEYWORD, KEYWORD_NOTE = "sector", "vecinos del sector 7"


def _register(simulator, admin: Actor) -> int:  # type: ignore[no-untyped-def]
    """Self-registration on, a keyword for the zone; a resident texts it, another one a keyword
    nobody published. Returns how many requests were texted."""
    with transaction() as db:
        registration_keywords.publish_keyword(db, KEYWORD, zone=ZONE, description=KEYWORD_NOTE, actor=admin)
        registration_keywords.set_policy(db, enabled=True, actor=admin)
    simulator.send_mo("alpha", "56977770001", "4242", f"ALTA {KEYWORD}")
    simulator.send_mo("alpha", "56977770002", "4242", "ALTA ESTE")
    return 2


def _answer(simulator, alert_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Handsets of the alert's recipients answer through the simulator; a stranger writes too."""
    with transaction() as db:
        code = db.get(Alert, alert_id).reply_code  # type: ignore[union-attr]
        numbers = list(db.scalars(text("SELECT msisdn FROM deliveries WHERE alert_id = :a ORDER BY id"),
                                  {"a": alert_id}))
    said = {"ack": f"ACK {code}", "help": f"AYUDA {code} atrapado en el segundo piso",
            "free": "hay humo en la esquina", "keyword": "POLICIA necesito hablar", "stranger": "quien es usted"}
    simulator.send_mo("alpha", numbers[0].lstrip("+"), "4242", said["ack"])
    simulator.send_mo("alpha", numbers[1].lstrip("+"), "4242", said["help"])
    simulator.send_mo("alpha", numbers[2].lstrip("+"), "4242", said["free"])
    simulator.send_mo("alpha", numbers[3].lstrip("+"), "5555", said["keyword"])  # the shared code: unknown keyword
    simulator.send_mo("alpha", "56977770000", "4242", said["stranger"])
    return said
