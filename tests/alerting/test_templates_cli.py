"""`sirena templates …`, `sirena compose --template` and `sirena users bound`, as an operator runs them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from alerting.base.db import transaction
from alerting.base.models import Contact, ContactLocation, Group, GroupKind, GroupMember, Operator, Sender, SenderKind
from audit.actor import Actor
from geo.zones import import_geojson
from tests.conftest import cli_env
from tests.conftest import last_json_line as _json
from tests.conftest import run_sirena as _sirena

SQUARE = [[[-70.70, -33.45], [-70.60, -33.45], [-70.60, -33.35], [-70.70, -33.35], [-70.70, -33.45]]]
EAST = [[[-70.60, -33.45], [-70.50, -33.45], [-70.50, -33.35], [-70.60, -33.35], [-70.60, -33.45]]]


@pytest.fixture
def env(committed_db, tmp_path):  # type: ignore[no-untyped-def]
    from geoalchemy2.elements import WKTElement

    with transaction() as session:
        session.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True, test_route=True))
        for name in ("vecinos", "otros"):
            session.add(Group(name=name, kind=GroupKind.STATIC, drill_allowed=False, description=""))
        for username, roles in (("autora", ["composer"]), ("ap1", ["approver"]), ("ap2", ["approver"]),
                                ("ap3", ["approver"]), ("regional", ["composer"])):
            session.add(Operator(username=username, password_hash="x", roles=roles))
        for name, shape in (("Comuna A", SQUARE), ("Comuna B", EAST)):
            import_geojson(session, {"type": "Feature", "properties": {"name": name},
                                     "geometry": {"type": "Polygon", "coordinates": shape}}, actor=Actor.system("t"))
        session.flush()
        vecinos = session.query(Group).filter_by(name="vecinos").one()
        for i in range(3):
            contact = Contact(msisdn=f"+5691234000{i}", name=f"V{i}", language="es", attributes={})
            session.add(contact)
            session.flush()
            session.add(GroupMember(group_id=vecinos.id, contact_id=contact.id))
            session.add(ContactLocation(contact_id=contact.id, label="home",
                                        geom=WKTElement(f"POINT(-70.65 -33.4{i})", srid=4326)))
    return cli_env(committed_db, tmp_path)


def test_a_template_is_written_approved_by_two_others_and_composed_from_with_one_approver(env, tmp_path):
    made = _json(_sirena(env, "templates", "create", "cierre-ruta", "--title-es", "Cierre de ruta",
                         "--text-es", "Ruta {ruta} cortada. Responda ACK {codigo}.", "--placeholder", "ruta",
                         "--priority-hint", "flash", "--as", "autora", "--json"))
    assert (made["state"], made["version"], made["authors"]) == ("draft", 1, ["autora"])
    hash_ = _json(_sirena(env, "templates", "submit", "cierre-ruta", "--as", "autora", "--json"))["approval_hash"]
    own = _sirena(env, "templates", "approve", "cierre-ruta", "--seen-hash", hash_, "--as", "autora")
    assert own.returncode == 5 and "an author cannot approve it" in own.stderr
    stale = _sirena(env, "templates", "approve", "cierre-ruta", "--seen-hash", "0" * 64, "--as", "ap1")
    assert stale.returncode == 5 and "changed since it was shown" in stale.stderr
    first = _json(_sirena(env, "templates", "approve", "cierre-ruta", "--seen-hash", hash_, "--as", "ap1", "--json"))
    assert first["state"] == "pending_approval" and first["approvals"] == ["ap1"]
    second = _json(_sirena(env, "templates", "approve", "cierre-ruta", "--seen-hash", hash_, "--as", "ap2",
                           "--json"))
    assert second["state"] == "approved"
    shown = _sirena(env, "templates", "show", "cierre-ruta")
    assert "approvals: 2/2 (ap1, ap2)" in shown.stdout and "placeholder {ruta} (required)" in shown.stdout
    listed = _json(_sirena(env, "templates", "list", "--state", "approved", "--json"))["templates"]
    assert [t["name"] for t in listed] == ["cierre-ruta"]

    missing = _sirena(env, "compose", "--template", "cierre-ruta", "--mode", "live", "--group", "vecinos",
                      "--as", "autora")
    assert missing.returncode == 2 and "template_values.ruta: required" in missing.stderr
    alert = _json(_sirena(env, "compose", "--template", "cierre-ruta", "--set", "ruta=68", "--mode", "live",
                          "--group", "vecinos", "--as", "autora", "--submit", "--json"))
    assert alert["texts"] == {"es": "Ruta 68 cortada. Responda ACK {codigo}."} and alert["priority"] == "flash"
    assert (alert["state"], alert["required_approvals"], alert["template_version"]) == ("pending_approval", 1, 1)
    changed = _json(_sirena(env, "compose", "--template", "cierre-ruta", "--set", "ruta=68", "--text-es",
                            "Ruta 68 cortada. Evacúe.", "--mode", "live", "--group", "vecinos", "--as", "autora",
                            "--submit", "--json"))
    assert changed["required_approvals"] == 2  # a flash alert whose words are not the template's

    spec = tmp_path / "t.json"
    spec.write_text(json.dumps({"texts": {"es": "Ruta {ruta} cortada hasta nuevo aviso."}}))
    edited = _json(_sirena(env, "templates", "edit", "cierre-ruta", "--file", str(spec), "--as", "regional",
                            "--json"))
    assert (edited["state"], edited["version"], edited["authors"]) == ("draft", 2, ["autora", "regional"])
    history = _json(_sirena(env, "templates", "history", "cierre-ruta", "--json"))["versions"]
    assert [(v["version"], v["written_by"], v["approvers"]) for v in history] == [
        (2, "regional", []), (1, "autora", ["ap1", "ap2"])]
    draft = _sirena(env, "compose", "--template", "cierre-ruta", "--set", "ruta=5", "--mode", "live",
                    "--group", "vecinos", "--as", "autora")
    assert draft.returncode == 2 and "only an approved template can be used" in draft.stderr
    with transaction() as s:
        actions = s.execute(text("SELECT action, outcome FROM audit.events WHERE subject_type = 'template' "
                                 "OR action LIKE 'cli.templates%' ORDER BY id")).all()
    assert actions == [("template.created", "done"), ("template.submitted", "done"),
                       ("cli.templates.approve", "refused"), ("cli.templates.approve", "refused"),
                       ("template.approved", "done"), ("template.approved", "done"), ("template.edited", "done")]


def test_an_operator_bounded_by_the_cli_cannot_compose_outside_it(env):
    bounded = _json(_sirena(env, "users", "bound", "regional", "--zone", "Comuna A", "--group", "vecinos", "--json"))
    assert bounded == {"username": "regional", "bounded": True, "zones": ["Comuna A"], "groups": ["vecinos"]}
    assert "regional is bounded to zones Comuna A; groups vecinos" in _sirena(env, "users", "bound", "regional").stdout
    refused = _sirena(env, "compose", "--text-es", "Corte de agua", "--mode", "live", "--zone", "Comuna B",
                      "--group", "otros", "--as", "regional")
    assert refused.returncode == 5
    assert "outside your area: zones Comuna B; groups otros" in refused.stderr
    assert "target.zones: outside your area: Comuna B" in refused.stderr
    ok = _json(_sirena(env, "compose", "--text-es", "Corte de agua", "--mode", "live", "--zone", "Comuna A",
                       "--as", "regional", "--submit", "--json"))
    assert ok["state"] == "pending_approval"
    unknown = _sirena(env, "users", "bound", "regional", "--zone", "Comuna Z")
    assert unknown.returncode == 2 and 'unknown zone "Comuna Z"' in unknown.stderr
    assert _json(_sirena(env, "users", "bound", "regional", "--clear", "--json"))["bounded"] is False
    freed = _sirena(env, "compose", "--text-es", "Corte de agua", "--mode", "live", "--zone", "Comuna B",
                    "--as", "regional")
    assert freed.returncode == 0, freed.stderr
    with transaction() as s:
        actions = s.execute(text("SELECT split_part(action, '.', 1) || '.' || split_part(action, '.', 2), outcome "
                                 "FROM audit.events WHERE action LIKE 'operator.area%' OR action LIKE 'cli.compose%' "
                                 "ORDER BY id")).all()
    assert actions == [("operator.area_set", "done"), ("cli.compose", "refused"), ("operator.area_cleared", "done")]
