"""The dashboard shows every gateway's binds, and says so plainly when none is running."""

from __future__ import annotations

from broadcast.presence import publish
from tests.web.conftest import sign_in


def test_no_gateway_is_an_alarm_not_a_blank(client, people, db):
    sign_in(client, people("ana", "composer"), db)
    page = client.get("/").get_data(as_text=True)
    assert "No gateway worker is running" in page


def test_binds_and_breakers_of_every_gateway_are_listed(client, people, db, redis_db):
    health = {"alpha": {"test": True, "binds": {
        "alpha-1": {"state": "up", "breaker": "closed", "window": 100, "in_flight": 7, "tps": 2000.0,
                    "submitted": 12345, "last_error": ""},
        "alpha-2": {"state": "down", "breaker": "open", "window": 100, "in_flight": 0, "tps": 2000.0,
                    "submitted": 10, "last_error": "bind refused: ESME_RBINDFAIL"}}}}
    # The shape CarrierPool.health() publishes (the carriers under "carriers"): a record in another
    # shape hid a dashboard that answered 500 to every real gateway (tests/web/test_browser_markup.py).
    publish(redis_db, "gateway", "gw-1", {"health": {"carriers": health, "possible_duplicates": 0},
                                          "senders": {"SIRENA-SC": ["alpha"]}})
    sign_in(client, people("ana", "composer"), db)
    page = client.get("/").get_data(as_text=True)
    assert "alpha-1" in page and "alpha-2" in page
    assert "ESME_RBINDFAIL" in page and "12,345" in page
    assert "No gateway worker is running" not in page


def test_a_carrier_degraded_by_its_receipts_is_shown_with_the_reason(client, people, db):
    from sqlalchemy import text

    db.execute(text("INSERT INTO carrier_health (carrier, degraded, reason) "
                    "VALUES ('beta', true, '45% of receipts failed (others 2%)'), ('alpha', false, '')"))
    sign_in(client, people("ana", "composer"), db)
    page = client.get("/").get_data(as_text=True)
    assert "DEGRADADO según sus recibos, recibe menos tráfico: 45% of receipts failed (others 2%)" in page
    assert page.count("degraded-carrier") == 1
