"""The console's self-registration pages: an admin publishes keywords and turns registration on, reads
the registrations filtered and paged, and exports them as CSV (audited); nobody else may."""

from __future__ import annotations

import io

from shapely.geometry import box
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.base import csv_cells
from alerting.base.models import Group, GroupKind
from alerting.directory import registration
from alerting.directory.registration_keywords import load_policy, publish_keyword, set_policy
from audit.actor import Actor
from geo.zones import save_zone
from tests.web.conftest import page_token, sign_in

SYSTEM = Actor.system("test")


def _town(db) -> None:  # type: ignore[no-untyped-def]
    save_zone(db, "Centro", box(-70.67, -33.46, -70.63, -33.43), "geojson")
    db.add(Group(name="brigadistas", kind=GroupKind.STATIC, description=""))
    db.add(Group(name="mayores", kind=GroupKind.DYNAMIC, criterion={"edad": {"gte": 65}}, description=""))
    db.flush()


def test_an_admin_publishes_a_keyword_and_turns_registration_on(client, people, db):
    _town(db)
    sign_in(client, people("adm", "admin"), db)
    page = client.get("/admin/registration").get_data(as_text=True)
    assert "Apagado: las solicitudes se guardan como rechazadas" in page  # off until an admin says
    assert 'value="zone:Centro"' in page and 'value="group:brigadistas"' in page
    assert 'value="group:mayores"' not in page  # a dynamic group has no members to join
    token = page_token(client, "/admin/registration")
    r = client.post("/admin/registration/keywords", data={"csrf_token": token, "keyword": "Centro",
                                                          "target": "zone:Centro", "description": "Casco histórico"})
    assert r.status_code == 303
    shown = client.get("/admin/registration").get_data(as_text=True)
    assert "CENTRO publicada: los vecinos pueden enviar ALTA CENTRO." in shown
    assert "zona Centro" in shown and "Casco histórico" in shown
    r = client.post("/admin/registration/policy", data={"csrf_token": token, "enabled": "1", "confirm_minutes": "90",
                                                         "per_hour": "4"})
    assert r.status_code == 303
    assert (load_policy(db).enabled, load_policy(db).confirm_within_s, load_policy(db).per_hour) == (True, 5400, 4)
    assert "Encendido" in client.get("/admin/registration").get_data(as_text=True)
    r = client.post("/admin/registration/keywords/CENTRO/unpublish", data={"csrf_token": token})
    assert r.status_code == 303 and "CENTRO retirada." in client.get("/admin/registration").get_data(as_text=True)
    actions = db.execute(text("SELECT action, actor_name FROM audit.events WHERE action LIKE 'registration.%' "
                              "ORDER BY id")).all()
    assert [tuple(a) for a in actions] == [("registration.keyword_published", "adm"),
                                           ("registration.policy_changed", "adm"),
                                           ("registration.keyword_unpublished", "adm")]


def test_a_bad_keyword_or_setting_comes_back_with_the_field_named_in_the_admins_language(client, people, db):
    _town(db)
    sign_in(client, people("adm", "admin"), db)
    token = page_token(client, "/admin/registration")
    r = client.post("/admin/registration/keywords", data={"csrf_token": token, "keyword": "baja",
                                                          "target": "zone:Centro", "description": ""})
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert 'id="error-keyword"' in body and "una palabra de respuesta como SI, NO o BAJA" in body
    assert 'value="baja"' in body  # what was typed is kept
    r = client.post("/admin/registration/policy", data={"csrf_token": token, "enabled": "1", "confirm_minutes": "0",
                                                        "per_hour": "3"})
    assert r.status_code == 422 and 'id="error-confirm_minutes"' in r.get_data(as_text=True)
    assert "un número entero de 1 a 43.200" in r.get_data(as_text=True)
    assert not load_policy(db).enabled


def test_registrations_are_listed_by_state_paged_and_exported_as_csv_audited(client, people, db, monkeypatch):
    from alerting.directory import registration_records

    _town(db)
    publish_keyword(db, "centro", zone="Centro", actor=SYSTEM)
    set_policy(db, enabled=True, per_hour=100, actor=SYSTEM)
    policy = load_policy(db)
    for i in range(5):
        registration.request_registration(db, registration.Request(f"+5697981000{i}", "alta", "es", "centro", "SC"),
                                          policy)
    registration.request_registration(db, registration.Request("+56979819999", "join", "en", "oeste", "SC"), policy)
    db.execute(text("UPDATE registrations SET expires_at = now() - interval '1 s' WHERE msisdn = '+56979810000'"))
    monkeypatch.setattr(registration_records, "PAGE", 2)
    sign_in(client, people("adm", "admin"), db)

    page = client.get("/admin/registration/requests").get_data(as_text=True)
    assert page.count('<tr class="state-') == 2 and 'id="next-page"' in page
    assert "+56979819999" in page and "rechazada" in page and "la palabra clave «OESTE» no está publicada" in page
    pending = client.get("/admin/registration/requests?state=pending").get_data(as_text=True)
    assert "esperando confirmación (4)" in pending and "vencida (1)" in pending
    older = client.get("/admin/registration/requests?state=pending&before=999999999").get_data(as_text=True)
    assert older.count('class="state-pending"') == 2
    expired = client.get("/admin/registration/requests?state=expired").get_data(as_text=True)
    assert expired.count('<tr class="state-') == 1 and "+56979810000" in expired
    found = client.get("/admin/registration/requests?q=9819999").get_data(as_text=True)
    assert found.count('<tr class="state-') == 1
    assert client.get("/admin/registration/requests?state=dormida").status_code == 422

    r = client.get("/admin/registration/requests.csv?state=pending")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv_cells.dict_reader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) == 4 and {row["state"] for row in rows} == {"pending"}
    assert "'+5697981000" in r.get_data(as_text=True)  # spreadsheet-safe: shown as text
    exported = db.execute(text("SELECT actor_name, payload->>'state' FROM audit.events "
                               "WHERE action = 'registration.exported'")).one()
    assert tuple(exported) == ("adm", "pending")


def test_only_an_admin_may_see_or_change_self_registration(client, people, db):
    _town(db)
    sign_in(client, people("redactora", "composer", "approver", "auditor"), db)
    for path in ("/admin/registration", "/admin/registration/requests", "/admin/registration/requests.csv"):
        assert client.get(path).status_code == 403
    token = page_token(client, "/")
    r = client.post("/admin/registration/keywords", data={"csrf_token": token, "keyword": "centro",
                                                          "target": "zone:Centro"})
    assert r.status_code == 403
    refused = db.execute(text("SELECT action FROM audit.events WHERE outcome = 'refused' ORDER BY id")).scalars().all()
    assert "console.registration.publish" in refused


def test_the_approver_sees_how_many_of_a_zones_recipients_registered_by_sms(client, people, db):
    from alerting.alerts.drafts import AlertDraft
    from alerting.base.models import AlertMode, Priority, Sender, SenderKind
    from tests.factories import actor_for

    _town(db)
    db.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True))
    ids = db.execute(text("INSERT INTO contacts (msisdn, name, language, attributes) VALUES "
                          "('+56979820001', '', 'es', '{}'), ('+56979820002', 'Vecina', 'es', '{}') RETURNING id"
                          )).scalars().all()
    db.execute(text("INSERT INTO zone_subscriptions (zone_name, contact_id) VALUES ('Centro', :c)"), {"c": ids[0]})
    db.execute(text("INSERT INTO contact_locations (contact_id, label, geom) VALUES "
                    "(:c, 'home', ST_SetSRID(ST_MakePoint(-70.66, -33.45), 4326))"), {"c": ids[1]})
    composer, approver = people("redacta", "composer"), people("aprueba", "approver")
    alert = lifecycle.compose(db, AlertDraft(texts={"es": "Corte de agua"}, mode=AlertMode.LIVE,
                                             sender_name="SIRENA-SC", priority=Priority.HIGH,
                                             target={"zones": ["Centro"]}), actor_for(composer.operator))
    lifecycle.submit(db, alert.id, actor_for(composer.operator))
    db.flush()
    sign_in(client, approver, db)
    review = client.get(f"/alerts/{alert.id}/review").get_data(as_text=True)
    assert '<span id="recipients-total">2</span>' in review
    assert "1 de ellos inscritos por SMS, sin ubicación" in review
