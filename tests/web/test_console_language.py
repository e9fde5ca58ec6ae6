"""One language per operator, everywhere (issue 20, item 5).

The crawl signs in an operator who holds every role, in a town with an alert in every state (real
pipeline, real replies: tests/web/console_world.py), and reads every console page, the error
pages, a form sent back with its errors and the flashes, first in Spanish and then in English
(switched by the operator on the console). On each page no string of the other language may show
(tests/web/console_text.py says how that is judged). Every GET route of the console is either read
or named as not a page.
"""

from __future__ import annotations

import contextlib
import os
import re
from urllib.parse import urlsplit

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from werkzeug.exceptions import HTTPException

from alerting.base.db import bind_sessions, engine, transaction
from alerting.base.errors import Refused
from alerting.base.models import Operator
from alerting.directory import accounts
from alerting.interfaces.web.app import create_app
from audit.actor import Actor
from tests.factories import actor_for
from tests.web import console_world
from tests.web.conftest import CSRF, sign_in
from tests.web.console_text import foreign, page_texts

DUMP = os.environ.get("SIRENA_DUMP_PAGES")  # print the live page's texts (for a person to read)
NOT_PAGES = {  # GET routes that answer data, not a page to read
    "static", "alerts.live", "alerts.points", "alerts.zones_geojson", "alerts.non_responders_csv", "auth.enrol_qr",
    "audit.export", "replies.help_json", "registration.requests_csv",
    "incidents.report_file",
}


@pytest.fixture
def town(committed_db, redis_db, gateway, simulator, run_jobs) -> tuple[Flask, console_world.World]:  # type: ignore[no-untyped-def]
    bind_sessions(engine(), join_transaction_mode="conditional_savepoint")
    world = console_world.build(committed_db, simulator, run_jobs)
    return create_app(committed_db, configure_services=False), world


def _sign_in(client: FlaskClient, name: str, seed: str) -> None:
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"csrf_token": token, "username": name, "password": console_world.PASSWORD})
    assert r.status_code == 303, r.get_data(as_text=True)[:300]
    token = CSRF.search(client.get("/login/code").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    r = client.post("/login/code", data={"csrf_token": token, "code": pyotp.TOTP(seed).now()})
    assert r.status_code == 303, r.get_data(as_text=True)[:300]


def _sign_in_pages(client: FlaskClient, name: str) -> list[str]:
    """The password page, and the code page it leads to (the sign-in is left there)."""
    login = client.get("/login").get_data(as_text=True)
    token = CSRF.search(login).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"csrf_token": token, "username": name, "password": console_world.PASSWORD})
    assert r.status_code == 303
    return [login, client.get("/login/code").get_data(as_text=True)]


def _token(client: FlaskClient) -> str:
    return CSRF.search(client.get("/account/password").get_data(as_text=True)).group(1)  # type: ignore[union-attr]


class Reader:
    """Reads pages as one operator, noting each page's foreign strings and the routes it read."""

    def __init__(self, app: Flask, client: FlaskClient, world: console_world.World, lang: str) -> None:
        self.app, self.client, self.world, self.lang = app, client, world, lang
        self.found: dict[str, list[tuple[str, str]]] = {}
        self.endpoints: set[str] = set()

    def read(self, path: str, status: int = 200, *, html: str | None = None, method: str = "GET") -> str:
        if html is None:
            response = self.client.get(path)
            assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:400])
            html = response.get_data(as_text=True)
        lang, texts = page_texts(html)
        assert lang == self.lang, (path, lang)
        hits = foreign(texts, self.lang, self.world.data)
        if hits:
            self.found[path] = hits
        adapter = self.app.url_map.bind("localhost")
        with contextlib.suppress(HTTPException):  # an error page's address matches no route
            self.endpoints.add(adapter.match(urlsplit(path).path, method=method)[0])
        return html

    def post(self, path: str, data: dict[str, str], status: int) -> str:
        response = self.client.post(path, data={"csrf_token": _token(self.client), **data})
        assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:400])
        return self.read(path, html=response.get_data(as_text=True), method="POST") if status != 303 else ""


def _read_everything(reader: Reader, world: console_world.World) -> None:
    alerts, groups = world.alerts, world.groups
    for path in ("/", "/alerts", "/alerts/new", "/approvals", "/replies/unmatched", "/directory/contacts",
                 "/directory/contacts/import", "/directory/groups", "/directory/zones", "/admin/operators",
                 "/admin/tokens", "/admin/senders", "/admin/registration", "/admin/registration/requests",
                 "/admin/registration/requests?state=refused", "/audit/timeline", "/audit/verify", "/account/password",
                 f"/audit/timeline?alert={alerts['completed']}", f"/alerts/{alerts['draft']}/edit",
                 f"/alerts/{alerts['pending_approval']}/review", f"/directory/groups/{groups[console_world.GROUP]}",
                 f"/directory/groups/{groups[console_world.DYNAMIC]}", "/templates", "/templates/new",
                 f"/templates/{world.templates['water']}", f"/templates/{world.templates['own']}",
                 f"/templates/{world.templates['own']}/edit", f"/templates/{world.templates['water']}/history",
                 f"/admin/operators/{_operator_id('revisa')}/area", f"/admin/operators/{_operator_id('redacta')}/area"):
        reader.read(path)
    for alert_id in alerts.values():
        reader.read(f"/alerts/{alert_id}")
    reader.read("/incidents")
    reader.read(f"/incidents/{world.incident_id}")
    first = reader.read(f"/alerts/{alerts['completed']}")
    nxt = re.search(r'<a href="([^"]+)" id="non-responders-next"', first)
    if nxt:
        reader.read(nxt.group(1).replace("&amp;", "&"))
    # error pages, a form sent back with its errors, a refused action, flashes
    reader.read("/no-such-page", 404)
    reader.read("/logout", 405)
    reader.read("/audit/timeline?alert=abc", 422)
    reader.post("/alerts", {"title": "x", "text_es": "hola"}, 422)  # no mode: the form again, by field
    reader.post(f"/alerts/{alerts['pending_approval']}/approve", {"seen_hash": "0" * 64, "step_up_code": "000000"},
                422)
    reader.post(f"/alerts/{alerts['completed']}/cancel", {"reason": ""}, 422)
    reader.post(f"/admin/operators/{_operator_id('jefa')}/roles", {"roles": "admin", "step_up_code": "000000"}, 422)
    reader.post("/templates", {"name": "Mal Nombre", "text_es": "Hola {barrio}"}, 422)  # the form again, by field
    reader.post("/admin/registration/keywords", {"keyword": "baja", "target": f"zone:{console_world.ZONE}"}, 422)
    reader.post("/admin/registration/policy", {"confirm_minutes": "0", "per_hour": "500"}, 422)
    reader.post(f"/alerts/{alerts['draft']}/submit", {}, 303)  # flashed: waits for approval
    reader.read(f"/alerts/{alerts['draft']}")
    reader.post(f"/admin/operators/{_operator_id('redacta')}/language", {"language": "en"}, 303)
    reader.read("/admin/operators")
    with transaction() as db:
        contact_id = db.execute(text("SELECT min(contact_id) FROM contact_numbers")).scalar_one()
    reader.read(f"/directory/contacts/{contact_id}")
    reader.post(f"/directory/contacts/{contact_id}/numbers", {"number2": "hola", "number3": "+56987000001"}, 422)


def _operator_id(name: str) -> int:
    with transaction() as db:
        return int(db.scalar(select(Operator.id).where(Operator.username == name)))  # type: ignore[arg-type]


def test_every_console_page_speaks_only_the_operators_language(town):  # type: ignore[no-untyped-def]
    app, world = town
    # Before sign-in: the browser's choice between the two, else Spanish; the code step too.
    for accept, lang in (("en-US,en;q=0.8", "en"), ("es-CL,es;q=0.9", "es"), ("fr", "es")):
        visitor = app.test_client()
        visitor.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept
        for html in _sign_in_pages(visitor, "revisa"):
            assert page_texts(html)[0] == lang, accept
            assert not foreign(page_texts(html)[1], lang), (accept, foreign(page_texts(html)[1], lang))
    client = app.test_client()
    _sign_in(client, "jefa", world.seeds["jefa"])
    readers = {}
    for lang in ("es", "en"):
        r = client.post("/account/language", data={"csrf_token": _token(client), "language": lang, "back": "/"})
        assert r.status_code == 303
        reader = readers[lang] = Reader(app, client, world, lang)
        _read_everything(reader, world)
        assert reader.found == {}, "\n".join(f"{lang} {path}: {hits[:6]}" for path, hits in reader.found.items())
    pages = {rule.endpoint for rule in app.url_map.iter_rules() if "GET" in rule.methods  # type: ignore[operator]
             and not rule.endpoint.startswith(("api", "probes"))}
    read = readers["es"].endpoints | {"auth.login", "auth.code"}
    assert pages - NOT_PAGES - read == set(), "console pages the crawl never read"
    # The judge has teeth: the English dashboard read as if it were Spanish is full of English.
    english = client.get("/").get_data(as_text=True)
    assert ">Dashboard</h1>" in english
    assert {"Dashboard", "In progress", "Waiting for approval"} <= {m for m, _ in foreign(page_texts(english)[1], "es")}
    client.post("/account/language", data={"csrf_token": _token(client), "language": "es", "back": "/"})
    assert ">Panel</h1>" in client.get("/").get_data(as_text=True)
    if DUMP:
        for lang in ("es", "en"):
            client.post("/account/language", data={"csrf_token": _token(client), "language": lang, "back": "/"})
            shown = client.get(f"/alerts/{world.alerts['completed']}").get_data(as_text=True)
            print(lang, " | ".join(page_texts(shown)[1]))
    with transaction() as db:
        changed = db.execute(text("SELECT actor_name, payload->>'username', payload->>'after' FROM audit.events "
                                  "WHERE action = 'operator.language_changed' ORDER BY id")).all()
    assert ("jefa", "redacta", "en") in changed and ("jefa", "jefa", "en") in changed  # by an admin; her own


def test_an_operator_may_set_only_their_own_language_and_the_refusal_is_audited(town):  # type: ignore[no-untyped-def]
    app, world = town
    with transaction() as db:
        redacta = actor_for(db.scalar(select(Operator).where(Operator.username == "redacta")))
        with pytest.raises(Refused, match="may not set another operator's language"):
            accounts.set_language(db, _operator_id("aprueba"), "en", redacta)
    client = app.test_client()
    _sign_in(client, "redacta", world.seeds["redacta"])
    r = client.post(f"/admin/operators/{_operator_id('aprueba')}/language",
                    data={"csrf_token": _token(client), "language": "en"})
    assert r.status_code == 403 and "no puede usar esta página" in r.get_data(as_text=True)
    with transaction() as db:
        assert db.scalar(select(Operator.language).where(Operator.username == "aprueba")) == "es"
        refused = db.execute(text("SELECT actor_name, action FROM audit.events WHERE outcome = 'refused' "
                                  "AND action LIKE '%set_language%'")).all()
    assert refused == [("redacta", "console.admin.set_language")]


def test_service_messages_reach_the_console_in_the_operators_words(app, db, people, client):  # type: ignore[no-untyped-def]
    """A refusal made of parts (a state, counts, a list of alerts) is translated part by part."""
    from flask import g

    from alerting.interfaces.web.i18n import translate_message

    with app.test_request_context():
        g.operator = type("Op", (), {"language": "es"})()
        assert translate_message("alert A-1 is sending, not pending approval") == \
            "la alerta A-1 está enviando, no pendiente de aprobación"
        assert translate_message('group "brigada" is still used by alerts A-1 (sending), A-2 (draft) and schedule '
                                 '"mensual"; finish, cancel or re-aim them first') == (
            'el grupo "brigada" está todavía en uso por las alertas A-1 (enviando), A-2 (borrador) y la '
            'programación "mensual"; termínelas, cancélelas o cámbieles el destino primero')
        assert translate_message("12,345 recipients is most of the directory (20,000 contacts)") == \
            "12.345 destinatarios es la mayor parte del directorio (20.000 contactos)"
        assert translate_message("something no catalogue holds") == "something no catalogue holds"
    with app.test_request_context():
        g.operator = type("Op", (), {"language": "en"})()
        assert translate_message("alert A-1 is sending, not pending approval") == \
            "alert A-1 is sending, not pending approval"


def test_an_admin_sets_an_operators_language_on_the_console(client, people, db):  # type: ignore[no-untyped-def]
    admin, other = people("adm", "admin"), people("lectora", "auditor")
    sign_in(client, admin, db)
    token = CSRF.search(client.get("/admin/operators").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    r = client.post(f"/admin/operators/{other.operator.id}/language", data={"csrf_token": token, "language": "en"})
    assert r.status_code == 303
    page = client.get("/admin/operators").get_data(as_text=True)
    assert "lectora ve ahora la consola en inglés." in page  # the admin's language, Spanish
    db.refresh(other.operator)
    assert other.operator.language == "en"
    r = client.post(f"/admin/operators/{other.operator.id}/language", data={"csrf_token": token, "language": "fr"})
    assert r.status_code == 422 and "idioma desconocido" in r.get_data(as_text=True)
    assert accounts.set_language(db, other.operator.id, "es", Actor.system("test")).language == "es"
