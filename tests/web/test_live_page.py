"""The live alert page answers "how far, how fast, who needs help" (issue 20, item 3): its numbers,
this alert's unmatched replies (not the whole system's), the non-responders a page at a time and
as a CSV. Sent through the in-process gateway to the simulator; handsets answer through it."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import text

from alerting.base import csv_cells
from alerting.base.db import bind_sessions, engine, transaction
from alerting.interfaces.web.app import create_app
from tests.cluster import seed_group
from tests.web import console_world as town
from tests.web.test_console_language import _sign_in


@pytest.fixture
def sent(committed_db, redis_db, gateway, simulator, run_jobs):  # type: ignore[no-untyped-def]
    """120 people of `brigada` got alert A, 3 of `otros` got alert B; both completed."""
    bind_sessions(engine(), join_transaction_mode="conditional_savepoint")
    seeds = town.operators(committed_db)
    seed_group(120, group=town.GROUP, prefix="+5698")
    seed_group(3, group="otros", prefix="+5697")
    redacta, aprueba = town.actor("redacta"), town.actor("aprueba")
    ids = {}
    for name, group in (("a", town.GROUP), ("b", "otros")):
        ids[name] = town.compose(redacta, group=group)
        town.approve(ids[name], town.submit(ids[name], redacta), aprueba)
    town.pipeline(run_jobs, lambda: town.count("SELECT count(*) FROM alerts WHERE state = 'completed'") == 2)
    app = create_app(committed_db, configure_services=False)
    client = app.test_client()
    _sign_in(client, "jefa", seeds["jefa"])
    return client, ids


def _number(alert_id: int, n: int) -> str:
    with transaction() as db:
        return db.execute(text("SELECT msisdn FROM deliveries WHERE alert_id = :a ORDER BY id OFFSET :n LIMIT 1"),
                          {"a": alert_id, "n": n}).scalar_one()


def test_the_live_numbers_and_this_alerts_unmatched_replies(sent, simulator, run_jobs):  # type: ignore[no-untyped-def]
    client, ids = sent
    simulator.send_mo("alpha", _number(ids["a"], 0).lstrip("+"), "4242", "ACK")
    simulator.send_mo("alpha", _number(ids["a"], 1).lstrip("+"), "5555", "POLICIA se inunda la calle")
    simulator.send_mo("alpha", _number(ids["b"], 0).lstrip("+"), "5555", "POLICIA otra alerta")
    simulator.send_mo("alpha", "56977770000", "4242", "quien es usted")
    town.pipeline(run_jobs, lambda: town.count("SELECT count(*) FROM replies") == 4)

    live = client.get(f"/alerts/{ids['a']}/live.json").get_json()
    s = live["summary"]
    with transaction() as db:
        delivered = db.execute(text("SELECT count(*) FROM deliveries WHERE alert_id = :a AND state = 'delivered'"),
                               {"a": ids["a"]}).scalar_one()
    assert (s["recipients"], s["sent"], s["delivered"], s["ack"], s["help"]) == (120, 120, delivered, 1, 0)
    assert s["failed"] == 120 - delivered - live["counts"].get("submitted", 0)
    assert s["not_answered"] == 119 and s["waiting"] == 0
    # Its own unmatched reply only: not alert B's recipient's, not a stranger's.
    assert s["unmatched"] == 1 and [u["text"] for u in live["unmatched"]] == ["POLICIA se inunda la calle"]
    assert live["unmatched"][0]["reason"] == "unknown_keyword" and live["unmatched"][0]["to"] == "5555"
    other = client.get(f"/alerts/{ids['b']}/live.json").get_json()
    assert [u["text"] for u in other["unmatched"]] == ["POLICIA otra alerta"]
    # Carriers: who took what share, and how each is doing.
    rows = {c["carrier"]: c for c in live["carrier_rows"]}
    assert sum(c["handed"] for c in rows.values()) == 120
    assert sum(c["share"] for c in rows.values()) == pytest.approx(1.0)
    assert {c["health"] for c in rows.values()} <= {"ok", "unknown", "degraded", "silent", "down"}

    page = client.get(f"/alerts/{ids['a']}").get_data(as_text=True)
    assert re.search(r'data-key="recipients">120<', page) and 'aria-valuenow="120"' in page
    assert "POLICIA se inunda la calle" in page and "POLICIA otra alerta" not in page
    assert "100\u00a0%" in page  # Spanish writes a share with a (no-break) space


def test_non_responders_a_page_at_a_time_and_all_of_them_as_csv(sent, simulator, run_jobs):  # type: ignore[no-untyped-def]
    client, ids = sent
    with transaction() as db:  # a name a spreadsheet would run: the CSV must keep it text
        db.execute(text("UPDATE contacts SET name = '=HYPERLINK(\"http://x\")' WHERE msisdn = :m"),
                   {"m": _number(ids["a"], 5)})
    simulator.send_mo("alpha", _number(ids["a"], 0).lstrip("+"), "4242", "ACK")
    town.pipeline(run_jobs, lambda: town.count("SELECT count(*) FROM replies") == 1)

    shown, path = [], f"/alerts/{ids['a']}"
    while path:
        page = client.get(path).get_data(as_text=True)
        body = re.search(r'id="non-responders-table">.*?<tbody>(.*?)</tbody>', page, re.DOTALL).group(1)  # type: ignore[union-attr]
        shown.append(len(re.findall(r"<tr>", body)))
        nxt = re.search(r'<a href="([^"]+)" id="non-responders-next"', page)
        path = nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert shown == [50, 50, 19]  # 119 who have not answered, 50 a page

    csv_response = client.get(f"/alerts/{ids['a']}/non-responders.csv")
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    assert "attachment" in csv_response.headers["Content-Disposition"]
    raw = csv_response.get_data(as_text=True)
    rows = list(csv_cells.reader(io.StringIO(raw, newline="")))
    assert rows[0] == ["Alerta", "Envío", "Nombre", "Teléfono", "Estado"]  # the operator's language
    assert len(rows) == 120 and _number(ids["a"], 0) not in {r[3] for r in rows}
    assert {r[3] for r in rows[1:]} == {_number(ids["a"], n) for n in range(1, 120)}  # whole numbers: to phone
    assert "'=HYPERLINK" in raw and '=HYPERLINK("http://x")' in {r[2] for r in rows}  # not a formula
    with transaction() as db:
        exported = db.execute(text("SELECT actor_name FROM audit.events WHERE action = 'alert.non_responders_exported' "
                                   "AND subject_id = :a"), {"a": str(ids["a"])}).scalars().all()
    assert exported == ["jefa"]
