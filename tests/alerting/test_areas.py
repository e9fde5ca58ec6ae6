"""Operators bounded to an area: compose, edit, submit and approve refuse a target outside it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.alerts import drafts, lifecycle
from alerting.base.errors import InvalidInput, Refused
from alerting.base.models import AlertMode, AlertState, Priority
from alerting.directory import areas
from audit.actor import Actor
from geo.zones import import_geojson
from tests.factories import actor_for, add_member

SYSTEM = Actor.system("test")


def square(x0: float, y0: float, x1: float, y1: float) -> list:
    return [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]


def zone(db, name: str, coordinates: list) -> None:
    import_geojson(db, {"type": "Feature", "properties": {"name": name},
                        "geometry": {"type": "Polygon", "coordinates": coordinates}}, actor=SYSTEM)


@pytest.fixture
def region(db, factories):
    """Two neighbouring communes, a barrio inside the first, a strip across their border, groups,
    a bounded composer and a bounded approver (both of Comuna A), an unbounded approver, an admin."""
    factories.SenderFactory(name="SIRENA-SC")
    zone(db, "Comuna A", square(-70.70, -33.45, -70.60, -33.35))
    zone(db, "Comuna B", square(-70.60, -33.45, -70.50, -33.35))
    zone(db, "Barrio A1", square(-70.68, -33.44, -70.64, -33.40))
    zone(db, "Cruce", square(-70.62, -33.42, -70.58, -33.38))
    for name in ("brigada-a", "brigada-b"):
        group = factories.GroupFactory(name=name)
        for _ in range(2):
            add_member(db, group, factories.ContactFactory())
    db.execute(text("INSERT INTO contact_locations (contact_id, label, geom) SELECT id, 'home', "
                    "ST_SetSRID(ST_MakePoint(-70.66, -33.42), 4326) FROM contacts"))
    make = factories.OperatorFactory
    people = {"a": make(roles=["composer"]), "ab": make(roles=["composer"]), "ap_a": make(roles=["approver"]),
              "ap": make(roles=["approver"]), "admin": make(roles=["admin", "composer"])}
    admin = actor_for(people["admin"])
    areas.set_area(db, people["a"].id, ["Comuna A"], ["brigada-a"], admin)
    areas.set_area(db, people["ab"].id, ["Comuna A", "Comuna B"], [], admin)
    areas.set_area(db, people["ap_a"].id, ["Comuna A"], ["brigada-a"], admin)
    return {k: actor_for(v) for k, v in people.items()}


def _compose(db, who, target, mode=AlertMode.LIVE):
    return lifecycle.compose(db, drafts.AlertDraft(
        texts={"es": "Corte de agua"}, mode=mode, sender_name="SIRENA-SC", priority=Priority.NORMAL,
        target=target), who)


def test_a_bounded_composer_reaches_only_inside_their_zones_and_groups(db, region):
    a = region["a"]
    assert _compose(db, a, {"zones": ["Barrio A1"], "groups": ["brigada-a"]}).state is AlertState.DRAFT
    with pytest.raises(Refused) as caught:
        _compose(db, a, {"zones": ["Barrio A1", "Cruce", "Nowhere"], "groups": ["brigada-a", "brigada-b"]})
    assert caught.value.message == "outside your area: zones Cruce, Nowhere; groups brigada-b"
    assert caught.value.details["fields"] == {"target.zones": "outside your area: Cruce, Nowhere",
                                              "target.groups": "not assigned to you: brigada-b"}
    with pytest.raises(Refused, match="the whole directory"):
        _compose(db, a, {"criteria": {"attr": "unidad", "eq": "U1"}})
    with pytest.raises(Refused, match="zones Comuna B"):
        _compose(db, a, {"zones": ["Comuna B"]})


def test_the_union_of_their_zones_covers_a_zone_across_the_border(db, region):
    assert _compose(db, region["ab"], {"zones": ["Cruce"]}).state is AlertState.DRAFT
    with pytest.raises(Refused, match="groups brigada-a"):  # zones only: no group is assigned
        _compose(db, region["ab"], {"zones": ["Comuna A"], "groups": ["brigada-a"]})


def test_admins_and_the_system_stay_unbounded(db, region):
    assert _compose(db, region["admin"], {"criteria": {"attr": "unidad", "eq": "U1"}}).state is AlertState.DRAFT
    assert _compose(db, SYSTEM, {"zones": ["Comuna B"]}).state is AlertState.DRAFT


def test_an_edit_and_a_submission_are_held_to_the_area_too(db, region):
    alert = _compose(db, region["admin"], {"groups": ["brigada-b"]})
    with pytest.raises(Refused, match="groups brigada-b"):  # a bounded composer editing someone's draft
        lifecycle.edit(db, alert.id, {"texts": {"es": "Otro texto"}}, region["a"])
    mine = _compose(db, region["a"], {"groups": ["brigada-a"]})
    with pytest.raises(Refused, match="groups brigada-b"):
        lifecycle.edit(db, mine.id, {"target": {"groups": ["brigada-b"]}}, region["a"])
    with pytest.raises(Refused, match="groups brigada-b"):
        lifecycle.submit(db, alert.id, region["a"])


def test_a_bounded_approver_cannot_approve_outside_their_area(db, region):
    alert = _compose(db, region["admin"], {"groups": ["brigada-b"]})
    lifecycle.submit(db, alert.id, region["admin"])
    with pytest.raises(Refused, match="groups brigada-b"):
        lifecycle.approve(db, alert.id, region["ap_a"], seen_hash=alert.approval_hash)
    assert alert.state is AlertState.PENDING_APPROVAL
    inside = _compose(db, region["a"], {"groups": ["brigada-a"]})
    lifecycle.submit(db, inside.id, region["a"])
    lifecycle.approve(db, inside.id, region["ap_a"], seen_hash=inside.approval_hash)
    assert inside.state is AlertState.APPROVED
    lifecycle.approve(db, alert.id, region["ap"], seen_hash=alert.approval_hash)  # unbounded approver
    assert alert.state is AlertState.APPROVED


def test_setting_an_area_is_checked_and_audited(db, region, factories):
    admin, target = region["admin"], factories.OperatorFactory(roles=["composer"])
    with pytest.raises(InvalidInput) as caught:
        areas.set_area(db, target.id, ["Comuna Z"], ["nadie"], admin)
    assert caught.value.details["fields"] == {"zones": 'unknown zone "Comuna Z"', "groups": 'unknown group "nadie"'}
    with pytest.raises(InvalidInput, match="at least one zone or group"):
        areas.set_area(db, target.id, [], [" "], admin)
    with pytest.raises(InvalidInput, match="admins stay unbounded"):
        areas.set_area(db, region["admin"].operator_id, ["Comuna A"], [], admin)
    with pytest.raises(Refused, match="needs the admin role"):
        areas.set_area(db, target.id, ["Comuna A"], [], region["a"])
    areas.set_area(db, target.id, ["Comuna B", "Comuna A"], [], admin)
    assert areas.area_of(db, target.id) == areas.Area(["Comuna A", "Comuna B"], [])
    areas.clear_area(db, target.id, admin)
    assert areas.area_of(db, target.id) is None
    events = db.execute(text("SELECT action, payload FROM audit.events WHERE subject_type = 'operator' AND "
                             "subject_id = :i ORDER BY id"), {"i": str(target.id)}).all()
    assert [a for a, _ in events] == ["operator.area_set", "operator.area_cleared"]
    assert events[0][1]["after"] == {"zones": ["Comuna A", "Comuna B"], "groups": []}
    assert events[1][1]["before"] == {"zones": ["Comuna A", "Comuna B"], "groups": []}


def test_a_zone_is_judged_by_the_version_the_target_pins(db, region):
    zone(db, "Barrio A1", square(-70.68, -33.44, -70.55, -33.40))  # redrawn across the border: version 2
    with pytest.raises(Refused, match="zones Barrio A1"):
        _compose(db, region["a"], {"zones": ["Barrio A1"]})
    pinned = {"zones": ["Barrio A1"], "zone_versions": {"Barrio A1": 1}}
    assert _compose(db, region["a"], pinned).state is AlertState.DRAFT
