"""Groups and zones over the API: change, delete, remove members; refusals name the field and are audited."""

from __future__ import annotations

import pytest
from shapely.geometry import box
from sqlalchemy import select, text

from alerting.base.models import AlertState, Group, GroupKind
from geo.zones import save_zone


def _events(db, action: str, outcome: str = "done") -> list:  # type: ignore[no-untyped-def]
    return db.execute(text("SELECT actor_name, subject_type, subject_id, payload, reason FROM audit.events "
                           "WHERE action = :a AND outcome = :o ORDER BY id"), {"a": action, "o": outcome}).all()


@pytest.fixture
def admin(make_token):  # type: ignore[no-untyped-def]
    return make_token(("admin",), scopes=("read", "groups:write", "zones:write"))


@pytest.fixture
def brigadas(factories, db):  # type: ignore[no-untyped-def]
    group = factories.GroupFactory(name="brigadas", drill_allowed=True)
    for number in ("+56961234567", "+56961234568"):
        factories.add_member(db, group, factories.ContactFactory(msisdn=number))
    return group


def test_patch_changes_only_the_given_fields_and_is_audited(client, db, admin, factories):
    factories.GroupFactory(name="jefes", kind=GroupKind.DYNAMIC, criterion={"attr": "rol", "eq": "jefe"})
    response = client.patch("/api/v1/groups/jefes", headers=admin.headers,
                            json={"criterion": {"attr": "rol", "in": ["jefe", "subjefe"]}, "description": "mandos"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["criterion"] == {"attr": "rol", "in": ["jefe", "subjefe"]} and body["description"] == "mandos"
    assert body["drill_allowed"] is False and body["kind"] == "dynamic"
    (event,) = _events(db, "group.updated")
    assert event.actor_name.startswith(admin.username + "/")
    assert event.payload["before"]["criterion"] == {"attr": "rol", "eq": "jefe"}


def test_patch_names_the_bad_field(client, admin, brigadas):
    response = client.patch("/api/v1/groups/brigadas", headers=admin.headers, json={"criterion": {"attr": "rol"}})
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.get_json()["errors"] == [{"field": "criterion", "reason": "only for dynamic groups"}]
    response = client.patch("/api/v1/groups/brigadas", headers=admin.headers, json={"name": "otro"})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "name"
    assert client.patch("/api/v1/groups/nadie", headers=admin.headers, json={}).status_code == 404


def test_unmarking_a_drill_group_is_refused_while_a_drill_aims_at_it(client, db, admin, brigadas, factories):
    drill = factories.AlertFactory(mode="exercise", state=AlertState.APPROVED, target={"groups": ["brigadas"]})
    response = client.patch("/api/v1/groups/brigadas", headers=admin.headers, json={"drill_allowed": False})
    assert response.status_code == 403
    problem = response.get_json()
    assert problem["code"] == "refused" and problem["errors"][0]["field"] == "drill_allowed"
    assert drill.reference in problem["detail"]
    (refusal,) = _events(db, "api.api.update_group", "refused")
    assert (refusal.subject_type, refusal.subject_id) == ("group", str(brigadas.id))
    assert db.get(Group, brigadas.id).drill_allowed is True


def test_delete_is_refused_naming_the_alerts_until_they_finish(client, db, admin, brigadas, factories):
    pending = factories.AlertFactory(state=AlertState.PENDING_APPROVAL, target={"groups": ["brigadas"]})
    response = client.delete("/api/v1/groups/brigadas", headers=admin.headers)
    assert response.status_code == 403
    problem = response.get_json()
    assert problem["errors"] == [{"field": "group", "reason": f"still used by alert {pending.reference} "
                                                              "(pending_approval)"}]
    (refusal,) = _events(db, "api.api.delete_group", "refused")
    assert pending.reference in refusal.reason and refusal.actor_name.startswith(admin.username + "/")
    pending.state = AlertState.REJECTED
    db.flush()
    response = client.delete("/api/v1/groups/brigadas", headers=admin.headers)
    assert response.status_code == 200 and response.get_json() == {"deleted": True, "name": "brigadas", "members": 2}
    assert db.scalar(select(Group).where(Group.name == "brigadas")) is None
    assert [e.payload["members"] for e in _events(db, "group.deleted")] == [2]
    assert client.get("/api/v1/groups/brigadas", headers=admin.headers).status_code == 404


def test_remove_members_by_number(client, db, admin, brigadas, factories):
    factories.ContactFactory(msisdn="+56961234569")
    response = client.post("/api/v1/groups/brigadas/members/remove", headers=admin.headers,
                           json={"msisdns": ["9 6123 4567", "+56961234569"]})
    assert response.status_code == 200
    assert response.get_json() == {"removed": 1, "not_members": ["+56961234569"]}
    assert client.get("/api/v1/groups/brigadas", headers=admin.headers).get_json()["members"] == 1
    bad = client.post("/api/v1/groups/brigadas/members/remove", headers=admin.headers, json={"msisdns": ["123"]})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "phone"


def test_writes_need_their_scope(client, db, make_token, brigadas):
    reader = make_token(("admin",), scopes=("read",))
    assert client.delete("/api/v1/groups/brigadas", headers=reader.headers).status_code == 403
    assert client.patch("/api/v1/groups/brigadas", headers=reader.headers, json={}).status_code == 403
    assert client.delete("/api/v1/zones/Centro", headers=reader.headers).status_code == 403
    assert db.scalar(select(Group).where(Group.name == "brigadas")) is not None


def test_deleting_a_zone_keeps_its_versions_and_is_refused_while_in_use(client, db, admin, factories):
    save_zone(db, "Centro", box(-70.67, -33.46, -70.63, -33.43), "geojson")
    draft = factories.AlertFactory(state=AlertState.DRAFT, target={"zones": ["Centro"]})
    refused = client.delete("/api/v1/zones/Centro", headers=admin.headers)
    assert refused.status_code == 403 and refused.get_json()["errors"][0]["field"] == "zone"
    assert draft.reference in refused.get_json()["detail"]
    assert _events(db, "api.api.delete_zone", "refused")[0].subject_type == "zone"
    draft.state = AlertState.CANCELLED
    db.flush()
    response = client.delete("/api/v1/zones/Centro", headers=admin.headers)
    assert response.status_code == 200 and response.get_json() == {"deleted": True, "name": "Centro", "version": 1}
    assert client.get("/api/v1/zones", headers=admin.headers).get_json() == []
    assert client.get("/api/v1/zones/Centro", headers=admin.headers).status_code == 404
    assert _events(db, "zone.deleted")[0].actor_name.startswith(admin.username + "/")
    assert client.delete("/api/v1/zones/Centro", headers=admin.headers).status_code == 404


def test_a_token_never_outranks_its_operator(client, db, make_token, factories):
    """Issue 16: a composer's groups:write opened a public group to drills; auditors wrote the directory."""
    from alerting.base.errors import Refused
    from alerting.directory.accounts import create_token
    from audit.actor import Actor

    factories.GroupFactory(name="brigadas")
    composer = factories.OperatorFactory(roles=["composer"])
    with pytest.raises(Refused, match="scope groups:write needs the admin role") as refused:
        create_token(db, composer.username, ["read", "groups:write"], Actor.system("test"))
    assert refused.value.details["fields"] == {"scope": "scope groups:write needs the admin role"}
    auditor = factories.OperatorFactory(roles=["auditor"])
    for scope in ("contacts:write", "zones:write", "alerts:draft"):
        with pytest.raises(Refused, match=f"scope {scope} needs"):
            create_token(db, auditor.username, [scope], Actor.system("test"))
    reader = make_token(operator=auditor)  # every scope an auditor may hold: read
    assert client.get("/api/v1/contacts", headers=reader.headers).status_code == 403  # as the console refuses
    assert client.get("/api/v1/zones", headers=reader.headers).status_code == 403
    assert client.get("/api/v1/alerts", headers=reader.headers).status_code == 200
    writer = make_token(operator=composer)
    r = client.patch("/api/v1/groups/brigadas", json={"drill_allowed": True}, headers=writer.headers)
    assert r.status_code == 403
    assert client.get("/api/v1/groups/brigadas", headers=writer.headers).get_json()["drill_allowed"] is False


def _squares(n: int, *, vertices: int = 5) -> dict:
    """n small zones side by side (a FeatureCollection), each a ring of `vertices` positions."""
    import math

    features = []
    for i in range(n):
        x, y = -71.0 + (i % 100) * 0.01, -34.0 + (i // 100) * 0.01
        ring = [[x + 0.004 * math.cos(2 * math.pi * k / (vertices - 1)), y + 0.004 * math.sin(2 * math.pi * k /
                                                                                           (vertices - 1))]
                for k in range(vertices - 1)]
        features.append({"type": "Feature", "properties": {"name": f"manzana-{i:05d}"},
                         "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}})
    return {"type": "FeatureCollection", "features": features}


def test_a_zone_upload_beyond_the_request_limits_is_refused_naming_the_count(client, make_token, db):
    from alerting.base.models.zones import Zone

    admin = make_token(("admin",))
    r = client.post("/api/v1/zones", json={"geojson": _squares(26)}, headers=admin.headers)
    assert r.status_code == 422
    assert r.get_json()["errors"] == [{"field": "geojson", "reason": "26 features, at most 25"}]
    assert "sirena zones import" in r.get_json()["detail"]
    r = client.post("/api/v1/zones", json={"geojson": _squares(2, vertices=25_001)}, headers=admin.headers)
    assert r.status_code == 422 and "50,002 vertices, at most 50,000" in r.get_json()["errors"][0]["reason"]
    assert db.query(Zone).count() == 0
    r = client.post("/api/v1/zones", json={"geojson": _squares(25)}, headers=admin.headers)
    assert r.status_code == 201 and len(r.get_json()) == 25


def test_a_deeply_nested_or_oversized_body_is_a_422_naming_the_body(client, make_token):
    admin = make_token(("admin",))
    deep = b'{"geojson": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = client.post("/api/v1/zones", data=deep, content_type="application/json", headers=admin.headers)
    assert r.status_code == 422
    assert r.get_json()["errors"] == [{"field": "body", "reason": "nested deeper than 32 levels"}]
    big = b'{"geojson": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    r = client.post("/api/v1/zones", data=big, content_type="application/json", headers=admin.headers)
    assert r.status_code == 422 and r.get_json()["errors"] == [{"field": "body", "reason": "too large"}]
