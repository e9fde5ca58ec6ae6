"""The authorization table (alerting/directory/permissions.py) against what the running app really does.

Generated from `app.url_map`: every console route and every REST API route, for every role, is
requested for real (the console signed in with a real password and TOTP code; the API with a
token holding every scope that role may hold), and whether the table refused it is compared
with `permissions.ACTIONS`. Each (route, method, role) is one cell; every cell is checked.

ROUTE_ACTIONS pins which action each route declares: moving a page to a laxer action is a
change a reviewer must see here, while who may do an action is said once, in the table.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import text

from alerting.alerts.incidents import open_incident
from alerting.base.models import AlertState, Role
from alerting.directory import permissions
from alerting.directory.accounts import create_token, set_roles
from alerting.interfaces.api.framework import OPERATIONS
from audit.actor import Actor
from tests.web.conftest import csrf_of, sign_in

ROLES = tuple(r.value for r in Role)
CONSOLE_REFUSAL = "no puede usar esta página"  # the operators read Spanish, the default
PUBLIC = None
# Console endpoint → the action it declares (PUBLIC: no sign-in).
ROUTE_ACTIONS: dict[str, str | None] = {
    "auth.login": PUBLIC, "auth.code": PUBLIC, "auth.enrol_qr": PUBLIC,
    "auth.logout": "account.own", "auth.password_form": "account.own", "auth.password_change": "account.own",
    "auth.set_language": "account.own", "auth.revoke_other_sessions": "account.own",
    "console.dashboard": "dashboard.view", "alerts.zones_geojson": "zones.map",
    "alerts.index": "alerts.read", "alerts.detail": "alerts.read", "alerts.live": "alerts.read",
    "alerts.points": "alerts.read", "alerts.non_responders_csv": "alerts.non_responders",
    "alerts.new": "alerts.compose", "alerts.create": "alerts.compose", "alerts.edit": "alerts.compose",
    "alerts.update": "alerts.compose", "alerts.submit": "alerts.submit",
    "alerts.segments": "alerts.preview", "alerts.preview": "alerts.preview",
    "alerts.approvals": "alerts.approve", "alerts.review_page": "alerts.approve", "alerts.approve": "alerts.approve",
    "alerts.reject": "alerts.reject", "alerts.cancel": "alerts.cancel", "alerts.correction": "alerts.correct",
    "alerts.correction_proposal": "alerts.propose_correction", "alerts.escalate": "alerts.escalate",
    "alerts.answer": "replies.answer", "replies.unmatched": "replies.read_unmatched",
    "replies.help_json": "dashboard.view", "replies.help_handled": "replies.handle_help",
    "directory.contacts": "directory.read", "directory.groups": "directory.read",
    "directory.zone_list": "directory.read", "directory.group_detail": "directory.read",
    "directory.import_form": "contacts.write", "directory.import_upload": "contacts.write",
    "directory.opt_out": "contacts.write", "directory.create_group": "groups.write",
    "directory.contact_detail": "directory.read", "directory.contact_numbers_save": "contacts.write",
    "directory.group_edit": "groups.write", "directory.group_members_add": "groups.write",
    "directory.group_members_remove": "groups.write", "directory.group_delete": "groups.write",
    "directory.zone_import": "zones.write", "directory.zone_delete": "zones.write",
    "admin.operators": "operators.manage", "admin.create_operator": "operators.manage",
    "admin.unlock": "operators.manage", "admin.disable": "operators.manage", "admin.set_roles": "operators.manage",
    "admin.set_language": "operators.manage",
    "admin.reset_mfa": "operators.manage", "admin.tokens": "tokens.manage", "admin.create_token": "tokens.manage",
    "admin.revoke_token": "tokens.manage", "admin.senders": "senders.read",
    "registration.keywords_page": "registration.manage", "registration.publish": "registration.manage",
    "registration.unpublish": "registration.manage", "registration.policy": "registration.manage",
    "registration.requests_page": "registration.manage", "registration.requests_csv": "registration.manage",
    "audit.timeline": "audit.read", "audit.verify": "audit.read", "audit.export": "audit.read",
    "templates.index": "templates.read", "templates.detail": "templates.read", "templates.history": "templates.read",
    "templates.new": "templates.write", "templates.create": "templates.write", "templates.edit": "templates.write",
    "templates.update": "templates.write", "templates.submit": "templates.write", "templates.retire": "templates.write",
    "templates.approve": "templates.approve", "templates.reject": "templates.approve",
    "areas.operator_area": "operators.manage", "areas.set_operator_area": "operators.manage",
    "incidents.index": "incidents.read", "incidents.report_page": "incidents.read",
    "incidents.report_file": "incidents.read", "incidents.open_incident": "incidents.manage",
    "incidents.add_alert": "incidents.manage", "incidents.add_from_alert": "incidents.manage",
    "incidents.remove_alert": "incidents.manage", "incidents.close": "incidents.manage",
}
# Actions no route declares (checked): the services check them for the CLI, e-mail, CAP and the
# compose form's drawn zone.
SERVICE_ONLY = {"schedules.resume", "schedules.delete", "webhooks.manage", "zones.draw"}


def _rules(app: Flask, api: bool) -> list:
    self_auth = app.config["SIRENA_SELF_AUTH_BLUEPRINTS"]
    return sorted((r for r in app.url_map.iter_rules() if r.endpoint != "static"
                   and (r.endpoint.split(".")[0] in self_auth) == api),
                  key=lambda r: (r.endpoint == "auth.logout", r.rule))  # sign out last


def _cells(rules: list) -> list[tuple]:
    return [(rule, method) for rule in rules for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]


def _url(rule, ids: dict[str, int]) -> str:
    def value(m: re.Match) -> str:
        converter, name = m.group(1), m.group(2)
        return str(ids.get(name, 999_999)) if converter in (None, "int") and name.endswith("_id") else "nada"

    return re.sub(r"<(?:(\w+):)?(\w+)>", value, rule.rule)


def _operations() -> dict[str, object]:
    return {f"api.{op.endpoint}": op for op in OPERATIONS}


@pytest.fixture
def world(db, factories, people):
    """Real rows for the ids in the URLs: a pending alert by another composer, an operator, a token, a group."""
    victim = people("victim", "composer")
    composer = factories.OperatorFactory(roles=["composer"])
    alert = factories.AlertFactory(state=AlertState.PENDING_APPROVAL, composed_by_id=composer.id)
    row, _ = create_token(db, "victim", ["read"], Actor.system("test"))
    group = factories.GroupFactory()
    template_id = db.execute(text("SELECT min(id) FROM message_templates")).scalar_one()  # a seeded one
    incident = open_incident(db, "incendio", Actor.system("test"))
    contact = factories.ContactFactory()
    return {"alert_id": alert.id, "operator_id": victim.operator.id, "token_id": row.id, "reply_id": 1,
            "group_id": group.id, "template_id": template_id, "incident_id": incident.id, "contact_id": contact.id}


def test_every_route_declares_the_action_pinned_here_and_every_action_is_used(app):
    console = {r.endpoint: getattr(app.view_functions[r.endpoint], "_sirena_access", None)
               for r in _rules(app, api=False)}
    assert set(console) == set(ROUTE_ACTIONS), f"new: {set(console) - set(ROUTE_ACTIONS)}; " \
                                               f"gone: {set(ROUTE_ACTIONS) - set(console)}"
    for endpoint, access in console.items():
        assert access is not None, f"{endpoint} declares no access"
        assert (None if access.public else access.action) == ROUTE_ACTIONS[endpoint], endpoint
    api_actions = {op.action for op in OPERATIONS if not op.public}
    used = set(ROUTE_ACTIONS.values()) | api_actions
    assert used - {PUBLIC} == set(permissions.ACTIONS) - SERVICE_ONLY
    assert not SERVICE_ONLY & used


def test_a_token_holds_only_scopes_its_operators_roles_may_hold():
    holdable = {role: {s for s in permissions.SCOPES if role in permissions.scope_roles(s)} for role in ROLES}
    assert holdable == {
        "composer": {"read", "alerts:draft", "alerts:submit", "alerts:cancel"},
        "approver": {"read", "alerts:draft", "alerts:approve", "alerts:cancel"},
        "admin": {"read", "alerts:draft", "alerts:approve", "alerts:cancel", "contacts:write", "groups:write",
                  "zones:write"},
        "auditor": {"read"},
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_route_answers_every_role_as_the_table_says(app, db, people, world, role):
    person = people(f"m-{role}", role)
    covered = 0
    # The console, signed in for real.
    client = app.test_client()
    sign_in(client, person, db)
    token = csrf_of(client, "/")
    console_cells = _cells(_rules(app, api=False))
    for rule, method in console_cells:
        action = ROUTE_ACTIONS[rule.endpoint]
        url = _url(rule, world)
        r = client.get(url) if method == "GET" else client.post(
            url, data={"csrf_token": token}, headers={"Referer": "http://localhost/"})
        where = f"{role} {method} {url} → {r.status_code}"
        refused = r.status_code == 403 and CONSOLE_REFUSAL in r.get_data(as_text=True)
        expected = action is PUBLIC or permissions.allowed({role}, action)
        assert refused is not expected, where
        if expected and action is not PUBLIC:
            assert r.status_code not in (401, 500), where
            if method == "GET":
                assert r.status_code == 200, where
        covered += 1
    # The API, with a token holding every scope this role may hold.
    scopes = [s for s in permissions.SCOPES if role in permissions.scope_roles(s)]
    _, bearer = create_token(db, person.username, scopes, Actor.system("test"))
    headers = {"Authorization": f"Bearer {bearer}"}
    operations = _operations()
    api_cells = _cells(_rules(app, api=True))
    for rule, method in api_cells:
        op = operations.get(rule.endpoint)
        public = op is None or op.public  # the probes blueprint: /healthz, /readyz, /metrics
        url = _url(rule, world)
        r = app.test_client().open(url, method=method, headers=headers,
                                   **({"json": {}} if method in ("POST", "PATCH") else {}))
        where = f"{role} {method} {url} → {r.status_code}"
        body = r.get_json(silent=True) if r.is_json else None
        errors = {e["field"] for e in body.get("errors", [])} if isinstance(body, dict) else set()
        refused = r.status_code == 403 and bool(errors & {"scope", "action"})
        expected = public or (op.scope in scopes and permissions.allowed({role}, op.action))
        assert refused is not expected, where
        if expected:
            assert r.status_code not in (401, 500), where
        covered += 1
    # Every cell of this role's column: each console route and each API operation, every method.
    assert covered == len(console_cells) + len(api_cells)
    assert {rule.endpoint for rule, _ in console_cells} == set(ROUTE_ACTIONS)
    assert {rule.endpoint for rule, _ in api_cells} >= set(operations)


def test_a_role_taken_away_stops_the_operators_tokens_at_once(app, db, people, factories):
    admin = people("jefa", "admin")
    _, bearer = create_token(db, "jefa", ["read", "groups:write"], Actor.system("test"))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {bearer}"}
    assert client.post("/api/v1/groups", json={"name": "brigadas"}, headers=headers).status_code == 201
    other = factories.OperatorFactory(roles=["admin"])
    set_roles(db, admin.operator.id, ["composer"], Actor(kind="operator", name=other.username,
                                                         operator_id=other.id, roles=frozenset({"admin"})))
    r = client.patch("/api/v1/groups/brigadas", json={"drill_allowed": True}, headers=headers)
    assert r.status_code == 403
    assert r.get_json()["errors"] == [{"field": "scope", "reason": "groups:write needs admin"}]
    assert client.get("/api/v1/groups/brigadas", headers=headers).status_code == 200  # read: a composer may
    assert client.get("/api/v1/groups/brigadas", headers=headers).get_json()["drill_allowed"] is False
    refused = db.execute(text("SELECT count(*) FROM audit.events WHERE outcome = 'refused' AND actor_name = "
                              "'jefa/jefa-token' AND action = 'api.api.update_group'")).scalar_one()
    assert refused == 1
