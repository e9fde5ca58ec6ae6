"""Alerts through the console: live confirmation, two-person rule, exercise marking, corrections."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select, text

from alerting.alerts import prearmed
from alerting.base.models import Alert, AlertKind, AlertMode, AlertState, Delivery, DeliveryState, Priority, SenderKind
from broadcast import jobs
from tests.factories import add_member
from tests.web.conftest import csrf_of, sign_in


@pytest.fixture
def town(db, factories):
    sender = factories.SenderFactory(name="SIRENA-SC")
    brigade = factories.GroupFactory(name="bomberos")
    drill = factories.GroupFactory(name="simulacro", drill_allowed=True)
    contacts = [factories.ContactFactory() for _ in range(3)]
    for c in contacts:
        add_member(db, brigade, c)
    add_member(db, drill, contacts[0])
    return {"sender": sender, "contacts": contacts}


def _compose(client, **fields):
    token = csrf_of(client, "/alerts/new")
    data = {"csrf_token": token, "sender": "SIRENA-SC", "priority": "high", "title": "Incendio",
            "text_es": "Incendio forestal en el sector norte. Responda ACK {codigo}.", **fields}
    return client.post("/alerts", data=data)


def _alert_id(response) -> int:
    return int(re.search(r"/alerts/(\d+)$", response.headers["Location"]).group(1))


def test_live_alert_needs_its_summary_typed(app, db, people, town):
    client = app.test_client()
    sign_in(client, people("c1", "composer"), db)
    r = _compose(client, mode="live", groups="bomberos", confirm_live="OK")
    assert r.status_code == 422
    page = html.unescape(r.get_data(as_text=True))
    assert "confirm_live" in page and 'escriba "REAL 3" para guardar una alerta REAL' in page  # her language
    assert "Incendio forestal" in page  # what was typed is kept
    r = _compose(client, mode="live", groups="bomberos", confirm_live="REAL 3")
    assert r.status_code == 303


def test_the_compose_form_offers_the_default_dedicated_code_and_says_a_shared_codes_keyword(app, db, people,
                                                                                          factories):
    factories.SenderFactory(name="BOMBEROS", kind=SenderKind.SHARED, address="5555", keyword="BOMBEROS")
    factories.SenderFactory(name="SIRENA-SC", is_default=True)
    client = app.test_client()
    sign_in(client, people("c1", "composer"), db)
    page = client.get("/alerts/new").get_data(as_text=True)
    selected = re.search(r'<option value="([^"]+)"[^>]*selected', page[page.index('id="sender"'):]).group(1)
    assert selected == "SIRENA-SC"  # not BOMBEROS, first by the alphabet
    # The operator reads Spanish (the default language):
    assert "BOMBEROS · código compartido 5555 · las respuestas deben empezar con BOMBEROS" in page
    assert "SIRENA-SC · código corto " in page and " · predeterminado</option>" in page
    hint = re.search(r'<p class="sender-hint[^>]*data-sender="BOMBEROS"[^>]*>([^<]+)</p>', page)
    assert hint and " hidden" in hint.group(0) and "«Responda BOMBEROS ACK 4821»" in hint.group(1)


def test_two_person_rule_through_the_console(app, db, people, town, redis_db):
    both = people("solo", "composer", "approver")
    other = people("segunda", "approver")
    composer = app.test_client()
    sign_in(composer, both, db)
    r = _compose(composer, mode="live", groups="bomberos", confirm_live="LIVE 3", action="submit")
    alert_id = _alert_id(r)
    assert db.get(Alert, alert_id).state is AlertState.PENDING_APPROVAL
    review = composer.get(f"/alerts/{alert_id}/review").get_data(as_text=True)
    seen = re.search(r'name="seen_hash" value="([0-9a-f]{64})"', review).group(1)
    token = csrf_of(composer, f"/alerts/{alert_id}/review")
    db.refresh(both.operator)
    refused = composer.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "seen_hash": seen,
                                                                 "step_up_code": both.code()})
    assert refused.status_code == 403
    assert db.get(Alert, alert_id).state is AlertState.PENDING_APPROVAL
    audited = db.execute(text("SELECT reason FROM audit.events WHERE action = 'console.alerts.approve' "
                              "AND outcome = 'refused' AND subject_id = :a"), {"a": str(alert_id)}).scalar_one()
    assert "cannot approve" in audited

    approver = app.test_client()
    sign_in(approver, other, db)
    page = approver.get(f"/alerts/{alert_id}/review").get_data(as_text=True)
    assert "3 teléfonos" in page and "Are you sure" not in page  # operators read Spanish by default
    token = csrf_of(approver, f"/alerts/{alert_id}/review")
    no_code = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "seen_hash": seen})
    assert no_code.status_code == 422 and "step_up_code" in no_code.get_data(as_text=True)
    db.refresh(other.operator)
    ok = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "seen_hash": seen,
                                                            "step_up_code": other.code()})
    assert ok.status_code == 303
    db.expire_all()
    alert = db.get(Alert, alert_id)
    assert alert.state is AlertState.APPROVED
    armed = prearmed.prearmed(db, alert_id)
    assert armed is not None and armed.armed_at is not None  # the correction was approved with it


def test_an_edit_after_submission_voids_the_shown_hash(app, db, people, town):
    writer, checker = people("w", "composer"), people("k", "approver")
    composer = app.test_client()
    sign_in(composer, writer, db)
    alert_id = _alert_id(_compose(composer, mode="live", groups="bomberos", confirm_live="LIVE 3", action="submit"))
    approver = app.test_client()
    sign_in(approver, checker, db)
    seen = re.search(r'name="seen_hash" value="([0-9a-f]{64})"',
                     approver.get(f"/alerts/{alert_id}/review").get_data(as_text=True)).group(1)
    token = csrf_of(composer, f"/alerts/{alert_id}/edit")
    composer.post(f"/alerts/{alert_id}/edit", data={
        "csrf_token": token, "mode": "live", "sender": "SIRENA-SC", "priority": "high", "groups": "bomberos",
        "text_es": "Texto cambiado", "confirm_live": "LIVE 3", "action": "submit"})
    token = csrf_of(approver, "/")
    db.refresh(checker.operator)
    r = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "seen_hash": seen,
                                                           "step_up_code": checker.code()})
    assert r.status_code == 403 and "cambió desde que se mostró" in r.get_data(as_text=True)


def test_exercise_shows_its_band_and_prefix_and_reaches_only_drill_groups(app, db, people, town):
    client = app.test_client()
    sign_in(client, people("ex", "composer"), db)
    refused = _compose(client, mode="exercise", groups="bomberos")
    assert refused.status_code == 422 and "not marked for drills" in refused.get_data(as_text=True)
    alert_id = _alert_id(_compose(client, mode="exercise", groups="simulacro"))
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert 'class="band band-exercise"' in page
    assert re.search(r'<pre class="phone-text"[^>]*>SIMULACRO: Incendio forestal', page)
    assert "band-live" not in page


def test_correction_goes_at_flash_to_everyone_the_original_reached(app, db, people, town, factories, redis_db):
    writer, checker = people("cw", "composer"), people("ca", "approver")
    composer, approver = app.test_client(), app.test_client()
    sign_in(composer, writer, db)
    alert_id = _alert_id(_compose(composer, mode="live", groups="bomberos", confirm_live="LIVE 3", action="submit"))
    sign_in(approver, checker, db)
    seen = re.search(r'name="seen_hash" value="([0-9a-f]{64})"',
                     approver.get(f"/alerts/{alert_id}/review").get_data(as_text=True)).group(1)
    token = csrf_of(approver, "/")
    db.refresh(checker.operator)
    approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "seen_hash": seen,
                                                       "step_up_code": checker.code()})
    jobs.fan_out(alert_id)  # materializes the deliveries (the send batches stay queued: no gateway here)
    deliveries = list(db.scalars(select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.id)))
    assert len(deliveries) == 3
    deliveries[0].state = DeliveryState.DELIVERED  # one already reached a phone
    db.flush()
    detail = approver.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert 'id="fire-correction"' in detail
    token = csrf_of(approver, f"/alerts/{alert_id}")
    no_code = approver.post(f"/alerts/{alert_id}/correction", data={"csrf_token": token, "kind": "correction"})
    assert no_code.status_code == 422 and "código nuevo de su autenticador" in no_code.get_data(as_text=True)
    assert db.get(Alert, alert_id).state is AlertState.SENDING  # nothing was fired
    assert db.execute(text("SELECT count(*) FROM audit.events WHERE action = 'console.alerts.correction' "
                           "AND outcome = 'refused'")).scalar_one() == 1
    db.refresh(checker.operator)
    r = approver.post(f"/alerts/{alert_id}/correction", data={"csrf_token": token, "kind": "correction",
                                                              "step_up_code": checker.code()})
    assert r.status_code == 303
    fix_id = _alert_id(r)
    db.expire_all()
    original, fix = db.get(Alert, alert_id), db.get(Alert, fix_id)
    assert original.state is AlertState.SUPERSEDED and original.superseded_by_id == fix_id
    assert fix.kind is AlertKind.CORRECTION and fix.priority is Priority.FLASH and fix.state is AlertState.APPROVED
    assert fix.mode is AlertMode.LIVE and fix.texts["es"].startswith("CORRECCIÓN")
    assert original.reference in fix.texts["es"]
    states = {d.state for d in db.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}
    assert DeliveryState.QUEUED not in states  # the unsent were purged
    jobs.fan_out(fix_id)
    assert db.scalar(select(text("count(*)")).select_from(Delivery).where(Delivery.alert_id == fix_id)) == 3


def test_a_composer_alone_cannot_fire_a_correction(app, db, people, town):
    client = app.test_client()
    sign_in(client, people("only", "composer"), db)
    token = csrf_of(client, "/")
    assert client.post("/alerts/1/correction", data={"csrf_token": token}).status_code == 403


def test_a_typed_text_cannot_be_fired_by_one_operator(app, db, people, town, redis_db):
    alert_id, _ = _approved_and_sent(app, db, people, names=("typed-writer", "typed-approver"))
    checker = people("typed-approver-2", "approver")
    client = app.test_client()
    sign_in(client, checker, db)
    token = csrf_of(client, f"/alerts/{alert_id}")
    db.refresh(checker.operator)
    r = client.post(f"/alerts/{alert_id}/correction", data={
        "csrf_token": token, "kind": "correction", "step_up_code": checker.code(), "text": "Vuelvan a sus casas"})
    assert r.status_code == 403 and "solo el texto preaprobado" in r.get_data(as_text=True)
    db.expire_all()
    assert db.get(Alert, alert_id).state is AlertState.SENDING
    assert db.scalar(select(text("count(*)")).select_from(Alert).where(Alert.corrects_alert_id == alert_id)) == 0
    reason = db.execute(text("SELECT reason FROM audit.events WHERE action = 'console.alerts.correction' "
                             "AND outcome = 'refused' AND subject_id = :a"), {"a": str(alert_id)}).scalar_one()
    assert "pre-approved" in reason


def test_a_different_correction_text_waits_for_two_other_approvers(app, db, people, town, redis_db):
    alert_id, _ = _approved_and_sent(app, db, people, names=("prop-writer", "prop-approver"))
    proposer, first, second = people("prop-author", "approver"), people("prop-a1", "approver"), \
        people("prop-a2", "approver")
    client = app.test_client()
    sign_in(client, proposer, db)
    token = csrf_of(client, f"/alerts/{alert_id}")
    assert 'id="propose-correction"' in client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    r = client.post(f"/alerts/{alert_id}/correction/proposal",
                    data={"csrf_token": token, "kind": "correction", "text": "La ruta es por Los Olmos"})
    assert r.status_code == 303
    fix_id = _alert_id(r)
    db.expire_all()
    fix = db.get(Alert, fix_id)
    assert fix.state is AlertState.PENDING_APPROVAL and fix.priority is Priority.FLASH
    assert fix.required_approvals == 2 and fix.corrects_alert_id == alert_id
    assert fix.texts["es"] == f"CORRECCIÓN {db.get(Alert, alert_id).reference}: La ruta es por Los Olmos"
    assert db.get(Alert, alert_id).state is AlertState.SENDING  # nothing changes until it is approved
    review = client.get(f"/alerts/{fix_id}/review").get_data(as_text=True)
    assert '<span id="recipients-total">3</span>' in review  # the original's audience
    db.refresh(proposer.operator)
    own = client.post(f"/alerts/{fix_id}/approve", data={"csrf_token": token, "seen_hash": fix.approval_hash,
                                                          "step_up_code": proposer.code()})
    assert own.status_code == 403
    for person in (first, second):
        approver = app.test_client()
        sign_in(approver, person, db)
        db.refresh(person.operator)
        ok = approver.post(f"/alerts/{fix_id}/approve", data={"csrf_token": csrf_of(approver, "/"),
                                                              "seen_hash": fix.approval_hash,
                                                              "step_up_code": person.code()})
        assert ok.status_code == 303, ok.get_data(as_text=True)[-800:]
    db.expire_all()
    assert db.get(Alert, fix_id).state is AlertState.APPROVED
    original = db.get(Alert, alert_id)
    assert original.state is AlertState.SUPERSEDED and original.superseded_by_id == fix_id
    jobs.fan_out(fix_id)
    assert db.scalar(select(text("count(*)")).select_from(Delivery).where(Delivery.alert_id == fix_id)) == 3


def test_segment_counter_counts_the_prefix(app, db, people):
    client = app.test_client()
    sign_in(client, people("seg", "composer"), db)
    token = csrf_of(client, "/")
    r = client.post("/compose/segments", json={"mode": "exercise", "texts": {"es": "x" * 150}},
                    headers={"X-CSRFToken": token})
    assert r.get_json()["es"]["parts"] == 2  # "SIMULACRO: " pushes 150 characters past one SMS


def test_a_wrong_step_up_code_is_refused_and_audited(app, db, people, town):
    writer, checker = people("sw", "composer"), people("sk", "approver")
    composer, approver = app.test_client(), app.test_client()
    sign_in(composer, writer, db)
    alert_id = _alert_id(_compose(composer, mode="live", groups="bomberos", confirm_live="LIVE 3", action="submit"))
    sign_in(approver, checker, db)
    token = csrf_of(approver, f"/alerts/{alert_id}/review")
    r = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "step_up_code": "000000",
                                                           "seen_hash": db.get(Alert, alert_id).approval_hash})
    assert r.status_code == 422
    assert db.get(Alert, alert_id).state is AlertState.PENDING_APPROVAL
    reason = db.execute(text("SELECT reason FROM audit.events WHERE action = 'console.alerts.approve' "
                             "AND outcome = 'refused' ORDER BY seq DESC LIMIT 1")).scalar_one()
    assert "step-up" in reason


def test_creating_an_operator_needs_a_fresh_code(app, db, people):
    admin = people("adm", "admin")
    client = app.test_client()
    sign_in(client, admin, db)
    token = csrf_of(client, "/admin/operators")
    r = client.post("/admin/operators", data={"csrf_token": token, "username": "nuevo", "roles": "composer"})
    assert r.status_code == 422 and "step_up_code" in r.get_data(as_text=True)
    db.refresh(admin.operator)
    r = client.post("/admin/operators", data={"csrf_token": token, "username": "nuevo", "roles": "composer",
                                              "step_up_code": admin.code()})
    assert r.status_code == 200 and 'id="created-operator"' in r.get_data(as_text=True)


def test_an_admin_changes_roles_and_resets_a_lost_authenticator_with_fresh_codes(app, db, people):
    admin, bea = people("adm2", "admin"), people("bea", "composer")
    client = app.test_client()
    sign_in(client, admin, db)
    token = csrf_of(client, "/admin/operators")
    db.refresh(admin.operator)
    r = client.post(f"/admin/operators/{bea.operator.id}/roles",
                    data={"csrf_token": token, "roles": ["composer", "approver"], "step_up_code": admin.code()})
    assert r.status_code == 303
    db.refresh(bea.operator)
    assert sorted(bea.operator.roles) == ["approver", "composer"]
    old_seed = bea.operator.totp_secret_enc
    db.refresh(admin.operator)
    r = client.post(f"/admin/operators/{bea.operator.id}/reset-mfa",
                    data={"csrf_token": token, "step_up_code": admin.code()})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and 'id="mfa-reset"' in page and "otpauth://totp/" in page
    db.refresh(bea.operator)
    assert bea.operator.totp_secret_enc != old_seed and bea.operator.totp_enrolled_at is None
    events = db.execute(text("SELECT action, outcome, payload FROM audit.events WHERE subject_type = 'operator' "
                             "AND action LIKE 'operator.%' AND subject_id = :b ORDER BY id"),
                        {"b": str(bea.operator.id)}).all()
    assert [(e[0], e[1]) for e in events][-2:] == [("operator.roles_changed", "done"), ("operator.mfa_reset", "done")]
    assert events[-2][2]["before"] == ["composer"] and events[-2][2]["after"] == ["approver", "composer"]


def test_the_last_admin_keeps_the_admin_role_and_nobody_changes_their_own(db, people):
    from alerting.base.errors import Refused
    from alerting.directory.accounts import set_roles
    from tests.factories import actor_for

    only, other = people("solo-admin", "admin"), people("ayudante", "composer", "approver")
    with pytest.raises(Refused, match="last admin"):
        set_roles(db, only.operator.id, ["composer"], actor_for(other.operator))
    with pytest.raises(Refused, match="their own roles"):
        set_roles(db, only.operator.id, ["admin", "approver"], actor_for(only.operator))


def _approved_and_sent(app, db, people, names=("resp-writer", "resp-approver")):
    writer, checker = people(names[0], "composer"), people(names[1], "approver")
    composer, approver = app.test_client(), app.test_client()
    sign_in(composer, writer, db)
    alert_id = _alert_id(_compose(composer, mode="live", groups="bomberos", confirm_live="LIVE 3", action="submit"))
    sign_in(approver, checker, db)
    token = csrf_of(approver, "/")
    db.refresh(checker.operator)
    r = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "step_up_code": checker.code(),
                                                           "seen_hash": db.get(Alert, alert_id).approval_hash})
    assert r.status_code == 303, r.get_data(as_text=True)[-1500:]
    jobs.fan_out(alert_id)
    db.execute(text("UPDATE deliveries SET state = 'delivered' WHERE alert_id = :a"), {"a": alert_id})
    return alert_id, approver


def _reply(db, delivery, meaning, body):
    inbound = db.execute(text("INSERT INTO inbound_messages (kind, source_addr, destination_addr, text) "
                              "VALUES ('mo', :m, '4242', :t) "
                              "RETURNING id"), {"m": delivery.msisdn, "t": body}).scalar_one()
    return db.execute(text("INSERT INTO replies (inbound_id, delivery_id, alert_id, contact_id, msisdn, meaning, text) "
                           "VALUES (:i, :d, :a, :c, :m, :meaning, :t) RETURNING id"),
                      {"i": inbound, "d": delivery.id, "a": delivery.alert_id, "c": delivery.contact_id,
                       "m": delivery.msisdn, "meaning": meaning, "t": body}).scalar_one()


def test_detail_shows_who_answered_on_the_map_and_who_did_not(app, db, people, town, factories, redis_db):
    for contact in town["contacts"]:
        factories.LocationFactory(contact=contact)
    alert_id, approver = _approved_and_sent(app, db, people)
    first, second, _ = db.scalars(select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.id)).all()
    _reply(db, first, "ack", "ACK")
    help_id = _reply(db, second, "help", "AYUDA atrapado")
    points = approver.get(f"/alerts/{alert_id}/points.geojson").get_json()
    assert sorted(f["properties"]["status"] for f in points["features"]) == ["ack", "help", "no_answer"]
    page = approver.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "AYUDA atrapado" in page
    silent = re.search(r'id="non-responders-table">.*?<tbody>(.*?)</tbody>', page, re.DOTALL).group(1)
    assert re.fullmatch(r'\s*<tr><td>[^<]*</td><td>…\d{4}</td><td>entregado</td></tr>\s*', silent), silent
    live = approver.get(f"/alerts/{alert_id}/live.json?after={help_id - 1}").get_json()
    assert [e["meaning"] for e in live["events"]] == ["help"] and live["replies"]["ack"] == 1
    token = csrf_of(approver, f"/alerts/{alert_id}")
    r = approver.post(f"/alerts/{alert_id}/replies/{help_id}/answer",
                      data={"csrf_token": token, "text": "Bomberos en camino"})
    assert r.status_code == 303
    assert db.execute(text("SELECT count(*) FROM followups WHERE reply_id = :r"), {"r": help_id}).scalar_one() == 1


def test_review_map_shows_the_blast_radius_before_approval(app, db, people, factories, redis_db):
    from geo.zones import import_geojson

    factories.SenderFactory(name="SIRENA-SC")
    square = [[[-71, -34], [-70, -34], [-70, -33], [-71, -33], [-71, -34]]]
    import_geojson(db, {"type": "Polygon", "coordinates": square}, name="Centro")
    for _ in range(2):
        factories.LocationFactory(contact=factories.ContactFactory())
    writer, checker = people("blast-writer", "composer"), people("blast-approver", "approver")
    composer, approver = app.test_client(), app.test_client()
    sign_in(composer, writer, db)
    alert_id = _alert_id(_compose(composer, mode="live", zones="Centro", confirm_live="LIVE 2", action="submit"))
    assert db.get(Alert, alert_id).target["zone_versions"] == {"Centro": 1}  # pinned before the hash
    sign_in(approver, checker, db)
    points = approver.get(f"/alerts/{alert_id}/points.geojson").get_json()
    assert len(points["features"]) == 2 and {f["properties"]["status"] for f in points["features"]} == {"targeted"}


def _zone_with_people(db, factories, *, expected: int | None, people_inside: int) -> None:
    from alerting.base.models.zones import Zone
    from geo.zones import import_geojson

    factories.SenderFactory(name="SIRENA-SC")
    square = [[[-71, -34], [-70, -34], [-70, -33], [-71, -33], [-71, -34]]]
    import_geojson(db, {"type": "Polygon", "coordinates": square}, name="Centro")
    db.execute(Zone.__table__.update().where(Zone.name == "Centro").values(expected_population=expected))
    for _ in range(people_inside):
        factories.LocationFactory(contact=factories.ContactFactory())


def test_a_target_far_beyond_the_zone_needs_a_written_reason(app, db, people, factories, redis_db):
    _zone_with_people(db, factories, expected=1, people_inside=3)
    writer, checker = people("radius-writer", "composer"), people("radius-approver", "approver")
    composer, approver = app.test_client(), app.test_client()
    sign_in(composer, writer, db)
    alert_id = _alert_id(_compose(composer, mode="live", zones="Centro", confirm_live="LIVE 3", action="submit"))
    sign_in(approver, checker, db)
    page = approver.get(f"/alerts/{alert_id}/review").get_data(as_text=True)
    assert 'id="blast-warning"' in page and "población esperada de las zonas (1)" in page
    token = csrf_of(approver, f"/alerts/{alert_id}/review")
    seen = db.get(Alert, alert_id).approval_hash
    db.refresh(checker.operator)
    r = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "seen_hash": seen,
                                                           "step_up_code": checker.code()})
    assert r.status_code == 422 and "override_reason" in r.get_data(as_text=True)
    assert db.get(Alert, alert_id).state is AlertState.PENDING_APPROVAL
    r = approver.post(f"/alerts/{alert_id}/approve", data={
        "csrf_token": token, "seen_hash": seen, "step_up_code": checker.code(),
        "override_reason": "the fire spread: the whole commune must leave"})
    assert r.status_code == 303
    reason = db.execute(text("SELECT payload ->> 'override_reason' FROM audit.events WHERE action = 'alert.approved' "
                             "AND subject_id = :a"), {"a": str(alert_id)}).scalar_one()
    assert reason == "the fire spread: the whole commune must leave"


def test_a_zone_drawn_on_the_map_is_saved_and_targeted(app, db, people, factories):
    factories.SenderFactory(name="SIRENA-SC")
    factories.LocationFactory(contact=factories.ContactFactory())
    client = app.test_client()
    sign_in(client, people("drawer", "composer"), db)
    drawn = '{"type": "Polygon", "coordinates": [[[-71, -34], [-70, -34], [-70, -33], [-71, -33], [-71, -34]]]}'
    r = _compose(client, mode="live", drawn_geojson=drawn, drawn_name="Dibujada", confirm_live="LIVE 1")
    assert r.status_code == 303, r.get_data(as_text=True)[-600:]
    assert db.get(Alert, _alert_id(r)).target["zones"] == ["Dibujada"]


def test_a_self_intersecting_drawing_is_refused_naming_the_field(app, db, people, factories):
    factories.SenderFactory(name="SIRENA-SC")
    client = app.test_client()
    sign_in(client, people("scribbler", "composer"), db)
    bowtie = '{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}'
    r = _compose(client, mode="live", drawn_geojson=bowtie, drawn_name="Mala", confirm_live="LIVE 0")
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert "polygon" in body and "Mala" in body  # the field is named and what was typed is kept


def test_the_escalation_policy_is_composed_with_the_alert(app, db, people, town, factories):
    factories.GroupFactory(name="supervisores")
    client = app.test_client()
    sign_in(client, people("chaser", "composer"), db)
    r = _compose(client, mode="live", groups="bomberos", confirm_live="LIVE 3", ack_deadline_s="600",
                 escalation_set="1", resend="1", supervisors="supervisores", supervisors_after_s="300")
    assert db.get(Alert, _alert_id(r)).escalation == {"resend": True, "resend_other_carrier": False,
                                                      "supervisors": "supervisores", "supervisors_after_s": 300}
    r = _compose(client, mode="live", groups="bomberos", confirm_live="LIVE 3", escalation_set="1",
                 supervisors="nadie")
    assert r.status_code == 422 and "escalation.supervisors" in r.get_data(as_text=True)


def test_stopping_a_send_offers_the_correction_at_once(app, db, people, town, redis_db):
    alert_id, approver = _approved_and_sent(app, db, people, names=("stop-writer", "stop-approver"))
    db.execute(text("UPDATE deliveries SET state = 'queued' WHERE id = (SELECT max(id) FROM deliveries "
                    "WHERE alert_id = :a)"), {"a": alert_id})
    token = csrf_of(approver, f"/alerts/{alert_id}")
    assert approver.post(f"/alerts/{alert_id}/cancel", data={"csrf_token": token}).status_code == 422
    r = approver.post(f"/alerts/{alert_id}/cancel", data={"csrf_token": token, "reason": "wrong zone"})
    assert r.status_code == 303
    page = approver.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "NO se les ha avisado: envíe la corrección" in page and 'id="fire-correction"' in page
    assert db.get(Alert, alert_id).state is AlertState.CANCELLED
    assert jobs.counts_by_state(db, alert_id).get("cancelled") == 1


def test_every_ready_template_passes_compose_validation(db, factories):
    """The six former hard-coded templates are seeded in the database (tests/alerting/test_templates.py)."""
    from alerting.alerts.templates import list_templates
    from alerting.base.sms_text.rendering import check_placeholders

    seeded = list_templates(db)
    assert len(seeded) >= 6
    for template in seeded:
        check_placeholders(template.texts)  # every contact placeholder has a default
        assert set(template.texts) == {"es", "en"}


def test_review_warns_when_a_long_number_would_pass_its_daily_cap(app, db, people, town, factories):
    from alerting.base.models import SenderKind

    factories.SenderFactory(name="VECINOS-LN", kind=SenderKind.LONG, address="+56900000009", daily_cap=4, tps=2.0)
    db.execute(text("INSERT INTO sender_usage (sender, day, parts) "
                    "VALUES ('VECINOS-LN', (now() AT TIME ZONE 'UTC')::date, 2)"))  # another gateway, earlier
    writer, checker = people("cap-writer", "composer"), people("cap-approver", "approver")
    composer, approver = app.test_client(), app.test_client()
    sign_in(composer, writer, db)
    alert_id = _alert_id(_compose(composer, mode="live", groups="bomberos", confirm_live="LIVE 3", action="submit",
                                  sender="VECINOS-LN"))
    sign_in(approver, checker, db)
    page = approver.get(f"/alerts/{alert_id}/review").get_data(as_text=True)
    shown = re.search(r'<p id="sender-capacity" class="flash error">(.*?)</p>', page, re.S)
    assert shown, "no cap warning on the review page"
    assert "tope diario 4 partes, 2 disponibles hoy; esta alerta necesita 3" in " ".join(shown.group(1).split())
    assert "1 partes esperarían hasta las 00:00 UTC" in shown.group(1)


def test_rewriting_another_composers_draft_makes_an_author_who_cannot_approve_it_anywhere(app, db, people, town,
                                                                                        redis_db):
    """Issue 16, first hole: edit someone else's draft in the console, then approve it through the API."""
    from alerting.directory.accounts import create_token
    from audit.actor import Actor

    author = app.test_client()
    sign_in(author, people("autora", "composer"), db)
    alert_id = _alert_id(_compose(author, mode="live", groups="bomberos", confirm_live="LIVE 3"))
    rewriter, both = app.test_client(), people("reescribe", "composer", "approver")
    sign_in(rewriter, both, db)
    token = csrf_of(rewriter, f"/alerts/{alert_id}/edit")
    r = rewriter.post(f"/alerts/{alert_id}/edit", data={
        "csrf_token": token, "mode": "live", "sender": "SIRENA-SC", "priority": "high", "groups": "bomberos",
        "text_es": "EVACUEN INMEDIATAMENTE", "confirm_live": "LIVE 3", "action": "submit"})
    assert r.status_code == 303
    alert = db.get(Alert, alert_id)
    db.refresh(alert)
    assert alert.state is AlertState.PENDING_APPROVAL and alert.texts == {"es": "EVACUEN INMEDIATAMENTE"}
    _, bearer = create_token(db, "reescribe", ["alerts:approve"], Actor.system("test"))
    r = app.test_client().post(f"/api/v1/alerts/{alert_id}/approve", json={"seen_hash": alert.approval_hash},
                               headers={"Authorization": f"Bearer {bearer}"})
    assert r.status_code == 403 and r.get_json()["code"] == "two_person_rule"
    token = csrf_of(rewriter, f"/alerts/{alert_id}/review")
    r = rewriter.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "seen_hash": alert.approval_hash,
                                                           "step_up_code": both.code()})
    assert r.status_code == 403 and "quien la escribió no puede aprobarla" in r.get_data(as_text=True)
    assert db.get(Alert, alert_id).state is AlertState.PENDING_APPROVAL
    refusals = db.execute(text("SELECT action, reason FROM audit.events WHERE outcome = 'refused' "
                               "AND subject_id = :a ORDER BY id"), {"a": str(alert_id)}).all()
    assert [r.action for r in refusals] == ["api.api.approve_alert", "console.alerts.approve"]
    assert all("an author cannot approve" in r.reason for r in refusals)
    assert db.scalar(select(Delivery.id).where(Delivery.alert_id == alert_id)) is None


def test_a_console_approval_without_the_reviewed_hash_is_refused_naming_seen_hash(app, db, people, town):
    composer = app.test_client()
    sign_in(composer, people("c9", "composer"), db)
    alert_id = _alert_id(_compose(composer, mode="live", groups="bomberos", confirm_live="LIVE 3", action="submit"))
    approver = app.test_client()
    checker = people("a9", "approver")
    sign_in(approver, checker, db)
    token = csrf_of(approver, f"/alerts/{alert_id}/review")
    r = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "step_up_code": checker.code()})
    assert r.status_code == 422 and "seen_hash" in r.get_data(as_text=True)
    assert db.get(Alert, alert_id).state is AlertState.PENDING_APPROVAL


def test_the_review_page_says_a_small_drift_is_within_the_tolerance_and_the_approval_goes_through(
        app, db, people, town, factories, redis_db):
    composer = app.test_client()
    sign_in(composer, people("c10", "composer"), db)
    alert_id = _alert_id(_compose(composer, mode="live", groups="bomberos", confirm_live="LIVE 3", action="submit"))
    from alerting.base.models import Group

    add_member(db, db.scalar(select(Group).where(Group.name == "bomberos")), factories.ContactFactory())
    approver, checker = app.test_client(), people("a10", "approver")
    sign_in(approver, checker, db)
    page = approver.get(f"/alerts/{alert_id}/review").get_data(as_text=True)
    assert re.search(r'id="count-changed">[^<]*\b3\b[^<]*\b4\b[^<]*tolerancia de ±10', page), page[:3000]
    seen = re.search(r'name="seen_hash" value="([0-9a-f]{64})"', page).group(1)
    token = csrf_of(approver, f"/alerts/{alert_id}/review")
    r = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": token, "seen_hash": seen,
                                                           "step_up_code": checker.code()})
    assert r.status_code == 303 and db.get(Alert, alert_id).state is AlertState.APPROVED
