"""Replies over the API that belong to no alert."""

from __future__ import annotations

from tests.factories import unmatched_world


def test_unmatched_replies_over_the_api_page_backwards(app, db, factories, make_token):
    ids = unmatched_world(db, factories)
    who = make_token(("auditor",), scopes=("read",))
    client = app.test_client()
    first = client.get("/api/v1/replies/unmatched?limit=2", headers=who.headers)
    assert first.status_code == 200, first.get_data(as_text=True)
    page = first.get_json()
    assert [i["id"] for i in page["items"]] == [ids["keyword"], ids["binary"]]
    binary = page["items"][1]
    assert (binary["msisdn_last4"], binary["text"], binary["reason"], binary["carrier"], binary["to"]) == (
        "5555", "(binary, 3 bytes, data_coding 0x04)", "unmatched_sender", "alpha", "4242")
    rest = client.get(f"/api/v1/replies/unmatched?limit=2&cursor={page['next_cursor']}", headers=who.headers)
    assert [i["id"] for i in rest.get_json()["items"]] == [ids["stranger"]]
    assert rest.get_json()["next_cursor"] is None
    assert client.get("/api/v1/replies/unmatched").status_code == 401
