"""The scripted incident the demo plays, narrated on the terminal.

A river flood warning (high, es+en) to the flood zone and the brigades; while it sends, a flash
evacuation order to one district preempts it; carrier alpha drops and refuses binds, traffic
fails over to beta; handsets reply; at the ACK deadline non-responders get it again and the
supervisors get the list; a wrong street is corrected with a text of the moment, approved by two
approvers as any flash alert; the auditor exports and verifies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.alerts.corrections import propose_correction
from alerting.alerts.drafts import AlertDraft
from alerting.base.db import engine, transaction, utcnow
from alerting.base.models import Alert, AlertMode, Priority
from alerting.interfaces.demo.progress import ProgressLine
from audit.actor import Actor
from audit.checkpoints import signing_key, write_checkpoint
from audit.export import Scope, write_export
from audit.seal import seal_committed
from audit.verify import verify_chain
from broadcast.jobs import counts_by_state

FLOOD_ES = ("ALERTA ROJA por crecida del río Mapocho. Evacúe a zonas altas por calle Los Aromos. "
            "Responda ACK {codigo} al recibir.")
FLOOD_EN = ("RED ALERT: Mapocho river flooding. Move to high ground via Los Aromos street. "
            "Reply ACK {codigo} when received.")
EVAC_ES = "EVACUACIÓN INMEDIATA sector Centro: diríjase al Parque O'Higgins. Responda ACK {codigo}."
EVAC_EN = "EVACUATE NOW, Centro district: go to O'Higgins Park. Reply ACK {codigo}."
FIX_TEXT = ("la ruta de evacuación es por calle Los Olmos, no Los Aromos. / "
            "evacuate via Los Olmos street, not Los Aromos.")  # the system prefixes "CORRECCIÓN A-…: "


@dataclass
class Actors:
    composer: Actor
    approver: Actor
    second_approver: Actor
    auditor: Actor


@dataclass
class Story:
    actors: Actors
    say: Callable[[str], None]
    control: Any  # the simulator's ControlClient
    settings: Any
    out_dir: Path
    ack_deadline_s: int = 60
    figures: dict[str, Any] = field(default_factory=dict)

    def alert(self, title: str, texts: dict[str, str], target: dict[str, Any], priority: Priority,
              **extra: Any) -> int:
        with transaction() as s:
            alert = lifecycle.compose(s, AlertDraft(texts=texts, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                                priority=priority, title=title, target=target, **extra),
                                  self.actors.composer)
            lifecycle.submit(s, alert.id, self.actors.composer)
            self.say(f"  {self.actors.composer.name} composed {alert.reference} ({priority.value}): {title}")
            return alert.id

    def approve(self, alert_id: int, *approvers: Actor) -> float:
        for approver in approvers:
            with transaction() as s:  # the approver reviews the alert as it is, then approves that version
                seen = s.get(Alert, alert_id).approval_hash  # type: ignore[union-attr]
                alert = lifecycle.approve(s, alert_id, approver, seen_hash=seen)
                self.say(f"  {approver.name} approved {alert.reference} → {alert.state.value}")
        return time.monotonic()

    def play(self) -> dict[str, Any]:
        a = self.actors
        self.say(click.style("\n1. River flood warning to the flood zone and the brigades", bold=True))
        flood = self.alert("Crecida del río Mapocho", {"es": FLOOD_ES, "en": FLOOD_EN},
                           {"zones": ["Zona de inundación"], "groups": ["brigadas"]}, Priority.HIGH,
                           ack_deadline_s=self.ack_deadline_s,
                           escalation={"resend": True, "supervisors": "supervisores", "supervisors_after_s": 20})
        self.approve(flood, a.approver)
        self.wait_progress(flood, until=0.25, label="flood warning")
        self.say(click.style("\n2. Flash evacuation order to Centro while the warning is sending", bold=True))
        evac = self.alert("Evacuación sector Centro", {"es": EVAC_ES, "en": EVAC_EN}, {"zones": ["Centro"]},
                          Priority.FLASH)
        self.say("  a live flash alert needs two approvers")
        self.approve(evac, a.approver, a.second_approver)
        self.wait_progress(evac, until=0.3, label="evacuation (flash)")
        self.say(click.style("\n3. Carrier alpha drops and refuses binds for 20 s", bold=True))
        before = {name: self.carrier_counts(alert_id) for name, alert_id in (("flood", flood), ("evac", evac))}
        self.control.set_fault("alpha", "refuse_bind", for_s=20)
        self.control.set_fault("alpha", "drop_after", n=1)
        self.figures["failover_at"] = utcnow().isoformat()
        self.wait_progress(evac, until=1.0, label="evacuation (flash)")
        self.wait_progress(flood, until=1.0, label="flood warning")
        after = {name: self.carrier_counts(alert_id) for name, alert_id in (("flood", flood), ("evac", evac))}
        moved = sum(after[k].get("beta", 0) - before[k].get("beta", 0) for k in after)
        self.figures["failover"] = {"beta_after_drop": moved,
                                    "alpha_after_drop": sum(after[k].get("alpha", 0) - before[k].get("alpha", 0)
                                                            for k in after)}
        self.say(f"  after alpha dropped, beta carried {moved:,} messages of the two alerts")
        self.say(click.style("\n4. Handsets reply; the ACK deadline passes", bold=True))
        self.wait_escalation(flood)
        self.say(click.style("\n5. A wrong street in the warning: a corrected text goes for approval", bold=True))

        self.say("  the pre-armed correction says \"sent in error\", which does not fit: a text of the moment goes to "
                 "the whole audience, so it needs approval like any flash alert (two approvers)")
        clicked = time.monotonic()
        with transaction() as s:
            fix = propose_correction(s, flood, FIX_TEXT, a.composer)
            fix_id, fix_ref = fix.id, fix.reference
        self.say(f"  {a.composer.name} proposed correction {fix_ref} (flash, to everyone the warning reached)")
        self.approve(fix_id, a.approver, a.second_approver)
        self.wait_progress(fix_id, until=1.0, label="correction")
        self.figures["correction_click_to_first_sms_s"] = self.first_submit_after(fix_id, clicked)
        self.say(click.style("\n6. The auditor exports the timeline and verifies the trail", bold=True))
        self.figures["export"], self.figures["verify"] = self.audit(flood)
        self.figures["alerts"] = {"flood": flood, "evacuation": evac, "correction": fix_id}
        return self.figures

    # --- watching -----------------------------------------------------------------------------

    def counts(self, alert_id: int) -> tuple[str, dict[str, int]]:
        with transaction() as s:
            state = s.execute(text("SELECT state FROM alerts WHERE id = :a"), {"a": alert_id}).scalar_one()
            rows = s.execute(text("SELECT state, sum(n) FROM alert_counters WHERE alert_id = :a GROUP BY 1"),
                             {"a": alert_id}).all()
        return state, {k: int(v) for k, v in rows if v}

    def carrier_counts(self, alert_id: int) -> dict[str, int]:
        with transaction() as s:
            rows = s.execute(text("SELECT carrier, sum(n) FROM alert_counters WHERE alert_id = :a "
                                  "AND carrier <> '' AND state IN ('submitted', 'delivered', 'failed', 'expired') "
                                  "GROUP BY 1"), {"a": alert_id}).all()
        return {k: int(v) for k, v in rows}

    def wait_progress(self, alert_id: int, *, until: float, label: str, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        line = ProgressLine()
        while time.monotonic() < deadline:
            state, counts = self.counts(alert_id)
            total = sum(counts.values())
            done = sum(counts.get(k, 0) for k in ("submitted", "delivered", "failed", "expired", "retrying"))
            share = done / total if total else 0.0
            bar = "█" * int(share * 30) + "·" * (30 - int(share * 30))
            line.show(f"  {label:<20} [{bar}] {done:>7,}/{total:,} {state:<10}")
            if (state == "completed" and until >= 1.0) or (share >= until and until < 1.0):
                line.done()
                return
            time.sleep(0.3)
        line.done()
        raise click.ClickException(f"{label} did not progress within {timeout_s:.0f} s (see the logs)")

    def wait_escalation(self, alert_id: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        line = ProgressLine()
        while time.monotonic() < deadline:
            with transaction() as s:
                stages = [r[0] for r in s.execute(text("SELECT stage FROM escalations WHERE alert_id = :a"),
                                                  {"a": alert_id})]
                replies: dict[str, int] = dict(s.execute(text(
                    "SELECT meaning, count(*) FROM replies WHERE alert_id = :a GROUP BY 1"), {"a": alert_id}).all())
            shown = {stage: stages.count(stage) for stage in dict.fromkeys(stages)}
            line.show(f"  replies so far: {json.dumps(replies)}  escalations: {json.dumps(shown)}   ")
            if "supervisors" in stages:
                line.done()
                self.figures["replies"] = replies
                self.figures["escalations"] = stages
                return
            time.sleep(1.0)
        line.done()
        raise click.ClickException("the escalation did not run (is `sirena scheduler` alive? see the logs)")

    def first_submit_after(self, alert_id: int, clicked: float) -> float | None:
        with transaction() as s:
            row = s.execute(text("SELECT extract(epoch FROM first_submit_at - created_at) FROM alerts "
                                 "WHERE id = :a"), {"a": alert_id}).scalar_one()
        return round(float(row), 2) if row is not None else None

    def audit(self, alert_id: int) -> tuple[str, dict[str, Any]]:
        path = self.out_dir / f"timeline-alert-{alert_id}.json"
        seal_committed(engine())
        with transaction() as s, path.open("w", encoding="utf-8") as fh:
            summary = write_export(s, Scope(alert_ids=(alert_id,)), "json", fh, key=signing_key(self.settings))
        self.say(f"  {self.actors.auditor.name} exported {summary.count} events to {path}")
        write_checkpoint(engine(), self.settings)
        verdict = verify_chain(engine(), self.settings)
        self.say(f"  sirena audit verify: {'OK' if verdict.ok else 'FAILED'} — {verdict.count} events, "
                 f"head {verdict.head.hash_hex[:16]}…" if hasattr(verdict.head, "hash_hex") else
                 f"  sirena audit verify: {'OK' if verdict.ok else 'FAILED'} — {verdict.count} events")
        return str(path), {"ok": verdict.ok, "events": verdict.count,
                           "problems": [str(p) for p in verdict.problems[:3]]}


def summary(story_figures: dict[str, Any], pdu_log: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per alert: recipients, delivered, failed (final: never goes down) and retrying (failed once,
    re-sent through another carrier, not final yet), acknowledged, time to first and last SMS, rate.
    The counts are the console's and the API's (broadcast.jobs.counts_by_state)."""
    rows = []
    with transaction() as s:
        for name, alert_id in story_figures["alerts"].items():
            counts = counts_by_state(s, alert_id)
            r = s.execute(text("""
                SELECT a.reference,
                       (SELECT count(DISTINCT delivery_id) FROM replies r WHERE r.alert_id = a.id AND meaning = 'ack')
                         AS acknowledged,
                       extract(epoch FROM a.first_submit_at - a.approved_at) AS first_s,
                       extract(epoch FROM a.last_submit_at - a.approved_at) AS last_s,
                       (SELECT coalesce(sum(possible_duplicates), 0) FROM deliveries d WHERE d.alert_id = a.id)
                         AS possible_duplicates,
                       (SELECT count(*) FROM deliveries d WHERE d.alert_id = a.id
                         AND d.state IN ('queued', 'submitting', 'waiting_route')) AS not_handed
                  FROM alerts a WHERE a.id = :a
            """), {"a": alert_id}).one()
            first = float(r.first_s) if r.first_s is not None else None
            last = float(r.last_s) if r.last_s is not None else None
            recipients = sum(counts.values())
            rows.append({"alert": name, "reference": r.reference, "recipients": recipients,
                         "delivered": counts.get("delivered", 0),
                         "failed": counts.get("failed", 0) + counts.get("expired", 0),
                         "retrying": counts.get("retrying", 0), "acknowledged": int(r.acknowledged),
                         "first_sms_s": round(first, 2) if first is not None else None,
                         "last_sms_s": round(last, 2) if last is not None else None,
                         "msgs_per_s": round(recipients / last) if last else None,
                         "possible_duplicates": int(r.possible_duplicates), "not_handed": int(r.not_handed)})
    air: dict[str, int] = {}
    with pdu_log.open(encoding="utf-8") as fh:
        for line in fh:
            if '"reassembled"' in line:  # a whole concatenated message
                rec = json.loads(line)
            elif '"submit_sm"' in line:
                rec = json.loads(line)
                if rec.get("dir") != "in" or rec.get("status") != 0 or (rec.get("part") or {}).get("total", 1) > 1:
                    continue  # refused, or one part of a message counted when reassembled
            else:
                continue
            key = f"{rec['dest']}|{rec.get('text', '')}"
            air[key] = air.get(key, 0) + 1
    # Follow-ups (re-sends at the ACK deadline, notices) repeat a text on purpose: not duplicates.
    with transaction() as s:
        for msisdn, body, n in s.execute(text("SELECT msisdn, text, count(*) FROM followups "
                                              "WHERE attempts > 0 GROUP BY 1, 2")):
            key = f"{msisdn.lstrip('+')}|{body}"
            if key in air:
                air[key] -= int(n)
    return rows, {"air_messages": len(air), "air_duplicates": sum(n - 1 for n in air.values() if n > 1)}
