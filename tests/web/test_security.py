"""Hardening: CSRF, default deny, headers on every response (the role matrix: test_authorization.py)."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import text

from alerting.interfaces.web.security import public
from tests.web.conftest import csrf_of, sign_in

ROLE_REFUSAL = "may not use this page"
HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control")


def _console_rules(app: Flask) -> list:
    return [r for r in app.url_map.iter_rules()
            if r.endpoint != "static" and r.endpoint.split(".")[0] not in app.config["SIRENA_SELF_AUTH_BLUEPRINTS"]]


def _url(rule, ids: dict[str, int]) -> str:
    return re.sub(r"<(?:int:)?(\w+)>", lambda m: str(ids[m.group(1)]), rule.rule)


def _assert_headers(response) -> None:
    for name in HEADERS:
        assert name in response.headers, f"{name} missing on {response.status_code}"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_role_refusals_are_audited(app, db, people):
    client = app.test_client()
    sign_in(client, people("aud", "auditor"), db)
    assert client.get("/alerts/new").status_code == 403
    from sqlalchemy import text

    row = db.execute(text("SELECT action, outcome, actor_name FROM audit.events WHERE outcome = 'refused' "
                          "ORDER BY seq DESC LIMIT 1")).one()
    assert row == ("console.alerts.new", "refused", "aud")


def test_post_without_csrf_token_is_refused_with_400(app, db, people):
    client = app.test_client()
    sign_in(client, people("cs", "composer"), db)
    r = client.post("/alerts", data={"mode": "test", "text_es": "hola"})
    assert r.status_code == 400
    _assert_headers(r)


def test_json_call_without_csrf_header_is_refused(app, db, people):
    client = app.test_client()
    sign_in(client, people("cj", "composer"), db)
    assert client.post("/compose/segments", json={"texts": {"es": "hola"}}).status_code == 400
    token = csrf_of(client, "/")
    r = client.post("/compose/segments", json={"texts": {"es": "hola"}}, headers={"X-CSRFToken": token})
    assert r.status_code == 200 and r.get_json()["es"]["encoding"] == "gsm7"


def test_a_route_without_an_access_rule_is_denied(app, db, people):
    app.add_url_rule("/undeclared", "undeclared", lambda: "secret")
    client = app.test_client()
    sign_in(client, people("dd", "admin"), db)
    r = client.get("/undeclared")
    assert r.status_code == 403 and "secret" not in r.get_data(as_text=True)


def test_only_the_methods_in_use_are_answered(client):
    assert client.options("/login").status_code == 405
    assert client.delete("/alerts").status_code == 405


def test_headers_on_404_405_and_500(app):
    def boom() -> str:
        raise RuntimeError("kaboom")

    app.add_url_rule("/boom", "boom", public(boom))
    client = app.test_client()
    for r, status in ((client.get("/no-such-page"), 404), (client.put("/login"), 405), (client.get("/boom"), 500)):
        assert r.status_code == status
        _assert_headers(r)
        assert r.headers["Cache-Control"] == "no-store"
    page = client.get("/boom").get_data(as_text=True)
    assert re.search(r"<code>[0-9a-f]{12}</code>", page) and "kaboom" not in page and "Traceback" not in page


def test_hsts_and_secure_cookie_behind_tls(app, db):
    client = app.test_client()
    r = client.get("/login", base_url="https://console.example")
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-sirena=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Strict-Transport-Security" not in client.get("/login").headers


def test_static_assets_are_served_by_the_app(client):
    for path in ("/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet-draw/leaflet.draw.js",
                 "/static/js/compose.js", "/static/css/console.css"):
        r = client.get(path)
        assert r.status_code == 200, path
        _assert_headers(r)


def test_open_redirects_are_refused(client, people, db):
    person = people("nx", "composer")
    token = csrf_of(client)
    client.post("/login", data={"csrf_token": token, "username": "nx", "password": person.password,
                                "next": "//evil.example/"})
    token = csrf_of(client, "/login/code")
    db.refresh(person.operator)
    r = client.post("/login/code", data={"csrf_token": token, "code": person.code()})
    assert r.headers["Location"] == "/"


def test_sign_in_rate_limit_counts_live_in_redis(client, redis_db):
    token = csrf_of(client)
    client.post("/login", data={"csrf_token": token, "username": "x", "password": "y"})
    keys = [k.decode() for k in redis_db.keys("*")]
    assert any("sirena-web" in k for k in keys), keys  # shared by every web process, not per-process memory
    assert any(k.startswith("sirena:signin:") for k in keys), keys


def test_a_configured_tile_server_is_the_only_extra_image_source(settings, db, redis_db):
    from alerting.interfaces.web.app import create_app

    app = create_app(settings, configure_services=False, tile_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png")
    csp = app.test_client().get("/login").headers["Content-Security-Policy"]
    assert "img-src 'self' https://*.tiles.example.org" in csp
    assert "script-src 'self';" in csp and "connect-src 'self'" in csp


def test_an_unrouted_api_path_gets_a_problem_document_not_a_console_page(client):
    r = client.get("/api/v1/alerts/%0A/cap")
    assert r.status_code == 404
    if r.mimetype != "text/html":  # the API package is installed: its problem+json shape
        assert r.mimetype == "application/problem+json"
    assert "X-Content-Type-Options" in r.headers


def test_a_rate_limited_client_is_audited_once_a_minute_with_the_rest_counted(client, db, redis_db):
    statuses = [client.get("/login").status_code for _ in range(125)]
    assert statuses.count(429) == 5  # PAGE_LIMIT: 120 a minute per address
    query = text("SELECT action, payload FROM audit.events WHERE outcome = 'refused' AND reason LIKE 'rate limit%' "
                 "ORDER BY id")
    events = db.execute(query).all()
    assert [e.action for e in events] == ["console.auth.login"]  # one event, not five
    assert events[0].payload["client"].startswith("address:") and events[0].payload["suppressed_before"] == 0
    window = list(redis_db.keys("sirena:audit-429:window:*"))
    assert len(window) == 1
    redis_db.delete(*window)  # the minute has passed
    assert client.get("/login").status_code == 429
    events = db.execute(query).all()
    assert len(events) == 2 and events[1].payload["suppressed_before"] == 4
