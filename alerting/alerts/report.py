"""The after-action report of an incident: what an emergency manager puts in the annual report.

For the incident and each of its alerts (corrections and cancellation notices included): how fast
the people got it (the delivery curve since the alert started, the times to 50/90/99 % of the
recipients delivered, per carrier and per zone), how fast they answered (the answer curve, the
times to 50/90 %), the HELPs and how long each waited for a person, who never answered (a count
for everyone, the list, numbers masked, only for those with `alerts.non_responders`), every
operator action from the audit trail, and a verification line: the trail's head when the report
was made, and the incident's part of the trail as a signed export that `sirena audit verify
--export REPORT` checks against the trail (audit/export.py).

The figures come from alerting/alerts/report_figures.py. Making a report writes nothing; an
export of one is audited first (`record_report_export`), so the export holds its own record.
Interfaces: `sirena report incident`, the console's incident page, GET /api/v1/incidents/{id}/report.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.alerts import incidents, report_figures
from alerting.base import csv_cells
from alerting.base.db import utcnow
from alerting.base.errors import NotFound
from alerting.base.models import Alert, AlertKind
from alerting.base.phones import mask_msisdn
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor
from audit.checkpoints import read_head
from audit.export import Scope
from broadcast import live
from geo import targeting
from geo.reach import ZoneRef

FORMAT = "sirena-incident-report-v1"
FORMATS = ("html", "csv", "json")
NON_RESPONDERS_LISTED = 500  # per alert; the alert page's CSV has them all, full numbers
CSV_COLUMNS = ("incident", "scope", "alert", "kind", "breakdown", "key", "recipients", "sent", "delivered", "failed",
               "cancelled", "waiting", "asked", "answered", "non_responders", "t50_s", "t90_s", "t99_s", "ack_t50_s",
               "ack_t90_s", "last_delivered_s", "last_answered_s")
# Automatic reply events (one per reply: the trail keeps them all) are not operator actions.
_ACTIONS = """
SELECT e.seq, e.at, e.actor_kind, e.actor_name, e.origin_interface, e.action, e.subject_type, e.subject_id,
       e.outcome, e.reason, e.payload ->> 'alert_id' AS payload_alert, e.payload ->> 'reply_id' AS reply_id
  FROM audit.events e
 WHERE {where} AND NOT (e.actor_kind = 'system' AND starts_with(e.action, 'reply.'))
 ORDER BY e.seq NULLS LAST, e.id
"""
_HELPS = """
SELECT r.id, r.alert_id, r.msisdn, c.name, r.text, r.created_at, r.handled_at, o.username AS handled_by,
       extract(epoch FROM r.handled_at - r.created_at)::float8 AS handled_after_s
  FROM replies r LEFT JOIN contacts c ON c.id = r.contact_id LEFT JOIN operators o ON o.id = r.handled_by_id
 WHERE r.alert_id = ANY(:ids) AND r.meaning = 'help'
 ORDER BY r.created_at, r.id
"""
_HELP_SUMMARY = """
SELECT count(*) AS helps, count(handled_at) AS handled,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM handled_at - created_at))
           FILTER (WHERE handled_at IS NOT NULL) AS handled_p50_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM handled_at - created_at))
           FILTER (WHERE handled_at IS NOT NULL) AS handled_p90_s,
       max(extract(epoch FROM handled_at - created_at)) AS handled_max_s
  FROM replies WHERE alert_id = ANY(:ids) AND meaning = 'help'
"""


@dataclass
class Report:
    """Everything the report shows; `as_json` is its JSON form, `write_figures_csv` its CSV."""

    incident: dict[str, Any]
    generated_at: datetime
    head: dict[str, Any]
    alerts: list[dict[str, Any]]
    figures: list[dict[str, Any]]
    curves: dict[str, Any]
    replies: dict[int, dict[str, Any]]
    helps: list[dict[str, Any]]
    help_summary: dict[str, Any]
    non_responders: dict[int, dict[str, Any]]
    silent_people: int
    actions: list[dict[str, Any]]
    zones: list[str]
    non_responders_listed: bool
    verification: dict[str, Any] | None = None
    elapsed_s: float = 0.0
    audit_export: dict[str, Any] | None = field(default=None, repr=False)

    def figure(self, alert_id: int | None, breakdown: str = "all", key: str = "") -> dict[str, Any] | None:
        """One figures row: an alert's (None: the incident's) overall, or per carrier or zone `key`."""
        for row in self.figures:
            if row["alert_id"] == alert_id and row["breakdown"] == breakdown and row["key"] == key:
                return row
        return None


def audit_scope(session: Session, incident_id: int) -> Scope:
    """The incident's part of the trail: events about it and about each of its alerts."""
    return Scope(alert_ids=tuple(a.id for a in incidents.incident_alerts(session, incident_id)),
                 incident_ids=(incident_id,))


def record_report_export(session: Session, incident_id: int, actor: Actor, fmt: str, destination: str) -> None:
    """Audit an export of the report before it is made (incident.report_exported): who took it, in
    which format, to where, with the part of the trail it embeds. Raises Refused, NotFound."""
    permissions.require(actor, "incidents.read", "export incident reports")
    incident = incidents.get_incident(session, incident_id)
    trail.append(session, actor=actor, action="incident.report_exported", subject_type="incident",
                 subject_id=incident_id, payload={"reference": incident.reference, "format": fmt,
                                                  "output": destination,
                                                  "scope": audit_scope(session, incident_id).as_dict()})


def build_report(session: Session, incident_id: int, *, list_non_responders: bool,
                 non_responders_listed: int = NON_RESPONDERS_LISTED, unsealed: bool = False) -> Report:
    """The report of an incident as the trail and the deliveries stand now. Its actions are the
    events sealed into the chain (those an export of the trail holds: seal first to include the
    latest), and with `unsealed` also those waiting for their seal (a page shows them last, with no
    number). `list_non_responders`: the caller may see who they are (`alerts.non_responders`);
    otherwise only counts. Raises NotFound."""
    started = time.perf_counter()
    incident = incidents.get_incident(session, incident_id)
    alerts = incidents.incident_alerts(session, incident_id)
    ids = [a.id for a in alerts]
    by_id = {a.id: a for a in alerts}
    rows = report_figures.by_alert_and_carrier(session, ids)
    zones, zone_names = _zones(session, alerts)
    zone_rows = report_figures.by_zone(session, ids, zones)
    figures = _figure_rows(incident.reference, by_id, rows, zone_rows, zone_names)
    starts = {a.id: _start(a) for a in alerts}
    spans = {r["alert_id"]: (r["last_delivered_s"], r["last_answered_s"]) for r in rows
             if r["alert_id"] is not None and r["carrier"] is None}
    curves = report_figures.curves(session, [a for a in ids if starts[a] is not None], spans)
    _, head = read_head(session)
    actions = _actions(session, incident_id, ids, by_id, head.seq, unsealed=unsealed)
    asked = [a.id for a in alerts if a.kind is AlertKind.ALERT and starts[a.id] is not None]
    report = Report(
        incident=_incident_view(session, incident),
        generated_at=utcnow(),
        head={"seq": head.seq, "hash": head.hash_hex},
        alerts=_alert_views(session, alerts, starts, by_id),
        figures=figures,
        curves=_chart_data(alerts, starts, curves),
        replies={a: _reply_counts(session, a) for a in ids},
        helps=_helps(session, ids, by_id, actions),
        help_summary=_help_summary(session, ids),
        non_responders=_non_responders(session, alerts, figures, list_non_responders, non_responders_listed),
        silent_people=report_figures.silent_people(session, ids, asked),
        actions=actions,
        zones=zone_names,
        non_responders_listed=list_non_responders,
    )
    report.elapsed_s = round(time.perf_counter() - started, 3)
    return report


def attach_verification(report: Report, export_json: str, export_command: str) -> None:
    """Carry the incident's signed trail export (audit.export.write_export's JSON) and the line
    an auditor reads: the head, how many events, their digest, whether signed, and the command."""
    doc = json.loads(export_json)
    report.audit_export = doc
    report.head = {"seq": doc["head"]["seq"], "hash": doc["head"]["hash"]}  # the head the export stops at
    report.verification = {
        "head_seq": doc["head"]["seq"], "head_hash": doc["head"]["hash"], "events": doc["count"],
        "events_digest": doc["events_digest"], "signed": doc.get("mac") is not None, "scope": doc["scope"],
        "generated_at": doc["generated_at"], "command": export_command,
    }


def _start(alert: Alert) -> datetime | None:
    if alert.approved_at is None:
        return None
    if alert.scheduled_at is not None and alert.scheduled_at > alert.approved_at:
        return alert.scheduled_at
    return alert.approved_at


def _incident_view(session: Session, incident: Any) -> dict[str, Any]:
    names = _usernames(session, {incident.opened_by_id, incident.closed_by_id})
    return {"id": incident.id, "reference": incident.reference, "title": incident.title,
            "description": incident.description, "opened_at": incident.created_at,
            "opened_by": names.get(incident.opened_by_id), "closed_at": incident.closed_at,
            "closed_by": names.get(incident.closed_by_id)}


def _usernames(session: Session, ids: set[int | None]) -> dict[int | None, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return {i: n for i, n in session.execute(text("SELECT id, username FROM operators WHERE id = ANY(:ids)"),
                                             {"ids": wanted}).all()}


def _alert_views(session: Session, alerts: list[Alert], starts: dict[int, datetime | None],
                 by_id: dict[int, Alert]) -> list[dict[str, Any]]:
    names = _usernames(session, {a.composed_by_id for a in alerts} | {a.approved_by_id for a in alerts})
    first = min((s for s in starts.values() if s is not None), default=None)
    views = []
    for a in alerts:
        start = starts[a.id]
        original = by_id.get(a.corrects_alert_id) if a.corrects_alert_id else None
        if original is None and a.corrects_alert_id:
            original = session.get(Alert, a.corrects_alert_id)
        view = {"id": a.id, "reference": a.reference, "kind": a.kind.value, "mode": a.mode.value,
                "priority": a.priority.value, "state": a.state.value, "title": a.title, "sender": a.sender_name,
                "texts": a.texts, "corrects": original.reference if original else None,
                "composed_by": names.get(a.composed_by_id), "approved_by": names.get(a.approved_by_id),
                "created_at": a.created_at, "submitted_at": a.submitted_at, "approved_at": a.approved_at,
                "started_at": start, "first_submit_at": a.first_submit_at, "last_submit_at": a.last_submit_at,
                "completed_at": a.completed_at, "cancelled_at": a.cancelled_at, "reason": a.reason,
                "offset_s": round((start - first).total_seconds(), 3) if start and first else None,
                "first_sms_after_start_s": _seconds(start, a.first_submit_at)}
        if original is not None:  # how long the correction took: FIELD.md, time-to-correct
            view["decided_after_original_s"] = _seconds(_start(original), a.created_at)
            view["first_sms_after_decision_s"] = _seconds(a.created_at, a.first_submit_at)
        views.append(view)
    return views


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 3) if a is not None and b is not None else None


def _zones(session: Session, alerts: list[Alert]) -> tuple[list[ZoneRef], list[str]]:
    """The zone versions the incident's alerts went to (a correction: its original's audience)."""
    pairs: dict[tuple[str, int | None], None] = {}
    for a in alerts:
        source = a
        if a.kind is not AlertKind.ALERT and a.corrects_alert_id and not (a.target or {}).get("zones"):
            source = session.get(Alert, a.corrects_alert_id) or a
        recorded = (source.resolved or {}).get("zones") or []
        if recorded:
            for z in recorded:
                pairs.setdefault((z["name"], z.get("version")), None)
        else:
            for name in (source.target or {}).get("zones") or []:
                pairs.setdefault((name, None), None)
    refs: list[ZoneRef] = []
    for name, version in pairs:
        spec = targeting.TargetSpec(zones=[name], zone_versions={name: version} if version is not None else None)
        try:
            refs.extend(targeting.resolve(session, spec).zones)
        except NotFound:  # a zone version deleted since: the report goes on without it
            continue
    repeated = {r.name for r in refs if sum(1 for o in refs if o.name == r.name) > 1}
    return refs, [f"{r.name} v{r.version}" if r.name in repeated else r.name for r in refs]


def _figure_rows(reference: str, by_id: dict[int, Alert], rows: list[dict[str, Any]],
                 zone_rows: list[dict[str, Any]], zone_names: list[str]) -> list[dict[str, Any]]:
    def row(alert_id: int | None, breakdown: str, key: str, figures: dict[str, Any]) -> dict[str, Any]:
        alert = by_id.get(alert_id) if alert_id is not None else None
        return {"incident": reference, "scope": "alert" if alert else "incident", "alert_id": alert_id,
                "alert": alert.reference if alert else "", "kind": alert.kind.value if alert else "",
                "breakdown": breakdown, "key": key, **figures}

    out = []
    for r in rows:
        figures = {k: v for k, v in r.items() if k not in ("alert_id", "carrier")}
        out.append(row(r["alert_id"], "all" if r["carrier"] is None else "carrier", r["carrier"] or "", figures))
    for r in zone_rows:
        figures = {k: v for k, v in r.items() if k not in ("alert_id", "zone_no")}
        out.append(row(r["alert_id"], "zone", zone_names[r["zone_no"]], figures))
    order = {a: i for i, a in enumerate(by_id)}
    kinds = {"all": 0, "carrier": 1, "zone": 2}
    out.sort(key=lambda r: (r["alert_id"] is not None, order.get(r["alert_id"], -1), kinds[r["breakdown"]], r["key"]))
    return out


def _chart_data(alerts: list[Alert], starts: dict[int, datetime | None],
                curves: dict[int, report_figures.Curves]) -> dict[str, Any]:
    """What the charts draw: per alert, its delivery curve (all, then each carrier) and answer
    curve since its start; for the incident, each alert's curves on the incident's clock."""
    first = min((s for s in starts.values() if s is not None), default=None)
    per_alert, delivered, answered, offsets = {}, {}, {}, {}
    for a in alerts:
        c = curves.get(a.id)
        start = starts[a.id]
        if c is None or start is None or first is None:
            continue
        per_alert[str(a.id)] = {
            "reference": a.reference, "step_delivered_s": c.step_delivered_s, "step_answered_s": c.step_answered_s,
            "delivered": report_figures.aligned({"all": c.delivered, **c.delivered_by_carrier}),
            "answered": report_figures.aligned({"all": c.answered}),
        }
        delivered[a.reference] = c.delivered
        if a.kind is AlertKind.ALERT:  # a correction asks for no answer
            answered[a.reference] = c.answered
        offsets[a.reference] = (start - first).total_seconds()
    return {"alerts": per_alert,
            "incident": {"delivered": report_figures.aligned(delivered, offsets=offsets),
                         "answered": report_figures.aligned(answered, offsets=offsets)}}


def _reply_counts(session: Session, alert_id: int) -> dict[str, Any]:
    counts = live.alert_reply_counts(session, alert_id)
    return {k: counts.get(k, 0) for k in ("ack", "no", "help", "poll", "verified", "free_text", "unmatched")}


def _actions(session: Session, incident_id: int, ids: list[int], by_id: dict[int, Alert],
             head_seq: int, *, unsealed: bool) -> list[dict[str, Any]]:
    where, params = Scope(alert_ids=tuple(ids), incident_ids=(incident_id,)).sql()
    if unsealed:
        where = where.replace("e.seq <= :head", "(e.seq <= :head OR e.seq IS NULL)", 1)
    rows = session.execute(text(_ACTIONS.format(where=where)), {**params, "head": head_seq}).mappings().all()
    out = []
    for r in rows:
        alert_id = (int(r["subject_id"]) if r["subject_type"] == "alert" and str(r["subject_id"]).isdigit()
                    else int(r["payload_alert"]) if str(r["payload_alert"] or "").isdigit() else None)
        alert = by_id.get(alert_id) if alert_id is not None else None
        out.append({"seq": r["seq"], "at": r["at"], "actor": r["actor_name"], "actor_kind": r["actor_kind"],
                    "interface": r["origin_interface"], "action": r["action"], "outcome": r["outcome"],
                    "reason": r["reason"], "alert": alert.reference if alert else None,
                    "reply_id": int(r["reply_id"]) if str(r["reply_id"] or "").isdigit() else None})
    return out


def _helps(session: Session, ids: list[int], by_id: dict[int, Alert],
           actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    notes = {a["reply_id"]: a["reason"] for a in actions if a["action"] == "reply.help_handled" and a["reply_id"]}
    rows = session.execute(text(_HELPS), {"ids": ids}).mappings().all()
    return [{"reply_id": r["id"], "alert": by_id[r["alert_id"]].reference, "from": mask_msisdn(r["msisdn"]),
             "name": r["name"] or "", "text": r["text"] or "", "asked_at": r["created_at"],
             "handled_at": r["handled_at"], "handled_by": r["handled_by"],
             "handled_after_s": round(r["handled_after_s"], 1) if r["handled_after_s"] is not None else None,
             "note": notes.get(r["id"])} for r in rows]


def _help_summary(session: Session, ids: list[int]) -> dict[str, Any]:
    r = session.execute(text(_HELP_SUMMARY), {"ids": ids}).mappings().one()
    return {"helps": int(r["helps"]), "handled": int(r["handled"]), "open": int(r["helps"]) - int(r["handled"]),
            **{k: round(float(r[k]), 1) if r[k] is not None else None
               for k in ("handled_p50_s", "handled_p90_s", "handled_max_s")}}


def _non_responders(session: Session, alerts: list[Alert], figures: list[dict[str, Any]], listed: bool,
                    limit: int) -> dict[int, dict[str, Any]]:
    """Per alert (corrections ask no answer): how many, and (when `listed`) the first `limit`,
    numbers masked."""
    counts = {r["alert_id"]: r["non_responders"] for r in figures
              if r["scope"] == "alert" and r["breakdown"] == "all"}
    out = {}
    for a in alerts:
        if a.kind is not AlertKind.ALERT:
            continue
        entry: dict[str, Any] = {"count": counts.get(a.id) or 0, "rows": []}
        if listed:
            entry["rows"] = [{"delivery_id": r["delivery_id"], "number": mask_msisdn(r["msisdn"]),
                              "name": r["name"] or "", "state": r["state"]}
                             for r in live.non_responders(session, a.id, limit=limit)]
        out[a.id] = entry
    return out


def as_json(report: Report) -> dict[str, Any]:
    """The report as one JSON document (format FORMAT); the signed trail export under "audit_export"."""
    data = asdict(report)
    data["non_responders"] = {str(k): v for k, v in report.non_responders.items()}
    data["replies"] = {str(k): v for k, v in report.replies.items()}
    return json.loads(json.dumps({"format": FORMAT, **data}, default=_jsonable, ensure_ascii=False))


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def write_figures_csv(report: Report, out: TextIO) -> None:
    """The figures table as CSV (CSV_COLUMNS): a row for the incident and each alert, overall and
    per carrier and zone; times in seconds since the alert's start, empty: never reached."""
    writer = csv_cells.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in report.figures:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS])

