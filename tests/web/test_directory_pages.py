"""Directory pages: pasted members (bad lines by number), editing and deleting groups, deleting zones."""

from __future__ import annotations

import pytest
from shapely.geometry import box
from sqlalchemy import select, text

from alerting.base.models import AlertMode, AlertState, Group, GroupKind
from geo.zones import list_zones, save_zone
from tests.web.conftest import csrf_of, sign_in


def _events(db, action: str, outcome: str = "done") -> list:  # type: ignore[no-untyped-def]
    return db.execute(text("SELECT actor_name, subject_type, subject_id, payload, reason FROM audit.events "
                           "WHERE action = :a AND outcome = :o ORDER BY id"), {"a": action, "o": outcome}).all()


@pytest.fixture
def admin(app, db, people):  # type: ignore[no-untyped-def]
    client = app.test_client()
    person = people("jefa", "admin")
    person.operator.language = "en"
    db.flush()
    sign_in(client, person, db)
    return client


@pytest.fixture
def brigadas(db, factories):  # type: ignore[no-untyped-def]
    group = factories.GroupFactory(name="brigadas", drill_allowed=True)
    for number in ("+56961234567", "+56961234568"):
        factories.ContactFactory(msisdn=number)
    factories.add_member(db, group, factories.ContactFactory(msisdn="+56961234569"))
    return group


def _post(client, path: str, page: str, **data):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_of(client, page), **data})


def _members(db, group) -> list[str]:  # type: ignore[no-untyped-def]
    return list(db.scalars(text("SELECT c.msisdn FROM group_members m JOIN contacts c ON c.id = m.contact_id "
                                "WHERE m.group_id = :g ORDER BY 1"), {"g": group.id}))


def test_pasted_numbers_with_a_bad_line_change_nothing_and_name_the_line(admin, db, brigadas):
    page = f"/directory/groups/{brigadas.id}"
    pasted = "+56 9 6123 4567\n961234568\n12345\n"
    r = _post(admin, f"{page}/members/add", page, numbers=pasted)
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "line 3" in body and "too short" in body and "+56 9 6123 4567\n961234568\n12345" in body  # kept
    assert _members(db, brigadas) == ["+56961234569"]
    r = _post(admin, f"{page}/members/add", page, numbers=pasted.replace("12345\n", ""))
    assert r.status_code == 303
    assert _members(db, brigadas) == ["+56961234567", "+56961234568", "+56961234569"]
    assert "2 new member(s) of 2 number(s)." in admin.get(page).get_data(as_text=True)
    assert _events(db, "group.members_added")[0].payload["added"] == 2


def test_pasted_numbers_are_removed_and_non_members_are_shown(admin, db, brigadas):
    page = f"/directory/groups/{brigadas.id}"
    r = _post(admin, f"{page}/members/remove", page, numbers="+56961234569\n+56961234567\n")
    assert r.status_code == 303
    shown = admin.get(page).get_data(as_text=True)
    assert "1 member(s) removed." in shown and "Not members, nothing to remove: +56961234567" in shown
    assert _members(db, brigadas) == []
    (event,) = _events(db, "group.members_removed")
    assert event.actor_name == "jefa" and event.payload["numbers"] == ["+56961234569"]


def test_editing_a_dynamic_group_saves_the_criterion_and_a_bad_one_is_shown_by_its_field(admin, db, factories):
    group = factories.GroupFactory(name="jefes", kind=GroupKind.DYNAMIC, criterion={"attr": "rol", "eq": "jefe"})
    page = f"/directory/groups/{group.id}"
    r = _post(admin, f"{page}/edit", page, description="mandos", criterion='{"attr": "rol", "in": "jefe"}')
    assert r.status_code == 422 and "criterion.in" in r.get_data(as_text=True)
    r = _post(admin, f"{page}/edit", page, description="mandos", drill_allowed="1",
              criterion='{"attr": "rol", "in": ["jefe", "subjefe"]}')
    assert r.status_code == 303
    db.refresh(group)
    assert group.criterion == {"attr": "rol", "in": ["jefe", "subjefe"]} and group.drill_allowed
    assert group.description == "mandos"
    assert _events(db, "group.updated")[0].payload["after"]["drill_allowed"] is True


def test_deleting_a_group_needs_its_name_typed_and_is_refused_while_an_alert_uses_it(admin, db, brigadas,
                                                                                  factories):
    page = f"/directory/groups/{brigadas.id}"
    drill = factories.AlertFactory(mode=AlertMode.EXERCISE, state=AlertState.SCHEDULED,
                                   target={"groups": ["brigadas"]})
    assert drill.reference in admin.get(page).get_data(as_text=True)  # "in use by" shows it before anyone tries
    r = _post(admin, f"{page}/delete", page, confirm="brigada")
    assert r.status_code == 422 and "type brigadas to confirm" in r.get_data(as_text=True)
    r = _post(admin, f"{page}/delete", page, confirm="brigadas")
    assert r.status_code == 403 and drill.reference in r.get_data(as_text=True)
    (refusal,) = _events(db, "console.directory.group_delete", "refused")
    assert (refusal.subject_type, refusal.subject_id) == ("group", str(brigadas.id))
    drill.state = AlertState.CANCELLED
    db.flush()
    r = _post(admin, f"{page}/delete", page, confirm="brigadas")
    assert r.status_code == 303 and r.headers["Location"].endswith("/directory/groups")
    assert db.scalar(select(Group).where(Group.name == "brigadas")) is None
    assert _events(db, "group.deleted")[0].payload["members"] == 1
    assert admin.get(page).status_code == 404


def test_deleting_a_zone_is_refused_while_in_use_then_retires_it(admin, db, factories):
    save_zone(db, "Centro", box(-70.67, -33.46, -70.63, -33.43), "geojson")
    sending = factories.AlertFactory(state=AlertState.SENDING, target={"zones": ["Centro"]})
    r = _post(admin, "/directory/zones/delete", "/directory/zones", name="Centro", confirm="Centro")
    assert r.status_code == 403 and sending.reference in r.get_data(as_text=True)
    assert _events(db, "console.directory.zone_delete", "refused")[0].subject_type == "zone"
    sending.state = AlertState.COMPLETED
    db.flush()
    r = _post(admin, "/directory/zones/delete", "/directory/zones", name="Centro", confirm="Centro")
    assert r.status_code == 303
    assert list_zones(db) == [] and _events(db, "zone.deleted")[0].actor_name == "jefa"


def test_only_admins_see_the_forms_and_spanish_operators_read_spanish(app, db, people, brigadas):
    composer = app.test_client()
    sign_in(composer, people("compo", "composer"), db)  # language "es", the default
    page = composer.get(f"/directory/groups/{brigadas.id}").get_data(as_text=True)
    assert "Miembros" in page and "members/add" not in page and "Eliminar grupo" not in page
    admin = app.test_client()
    sign_in(admin, people("admin-es", "admin"), db)
    page = admin.get(f"/directory/groups/{brigadas.id}").get_data(as_text=True)
    assert "Agregar miembros" in page and "Quitar miembros" in page and "Eliminar grupo" in page
    r = _post(admin, f"/directory/groups/{brigadas.id}/members/remove", f"/directory/groups/{brigadas.id}",
              numbers="+56961234569")
    assert "1 miembro(s) quitado(s)." in admin.get(r.headers["Location"]).get_data(as_text=True)


def test_a_zone_file_beyond_the_request_limits_is_refused_before_anything_is_saved(admin, db):
    import io
    import json

    from tests.api.test_directory import _squares

    def upload(payload: bytes):  # type: ignore[no-untyped-def]
        return admin.post("/directory/zones", data={"csrf_token": csrf_of(admin, "/directory/zones"),
                                                    "file": (io.BytesIO(payload), "manzanas.geojson")},
                          content_type="multipart/form-data")

    r = upload(json.dumps(_squares(26)).encode())
    assert r.status_code == 422 and "26 zones in one request; at most 25" in r.get_data(as_text=True)
    r = upload(b" " * (5 * 1024 * 1024 + 1))
    assert r.status_code == 422 and "larger than 5,242,880 bytes" in r.get_data(as_text=True)
    r = upload(b"[" * 100_000)
    assert r.status_code == 422 and "nested" in r.get_data(as_text=True)
    assert list_zones(db) == []
    r = upload(json.dumps(_squares(3)).encode())
    assert r.status_code == 303 and len(list_zones(db)) == 3


def test_the_compose_pages_json_calls_and_fields_refuse_deep_nesting_by_name(app, db, people):
    client = app.test_client()
    sign_in(client, people("comp", "composer"), db)
    token = csrf_of(client, "/alerts/new")
    r = client.post("/compose/preview", data=b"[" * 100_000, content_type="application/json",
                    headers={"X-CSRFToken": token})
    assert r.status_code == 422 and r.get_json()["code"] == "invalid_input"  # the code stays English
    assert r.get_json()["details"]["fields"] == {"body": "anidado en más de 32 niveles"}  # the words are hers
    r = client.post("/alerts", data={"csrf_token": token, "mode": "test", "criteria": "[" * 2_000})
    assert r.status_code == 422 and "anidado en más de 32 niveles" in r.get_data(as_text=True)
