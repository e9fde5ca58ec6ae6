"""`sirena registration publish|unpublish|list|policy|requests|export`, as the self-registration
runbook runs them."""

from __future__ import annotations

import io

import pytest
from shapely.geometry import box
from sqlalchemy import text

from alerting.base import csv_cells
from alerting.base.db import transaction
from alerting.base.models import Group, GroupKind, Operator
from alerting.directory import registration
from alerting.directory.registration_keywords import load_policy
from geo.zones import save_zone
from tests.conftest import cli_env
from tests.conftest import last_json_line as _json
from tests.conftest import run_sirena as _sirena


@pytest.fixture
def env(committed_db, tmp_path):  # type: ignore[no-untyped-def]
    with transaction() as session:
        save_zone(session, "Centro", box(-70.67, -33.46, -70.63, -33.43), "geojson")
        session.add(Group(name="brigadistas", kind=GroupKind.STATIC, drill_allowed=False, description=""))
        session.add(Group(name="mayores", kind=GroupKind.DYNAMIC, criterion={"age": {"gte": 65}}, description=""))
        session.add(Operator(username="admin", password_hash="x", roles=["admin"]))
        session.add(Operator(username="compositora", password_hash="x", roles=["composer"]))
    return cli_env(committed_db, tmp_path)


def test_an_admin_publishes_keywords_turns_registration_on_and_lists_them(env):
    assert _json(_sirena(env, "registration", "policy", "--json"))["enabled"] is False  # off until an admin says
    published = _json(_sirena(env, "registration", "publish", "Centro", "--zone", "Centro", "--description",
                              "Casco historico", "--as", "admin", "--json"))
    assert published == {"keyword": "CENTRO", "zone": "Centro", "group": None, "description": "Casco historico"}
    assert _sirena(env, "registration", "publish", "brigada", "--group", "brigadistas", "--as", "admin").returncode == 0
    policy = _json(_sirena(env, "registration", "policy", "--on", "--confirm-minutes", "120", "--per-hour", "5",
                           "--as", "admin", "--json"))
    assert policy == {"enabled": True, "confirm_within_s": 7200, "per_hour": 5}
    listed = _json(_sirena(env, "registration", "list", "--json"))
    assert [(k["keyword"], k["zone"], k["group"]) for k in listed["keywords"]] == [
        ("BRIGADA", None, "brigadistas"), ("CENTRO", "Centro", None)]
    assert listed["policy"]["enabled"] is True and listed["registrations"]["pending"] == 0
    human = _sirena(env, "registration", "list")
    assert "registration on; confirm within 120 min" in human.stdout and "CENTRO" in human.stdout
    assert _json(_sirena(env, "registration", "unpublish", "brigada", "--as", "admin", "--json")) == {
        "keyword": "BRIGADA", "unpublished": True}
    with transaction() as s:
        actions = [tuple(r) for r in s.execute(text(
            "SELECT action, outcome FROM audit.events WHERE action LIKE 'registration.%' ORDER BY id"))]
    assert actions == [("registration.keyword_published", "done"), ("registration.keyword_published", "done"),
                       ("registration.policy_changed", "done"), ("registration.keyword_unpublished", "done")]


@pytest.mark.parametrize("args,field,code", [
    (["si", "--zone", "Centro"], '"SI" is a reply word', 2),
    (["baja", "--zone", "Centro"], '"BAJA" is a reply word', 2),
    (["alta", "--zone", "Centro"], '"ALTA" is a reply word', 2),
    (["join", "--zone", "Centro"], "is a registration word", 2),
    (["4821", "--zone", "Centro"], "at least one letter", 2),
    (["dos palabras", "--zone", "Centro"], "one word", 2),
    (["norte", "--zone", "Norte"], 'zone "Norte" does not exist', 3),
    (["mayores", "--group", "mayores"], "is dynamic", 2),
    (["ambos", "--zone", "Centro", "--group", "brigadistas"], "one zone or one group", 2),
])
def test_a_bad_keyword_is_refused_naming_the_field(env, args, field, code):
    refused = _sirena(env, "registration", "publish", *args, "--as", "admin")
    assert refused.returncode == code and field in refused.stderr


def test_only_an_admin_publishes_and_the_refusal_is_audited(env):
    refused = _sirena(env, "registration", "publish", "centro", "--zone", "Centro", "--as", "compositora")
    assert refused.returncode == 5 and "needs the admin role" in refused.stderr
    changed = _sirena(env, "registration", "policy", "--on")
    assert changed.returncode == 2 and "--as" in changed.stderr
    with transaction() as s:
        assert not load_policy(s).enabled
        assert s.execute(text("SELECT action, outcome FROM audit.events WHERE action LIKE 'cli.%'")).one() == (
            "cli.registration.publish", "refused")


def test_requests_are_listed_masked_and_exported_in_full_as_safe_csv_audited(env, tmp_path):
    _sirena(env, "registration", "publish", "centro", "--zone", "Centro", "--as", "admin")
    _sirena(env, "registration", "policy", "--on", "--as", "admin")
    with transaction() as s:
        policy = load_policy(s)
        registration.request_registration(s, registration.Request("+56979790001", "alta", "es", "centro", "SC"),
                                          policy)
        registration.request_registration(s, registration.Request("+56979790002", "join", "en", "oeste", "SC"),
                                          policy)
    listed = _json(_sirena(env, "registration", "requests", "--json"))["registrations"]
    assert [(r["msisdn"], r["state"], r["keyword"]) for r in listed] == [
        ("…0002", "refused", "OESTE"), ("…0001", "pending", "CENTRO")]
    pending = _json(_sirena(env, "registration", "requests", "--state", "pending", "--json"))["registrations"]
    assert [r["id"] for r in pending] == [listed[1]["id"]]
    bad = _sirena(env, "registration", "requests", "--state", "sleeping")
    assert bad.returncode == 2 and "state: one of pending" in bad.stderr

    out = tmp_path / "registros.csv"
    assert _json(_sirena(env, "registration", "export", str(out), "--as", "admin", "--json")) == {
        "path": str(out), "rows": 2}
    raw = out.read_text(encoding="utf-8")
    assert "'+56979790001" in raw  # a spreadsheet shows it as text, never a formula or a number
    rows = list(csv_cells.dict_reader(io.StringIO(raw)))
    assert [(r["msisdn"], r["state"], r["zone"]) for r in rows] == [("+56979790002", "refused", ""),
                                                                    ("+56979790001", "pending", "Centro")]
    stdout = _sirena(env, "registration", "export", "-", "--state", "pending", "--as", "admin")
    assert stdout.stdout.count("\n") == 2 and "+56979790001" in stdout.stdout
    with transaction() as s:
        exports = s.execute(text("SELECT count(*) FROM audit.events WHERE action = 'registration.exported'")).scalar()
    assert exports == 2


def test_a_zone_or_group_with_a_published_keyword_is_not_deleted_until_it_is_withdrawn(env):
    from alerting.base.errors import Refused
    from alerting.directory.contacts import delete_group
    from alerting.directory.registration_keywords import publish_keyword, unpublish_keyword
    from audit.actor import Actor
    from geo.zones import delete_zone

    admin = Actor.system("test-admin")
    with transaction() as s:
        publish_keyword(s, "centro", zone="Centro", actor=admin)
        publish_keyword(s, "brigada", group="brigadistas", actor=admin)
    with transaction() as s, pytest.raises(Refused, match='zone "Centro" is still used by registration keyword CENTRO'):
        delete_zone(s, "Centro", actor=admin)
    with transaction() as s, pytest.raises(Refused, match="still used by registration keyword BRIGADA"):
        delete_group(s, "brigadistas", actor=admin)
    with transaction() as s:
        unpublish_keyword(s, "centro", actor=admin)
        delete_zone(s, "Centro", actor=admin)
