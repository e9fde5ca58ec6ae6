"""Templates and area bounds in the console: real app, real sign-in with TOTP, the operators' Spanish."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import text

from alerting.base.models import Alert, AlertState, MessageTemplate, TemplateState
from audit.actor import Actor
from geo.zones import import_geojson
from tests.factories import add_member
from tests.web.conftest import csrf_of, sign_in

TEXT_ES = "Ruta {ruta} cortada hasta las {hora}. Responda ACK {codigo}."


@pytest.fixture
def town(db, factories):
    factories.SenderFactory(name="SIRENA-SC")
    for name in ("bomberos", "otros"):
        group = factories.GroupFactory(name=name)
        for _ in range(3):
            add_member(db, group, factories.ContactFactory())
    square = [[[-70.70, -33.45], [-70.60, -33.45], [-70.60, -33.35], [-70.70, -33.35], [-70.70, -33.45]]]
    import_geojson(db, {"type": "Feature", "properties": {"name": "Comuna A"},
                        "geometry": {"type": "Polygon", "coordinates": square}}, actor=Actor.system("t"))


def _page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _signed(app, db, person):
    client = app.test_client()
    sign_in(client, person, db)
    return client


def _write(client) -> int:
    token = csrf_of(client, "/templates/new")
    r = client.post("/templates", data={
        "csrf_token": token, "name": "cierre-ruta", "title_es": "Cierre de ruta", "title_en": "Road closure",
        "text_es": TEXT_ES, "ph_name": ["ruta", "hora", ""], "ph_default": ["", "nuevo aviso", ""],
        "priority_hint": "flash", "action": "submit"})
    assert r.status_code == 303, _page(r)[-800:]
    return int(re.search(r"/templates/(\d+)$", r.headers["Location"]).group(1))


def _approve(client, db, person, template_id: int):
    token = csrf_of(client, f"/templates/{template_id}")
    seen = db.get(MessageTemplate, template_id).approval_hash
    db.refresh(person.operator)
    return client.post(f"/templates/{template_id}/approve", data={"csrf_token": token, "seen_hash": seen,
                                                                  "step_up_code": person.code()})


def test_a_template_is_written_and_approved_by_two_others_on_the_console(app, db, people, town):
    writer = people("escribe", "composer", "approver")
    author = _signed(app, db, writer)
    template_id = _write(author)
    page = _page(author.get(f"/templates/{template_id}"))
    assert "pendiente de aprobación" in page and "{hora}" in page and "nuevo aviso" in page
    assert 'id="author-note"' in page  # she holds the approver role, but wrote it
    r = _approve(author, db, writer, template_id)
    assert r.status_code == 403 and "un autor no puede aprobarla" in _page(r)
    first, second = people("ap-uno", "approver"), people("ap-dos", "approver")
    one, two = _signed(app, db, first), _signed(app, db, second)
    assert _approve(one, db, first, template_id).status_code == 303
    row = re.search(r'<tr class="template-row state-pending_approval" data-name="cierre-ruta">.*?</tr>',
                    _page(one.get("/templates")), re.S)
    assert row and "1 de 2" in row.group(0)
    r = _approve(two, db, second, template_id)
    assert r.status_code == 303
    assert "ya se ofrece al redactar" in _page(two.get(f"/templates/{template_id}"))  # the flash
    template = db.get(MessageTemplate, template_id)
    db.refresh(template)
    assert template.state is TemplateState.APPROVED
    listing = _page(author.get("/templates"))
    assert "cierre-ruta" in listing and "aprobada" in listing
    assert '<span lang="es">Evacuación</span>' in listing  # a seeded one's title in her language

    token = csrf_of(author, f"/templates/{template_id}/edit")
    r = author.post(f"/templates/{template_id}/edit", data={
        "csrf_token": token, "name": "cierre-ruta", "title_es": "Cierre de ruta", "text_es": TEXT_ES + " Gracias.",
        "ph_name": ["ruta", "hora"], "ph_default": ["", "nuevo aviso"], "priority_hint": "flash", "action": "save"})
    assert r.status_code == 303
    db.refresh(template)
    assert (template.state, template.version) == (TemplateState.DRAFT, 2)
    history = _page(author.get(f"/templates/{template_id}/history"))
    assert "Versión 2" in history and "Versión 1" in history and "ap-uno, ap-dos" in history
    refused = db.execute(text("SELECT actor_name, action FROM audit.events WHERE outcome = 'refused' "
                              "AND action = 'console.templates.approve'")).all()
    assert refused == [("escribe", "console.templates.approve")]


def test_the_form_comes_back_naming_each_bad_field(app, db, people, town):
    client = _signed(app, db, people("escribe2", "composer"))
    token = csrf_of(client, "/templates/new")
    r = client.post("/templates", data={"csrf_token": token, "name": "Mal Nombre", "text_es": "Vecino de {barrio}",
                                        "ph_name": ["nunca"], "ph_default": [""]})
    assert r.status_code == 422
    page = _page(r)
    assert "de 1 a 64 minúsculas" in page and "Vecino de {barrio}" in page  # what was typed is kept


def _approved_template(app, db, people) -> int:
    author = _signed(app, db, people("autora", "composer"))
    template_id = _write(author)
    for name in ("t-uno", "t-dos"):
        person = people(name, "approver")
        assert _approve(_signed(app, db, person), db, person, template_id).status_code == 303
    return template_id


def _compose_from(client, template_id: int, text_es: str, **extra):
    token = csrf_of(client, "/alerts/new")
    return client.post("/alerts", data={"csrf_token": token, "mode": "live", "sender": "SIRENA-SC",
                                        "priority": "flash", "groups": "bomberos", "template": str(template_id),
                                        f"tv-{template_id}-ruta": "68", "text_es": text_es,
                                        "confirm_live": "REAL 3", "action": "submit", **extra})


def test_compose_from_an_approved_template_needs_one_approver(app, db, people, town):
    template_id = _approved_template(app, db, people)
    composer = _signed(app, db, people("redacta", "composer"))
    form = _page(composer.get("/alerts/new"))
    assert f'<option value="{template_id}"' in form and f'name="tv-{template_id}-ruta"' in form
    filled = "Ruta 68 cortada hasta las nuevo aviso. Responda ACK {codigo}."
    r = _compose_from(composer, template_id, filled)
    assert r.status_code == 303, _page(r)[-1500:]
    alert = db.get(Alert, int(r.headers["Location"].rsplit("/", 1)[1]))
    assert (alert.template_id, alert.template_values) == (template_id, {"ruta": "68", "hora": "nuevo aviso"})
    assert alert.required_approvals == 1 and alert.state is AlertState.PENDING_APPROVAL
    checker = people("revisa", "approver")
    approver = _signed(app, db, checker)
    review = _page(approver.get(f"/alerts/{alert.id}/review"))
    assert "basta una aprobación" in review and "aprobaciones 0 de 1" in review
    token = csrf_of(approver, f"/alerts/{alert.id}/review")
    db.refresh(checker.operator)
    r = approver.post(f"/alerts/{alert.id}/approve", data={"csrf_token": token, "step_up_code": checker.code(),
                                                           "seen_hash": alert.approval_hash})
    assert r.status_code == 303
    db.refresh(alert)
    assert alert.state in (AlertState.APPROVED, AlertState.SENDING)

    changed = _compose_from(composer, template_id, "Ruta 68 cortada. EVACÚE YA. Responda ACK {codigo}.")
    other = db.get(Alert, int(changed.headers["Location"].rsplit("/", 1)[1]))
    assert other.required_approvals == 2  # flash, and not the template's words
    review = _page(approver.get(f"/alerts/{other.id}/review"))
    assert "su texto en es difiere del de la plantilla" in review and "aprobaciones habituales" in review
    empty = _compose_from(composer, template_id, "", **{f"tv-{template_id}-ruta": ""})
    assert empty.status_code == 422 and "obligatorio: este campo no tiene valor por defecto" in _page(empty)


@pytest.fixture
def bounded(app, db, people, town):
    """An admin bounds a composer and an approver to Comuna A and bomberos on the console."""
    boss = people("jefa", "admin")
    admin = _signed(app, db, boss)
    composer, approver = people("regional", "composer"), people("ap-regional", "approver")
    for person in (composer, approver):
        path = f"/admin/operators/{person.operator.id}/area"
        token = csrf_of(admin, path)
        db.refresh(boss.operator)
        r = admin.post(path, data={"csrf_token": token, "zones": "Comuna A", "groups": "bomberos",
                                   "step_up_code": boss.code(), "action": "set"})
        assert r.status_code == 303, _page(r)[-800:]
    listing = _page(admin.get("/admin/operators"))
    assert listing.count("zonas Comuna A · grupos bomberos") == 2
    return admin, composer, approver


def test_a_bounded_operator_is_refused_outside_their_area_on_the_console(app, db, people, bounded):
    _admin, composer, approver = bounded
    client = _signed(app, db, composer)
    assert "Limitado a un área: zonas Comuna A · grupos bomberos" in " ".join(
        re.sub(r"<[^>]+>", "", _page(client.get("/alerts/new"))).split())
    assert 'id="my-area"' in _page(client.get("/account/password"))
    token = csrf_of(client, "/alerts/new")
    r = client.post("/alerts", data={"csrf_token": token, "mode": "live", "sender": "SIRENA-SC", "priority": "high",
                                     "groups": ["bomberos", "otros"], "text_es": "Corte de agua",
                                     "confirm_live": "REAL 6"})
    assert r.status_code == 403 and "fuera de su área: grupos otros" in _page(r)
    r = client.post("/compose/preview", json={"target": {"groups": ["otros"]}}, headers={"X-CSRFToken": token})
    assert r.status_code == 403 and r.get_json()["code"] == "refused"
    assert client.post("/compose/preview", json={"target": {"groups": ["bomberos"]}},
                       headers={"X-CSRFToken": token}).get_json()["total"] == 3
    r = client.post("/alerts", data={"csrf_token": token, "mode": "live", "sender": "SIRENA-SC", "priority": "high",
                                     "groups": "bomberos", "text_es": "Corte de agua", "confirm_live": "REAL 3"})
    assert r.status_code == 303

    writer = _signed(app, db, people("central", "composer"))  # unbounded: writes for otros
    token = csrf_of(writer, "/alerts/new")
    r = writer.post("/alerts", data={"csrf_token": token, "mode": "live", "sender": "SIRENA-SC", "priority": "high",
                                     "groups": "otros", "text_es": "Corte de agua", "confirm_live": "REAL 3",
                                     "action": "submit"})
    alert = db.get(Alert, int(r.headers["Location"].rsplit("/", 1)[1]))
    checker = _signed(app, db, approver)
    token = csrf_of(checker, f"/alerts/{alert.id}/review")
    db.refresh(approver.operator)
    r = checker.post(f"/alerts/{alert.id}/approve", data={"csrf_token": token, "step_up_code": approver.code(),
                                                          "seen_hash": alert.approval_hash})
    assert r.status_code == 403 and "fuera de su área: grupos otros" in _page(r)
    db.refresh(alert)
    assert alert.state is AlertState.PENDING_APPROVAL
    refused = db.execute(text("SELECT action FROM audit.events WHERE outcome = 'refused' AND reason LIKE "
                              "'outside your area%' ORDER BY id")).scalars().all()
    assert refused == ["console.alerts.create", "console.alerts.preview", "console.alerts.approve"]


def test_an_admin_lifts_the_bounds_and_an_admin_cannot_be_bounded(app, db, people, bounded):
    _admin, composer, _ = bounded
    boss = db.execute(text("SELECT id FROM operators WHERE username = 'jefa'")).scalar_one()
    path = f"/admin/operators/{composer.operator.id}/area"
    person = people("jefa2", "admin")
    other = _signed(app, db, person)
    r = other.post(f"/admin/operators/{boss}/area", data={"csrf_token": csrf_of(other, path), "zones": "Comuna A",
                                                          "step_up_code": person.code(), "action": "set"})
    assert r.status_code == 422 and "los administradores no tienen límite" in _page(r)
    db.refresh(person.operator)
    r = other.post(path, data={"csrf_token": csrf_of(other, path), "step_up_code": person.code(),
                               "action": "clear"})
    assert r.status_code == 303
    assert "Sin límite" in _page(other.get(path))
    events = db.execute(text("SELECT action FROM audit.events WHERE action LIKE 'operator.area%' ORDER BY id"))
    assert events.scalars().all() == ["operator.area_set", "operator.area_set", "operator.area_cleared"]
