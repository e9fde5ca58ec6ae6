"""An incident made by the real pipeline, for the report's end-to-end tests (browser and CLI).

In the small town of tests/web/console_world.py (six people in the group "brigada", four of them
living in the zone "Sector 7"): an operator opens an incident and composes a live alert for the
zone and the group in it; another approves; the in-process gateway sends it over SMPP to the
simulator, whose receipts come back; handsets answer through the simulator (two ACKs, a HELP); an
operator marks the HELP handled; the pre-approved correction is fired (it joins the incident by
itself) and delivered too. Nothing of the pipeline's output is written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text

from alerting.alerts import corrections, drafts, help_desk, incidents, lifecycle
from alerting.base.db import transaction
from alerting.base.models import Alert, AlertMode, Priority
from tests.web import console_world
from tests.web.console_world import actor, approve, count, pipeline, submit


@dataclass
class IncidentWorld:
    seeds: dict[str, str]
    incident_id: int
    reference: str
    alert_id: int
    correction_id: int
    help_text: str


def build(settings, simulator, run_jobs) -> IncidentWorld:  # type: ignore[no-untyped-def]
    seeds = console_world.operators(settings)
    console_world._town()
    redacta, aprueba, jefa = (actor(n) for n in ("redacta", "aprueba", "jefa"))
    with transaction() as db:
        incident = incidents.open_incident(db, "Marejada Sector 7", redacta, description="oleaje anormal")
        incident_id, reference = incident.id, incident.reference
        draft = drafts.AlertDraft(texts={"es": "Marejada en Sector 7. Aléjese de la costa. Responda ACK {codigo}."},
                                     mode=AlertMode.LIVE, sender_name="SIRENA-SC", priority=Priority.HIGH,
                                     title="Marejada", target={"zones": [console_world.ZONE],
                                                               "groups": [console_world.GROUP]},
                                     incident_id=incident_id)
        alert_id = lifecycle.compose(db, draft, redacta).id
    approve(alert_id, submit(alert_id, redacta), aprueba)
    pipeline(run_jobs, lambda: count("SELECT count(*) FROM deliveries WHERE alert_id = :a AND state = 'delivered'",
                                     a=alert_id) == 6)
    with transaction() as db:
        code = db.get(Alert, alert_id).reply_code  # type: ignore[union-attr]
        numbers = list(db.scalars(text("SELECT msisdn FROM deliveries WHERE alert_id = :a ORDER BY id"),
                                  {"a": alert_id}))
    help_text = f"AYUDA {code} el agua entró a la casa"
    simulator.send_mo("alpha", numbers[0].lstrip("+"), "4242", f"ACK {code}")
    simulator.send_mo("alpha", numbers[1].lstrip("+"), "4242", f"ACK {code}")
    simulator.send_mo("alpha", numbers[2].lstrip("+"), "4242", help_text)
    pipeline(run_jobs, lambda: count("SELECT count(*) FROM replies WHERE alert_id = :a", a=alert_id) >= 3)
    with transaction() as db:
        help_id = db.scalar(text("SELECT id FROM replies WHERE alert_id = :a AND meaning = 'help'"), {"a": alert_id})
        help_desk.mark_help_handled(db, help_id, jefa, note="llamamos a bomberos")
        correction_id = corrections.fire_correction(db, alert_id, jefa).id
    pipeline(run_jobs, lambda: count("SELECT count(*) FROM deliveries WHERE alert_id = :a AND state = 'delivered'",
                                     a=correction_id) == 6)
    with transaction() as db:
        assert db.scalar(select(Alert.incident_id).where(Alert.id == correction_id)) == incident_id
    return IncidentWorld(seeds, incident_id, reference, alert_id, correction_id, help_text)


def expected(alert_id: int) -> dict[str, float | None]:
    """The times to 50/90/99 % delivered and 50/90 % answered of an alert, straight from its rows:
    the ceil(p·N)-th smallest time among its N recipients (answers among those sent). A carrier's
    receipt gives the delivery time in whole seconds, so one within the approval's second counts 0."""
    with transaction() as db:
        t0 = db.scalar(select(Alert.approved_at).where(Alert.id == alert_id))
        rows = db.execute(text("SELECT state, delivered_at, id FROM deliveries WHERE alert_id = :a"),
                          {"a": alert_id}).all()
        answers = dict(db.execute(text(
            "SELECT delivery_id, min(created_at) FROM replies WHERE alert_id = :a AND delivery_id IS NOT NULL "
            "AND meaning IN ('ack', 'no', 'help', 'poll', 'verify_yes') GROUP BY 1"), {"a": alert_id}).all())
    inf = float("inf")
    delivered = sorted(max(0.0, (r.delivered_at - t0).total_seconds()) if r.state == "delivered" else inf
                       for r in rows)
    sent = [r for r in rows if r.state in ("submitted", "delivered", "failed", "expired")]
    answered = sorted((answers[r.id] - t0).total_seconds() if r.id in answers else inf for r in sent)

    def nth(values: list[float], p: int) -> float | None:
        k = -(-p * len(values) // 100)  # ceil
        v = values[k - 1]
        return None if v == inf else round(v, 3)

    return {"t50_s": nth(delivered, 50), "t90_s": nth(delivered, 90), "t99_s": nth(delivered, 99),
            "ack_t50_s": nth(answered, 50), "ack_t90_s": nth(answered, 90), "recipients": len(rows),
            "answered": sum(1 for r in sent if r.id in answers)}
