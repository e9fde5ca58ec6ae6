"""The after-action report's figures, on deliveries and replies whose times are known exactly: the
times to 50/90/99 % delivered per alert, carrier, zone and for the incident, the answer times,
non-responders, HELP handling times and the curves."""

from __future__ import annotations

import io

import pytest

from alerting.alerts import report
from tests.alerting import report_world


@pytest.fixture
def incident(db, factories):  # type: ignore[no-untyped-def]
    return report_world.build(db, factories)


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
