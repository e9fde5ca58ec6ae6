"""Replies in the console: the unmatched list and the alert page's long poll."""

from __future__ import annotations

import threading
from uuid import uuid4

from sqlalchemy import text

from alerting.base.db import transaction, utcnow
from alerting.directory.accounts import create_operator, decrypt_totp
from alerting.interfaces.web.app import create_app
from audit.actor import Actor
from tests.factories import unmatched_world
from tests.web.conftest import PASSWORD, Person, sign_in


def test_unmatched_replies_are_listed_for_the_operator_with_the_last_four_digits(app, db, people, factories):
    unmatched_world(db, factories)
    client = app.test_client()
    sign_in(client, people("aud-unmatched", "auditor"), db)
    page = client.get("/replies/unmatched")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "…9876" in body and "¿Qué pasa en el cerro?" in body and "<td>beta</td>" in body
    assert "(binary, 3 bytes, data_coding 0x04)" in body
    assert "…4321" in body and "POLICIA ACK" in body
    assert "56970009876" not in body  # strangers' numbers: last 4 digits only
    assert "…1111" not in body  # a reply that matched its alert is not unmatched
    assert body.index("…4321") < body.index("…9876")  # newest first
    assert 'href="/replies/unmatched"' in body  # reachable from the menu


# ---- the alert page's long poll, on a committed database (the reply lands from another connection) --------


def _operator(settings) -> Person:  # type: ignore[no-untyped-def]
    key = settings.secret_key()
    with transaction() as s:
        new = create_operator(s, f"watch-{uuid4().hex[:8]}", ["auditor"], key, Actor.system("test"), password=PASSWORD)
        new.operator.totp_enrolled_at = utcnow()
        s.flush()
        s.expunge(new.operator)
    return Person(new.operator, PASSWORD, decrypt_totp(new.operator.totp_secret_enc, key))  # type: ignore[arg-type]


def _sending_alert() -> tuple[int, int]:
    """An alert being sent, with one delivery handed to a carrier; returns (alert id, delivery id)."""
    from tests.broadcast.inbound_rig import seed_alert

    alert_id = seed_alert(["+56970100001"])
    with transaction() as s:
        delivery_id = s.execute(text("UPDATE deliveries SET state = 'submitted', carrier = 'alpha', "
                                     "submitted_at = now() WHERE alert_id = :a RETURNING id"),
                                {"a": alert_id}).scalar_one()
    return alert_id, delivery_id


def _reply_lands(alert_id: int, delivery_id: int, body: str) -> int:
    with transaction() as s:
        inbound = s.execute(text("INSERT INTO inbound_messages (kind, source_addr, destination_addr, text) "
                                 "VALUES ('mo', '56970100001', '4242', :t) RETURNING id"), {"t": body}).scalar_one()
        return s.execute(text("INSERT INTO replies (inbound_id, delivery_id, alert_id, msisdn, meaning, text) "
                              "VALUES (:i, :d, :a, '+56970100001', 'help', :t) RETURNING id"),
                         {"i": inbound, "d": delivery_id, "a": alert_id, "t": body}).scalar_one()


def _watching_client(settings):  # type: ignore[no-untyped-def]
    from alerting.base.db import bind_sessions, engine

    bind_sessions(engine(), join_transaction_mode="conditional_savepoint")  # see tests/web/test_browser.py
    app = create_app(settings, configure_services=False)
    client = app.test_client()
    sign_in(client, _operator(settings))
    return client


def test_the_live_poll_answers_as_soon_as_a_reply_lands(committed_db, redis_db):
    client = _watching_client(committed_db)
    alert_id, delivery_id = _sending_alert()
    first = client.get(f"/alerts/{alert_id}/live.json").get_json()  # no wait: at once, as before
    assert first["events"] == [] and first["version"]
    answered, landed = threading.Event(), []

    def replies_arrive() -> None:
        landed.append(_reply_lands(alert_id, delivery_id, "AYUDA, atrapados en el techo"))
        # Had the poll not woken for the first reply, it would answer at its deadline with both.
        if not answered.wait(15):
            landed.append(_reply_lands(alert_id, delivery_id, "second"))

    writer = threading.Thread(target=replies_arrive)
    writer.start()
    try:
        url = f"/alerts/{alert_id}/live.json?after={first['last_id']}&seen={first['version']}&wait=20"
        got = client.get(url).get_json()
    finally:
        answered.set()
        writer.join()
    assert [(e["id"], e["meaning"], e["text"]) for e in got["events"]] == [
        (landed[0], "help", "AYUDA, atrapados en el techo")]
    assert got["last_id"] == landed[0] and got["replies"]["help"] == 1 and got["version"] != first["version"]


def test_the_live_poll_answers_empty_when_nothing_happens_in_time(committed_db, redis_db):
    client = _watching_client(committed_db)
    alert_id, _ = _sending_alert()
    first = client.get(f"/alerts/{alert_id}/live.json").get_json()
    got = client.get(f"/alerts/{alert_id}/live.json?after={first['last_id']}&seen={first['version']}&wait=1")
    assert got.status_code == 200
    data = got.get_json()
    assert data["events"] == [] and data["last_id"] == first["last_id"] and data["version"] == first["version"]
    # A stale `seen` (something changed since the page's last answer) answers at once, with the news.
    assert client.get(f"/alerts/{alert_id}/live.json?seen=old&wait=20").get_json()["version"] == first["version"]
    assert client.get("/alerts/999999/live.json?wait=20").status_code == 404


# ---- the HELP desk: pinned on the dashboard and the alert page until someone marks it handled --------


def _signed_in(settings, *roles: str):  # type: ignore[no-untyped-def]
    from alerting.base.db import bind_sessions, engine

    bind_sessions(engine(), join_transaction_mode="conditional_savepoint")
    key = settings.secret_key()
    with transaction() as s:
        new = create_operator(s, f"desk-{uuid4().hex[:8]}", list(roles), key, Actor.system("test"), password=PASSWORD)
        new.operator.totp_enrolled_at = utcnow()
        s.flush()
        s.expunge(new.operator)
    client = create_app(settings, configure_services=False).test_client()
    sign_in(client, Person(new.operator, PASSWORD, decrypt_totp(new.operator.totp_secret_enc, key)))  # type: ignore[arg-type]
    return client, new.operator


def test_a_help_is_pinned_on_the_dashboard_and_its_alert_until_marked_handled(committed_db, redis_db):
    import re

    from tests.broadcast.inbound_rig import inbound_rig, process_all, seed_alert, send, wait_inbound

    composer, who = _signed_in(committed_db, "composer")
    auditor, _ = _signed_in(committed_db, "auditor")
    numbers = [f"+569797000{i:02d}" for i in range(12)]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers)
        send(gateway, alert_id)
        for number in numbers:
            sim.send_mo("alpha", number.lstrip("+"), "4242", "AYUDA, agua hasta el techo" if number == numbers[0]
                        else "AYUDA")
        wait_inbound(sim, 2 * len(numbers))
        process_all()
    with transaction() as s:
        first = s.execute(text("SELECT id FROM replies WHERE msisdn = :n"), {"n": numbers[0]}).scalar_one()

    dashboard = composer.get("/").get_data(as_text=True)
    start = dashboard.index('id="help-panel"')
    panel = dashboard[start:dashboard.index("</section>", start)]
    assert 'class="help-panel help-open"' in dashboard and '<span class="help-count" id="help-count">12</span>' in panel
    assert "AYUDA, agua hasta el techo" in panel and "+56979700000" in panel  # a composer reads the directory anyway
    assert f'action="/replies/{first}/handled"' in panel
    page = composer.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert page.index('id="help-panel"') < page.index('id="live"')  # at the top, above the counts
    lines = [int(n) for n in re.findall(r"<td><code>reply\.help</code> × (\d+)</td>", page)]
    assert len(lines) in (1, 2) and sum(lines) == 12  # one line a minute (the minute may turn mid-flood)
    on_the_board = auditor.get("/replies/help.json").get_json()
    assert on_the_board["total"] == 12 and on_the_board["helps"][-1]["number"] == "…0000"  # last 4 for an auditor

    refused = auditor.post(f"/replies/{first}/handled", data={"csrf_token": csrf(auditor), "next": "/"})
    assert refused.status_code == 403
    done = composer.post(f"/replies/{first}/handled", data={"csrf_token": csrf(composer), "note": "bomberos van",
                                                           "next": f"/alerts/{alert_id}"})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/alerts/{alert_id}")
    after = composer.get("/replies/help.json").get_json()
    assert after["total"] == 11 and first not in [h["id"] for h in after["helps"]]
    again = composer.post(f"/replies/{first}/handled", data={"csrf_token": csrf(composer), "next": "/"})
    assert again.status_code == 303  # said on the page: handled already, by whom
    assert f"marked handled by {who.username}" in composer.get("/").get_data(as_text=True)
    with transaction() as s:
        events = s.execute(text("SELECT action, outcome, actor_name, reason FROM audit.events "
                                "WHERE action IN ('reply.help_handled') OR (outcome = 'refused' AND "
                                "payload ->> 'path' = :p) ORDER BY id"), {"p": f"/replies/{first}/handled"}).all()
    assert [(e.action, e.outcome) for e in events][:1] == [("console.replies.help_handled", "refused")]
    assert ("reply.help_handled", "done", who.username, "bomberos van") in [tuple(e) for e in events]


def csrf(client) -> str:  # type: ignore[no-untyped-def]
    from tests.web.conftest import csrf_of

    return csrf_of(client, "/")
