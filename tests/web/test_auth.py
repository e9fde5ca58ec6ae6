"""Sign-in with password and TOTP, enrolment, lockout, session ids and timeouts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from alerting.interfaces.web.signin import PAIR_LIMIT
from tests.web.conftest import csrf_of, sign_in


def test_password_and_totp_reach_the_dashboard(client, people, db):
    person = people("ana", "composer")
    sign_in(client, person, db)
    page = client.get("/")
    assert page.status_code == 200
    assert "ana" in page.get_data(as_text=True)


def test_password_alone_never_reaches_the_console(client, people):
    person = people("beto", "approver")
    token = csrf_of(client)
    client.post("/login", data={"csrf_token": token, "username": "beto", "password": person.password})
    assert client.get("/").status_code == 302


def test_a_totp_code_works_once(client, app, people, db):
    person = people("carla", "composer")
    sign_in(client, person, db)
    used = person.used_step
    code = __import__("pyotp").TOTP(person.seed).at(used * 30)
    other = app.test_client()
    token = csrf_of(other)
    other.post("/login", data={"csrf_token": token, "username": "carla", "password": person.password})
    token = csrf_of(other, "/login/code")
    replay = other.post("/login/code", data={"csrf_token": token, "code": code})
    assert replay.status_code == 401
    refused = db.execute(text("SELECT count(*) FROM audit.events WHERE action = 'operator.sign_in' "
                              "AND outcome = 'refused' AND reason LIKE '%already used%'")).scalar_one()
    assert refused == 1


def test_first_sign_in_shows_an_svg_qr_code_and_enrols(client, people, db):
    person = people("dora", "auditor", enrolled=False)
    token = csrf_of(client)
    client.post("/login", data={"csrf_token": token, "username": "dora", "password": person.password})
    page = client.get("/login/code").get_data(as_text=True)
    assert "/login/enrol.svg" in page and person.seed in page
    qr = client.get("/login/enrol.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml" and b"<svg" in qr.data
    token = csrf_of(client, "/login/code")
    assert client.post("/login/code", data={"csrf_token": token, "code": person.code()}).status_code == 303
    db.refresh(person.operator)
    assert person.operator.totp_enrolled_at is not None


def test_qr_code_is_not_served_outside_an_enrolment(client):
    assert client.get("/login/enrol.svg").status_code == 404


def test_wrong_password_and_unknown_user_get_the_same_answer(client, people):
    people("eva", "composer")
    token = csrf_of(client)
    wrong = client.post("/login", data={"csrf_token": token, "username": "eva", "password": "nope-nope-nope"})
    unknown = client.post("/login", data={"csrf_token": token, "username": "nobody", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert "usuario, contraseña o código incorrectos" in wrong.get_data(as_text=True)  # before sign-in: Spanish
    assert "usuario, contraseña o código incorrectos" in unknown.get_data(as_text=True)


def test_lockout_after_repeated_failures_from_one_address_spares_others(app, people, db):
    person = people("fede", "approver")
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    token = csrf_of(attacker)
    for _ in range(PAIR_LIMIT):
        attacker.post("/login", data={"csrf_token": token, "username": "fede", "password": "guess-guess-guess"})
    locked = attacker.post("/login", data={"csrf_token": token, "username": "fede", "password": person.password})
    assert locked.status_code == 401 and "demasiados intentos fallidos" in locked.get_data(as_text=True)
    centre = app.test_client()
    centre.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    sign_in(centre, person, db)  # the operations centre is not locked out by the attacker
    assert centre.get("/").status_code == 200


def test_session_id_changes_at_sign_in(client, people, db):
    person = people("gil", "composer")
    csrf_of(client)
    before = client.get_cookie("sirena").value
    sign_in(client, person, db)
    after = client.get_cookie("sirena").value
    assert before != after
    revoked = db.execute(text("SELECT count(*) FROM web_sessions WHERE revoked_at IS NOT NULL")).scalar_one()
    assert revoked >= 2  # the anonymous id and the password-step id


def test_idle_session_expires(client, people, db):
    person = people("hugo", "composer")
    sign_in(client, person, db)
    db.execute(text("UPDATE web_sessions SET last_seen_at = now() - interval '31 minutes' WHERE revoked_at IS NULL"))
    r = client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_absolute_timeout_ends_a_busy_session(client, people, db):
    person = people("ines", "composer")
    sign_in(client, person, db)
    db.execute(text("UPDATE web_sessions SET expires_at = now() - interval '1 second' WHERE revoked_at IS NULL"))
    assert client.get("/").status_code == 302


def test_sign_out_revokes_the_cookie_server_side(client, app, people, db):
    person = people("juan", "composer")
    sign_in(client, person, db)
    cookie = client.get_cookie("sirena").value
    token = csrf_of(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    replay = app.test_client()
    replay.set_cookie("sirena", cookie)
    assert replay.get("/").status_code == 302


def test_password_change_signs_out_other_sessions(app, people, db):
    person = people("kati", "composer")
    first, second = app.test_client(), app.test_client()
    sign_in(first, person, db)
    sign_in(second, person, db)
    token = csrf_of(first, "/account/password")
    r = first.post("/account/password", data={"csrf_token": token, "current_password": person.password,
                                               "new_password": "a much longer passphrase",
                                               "confirm_password": "a much longer passphrase"})
    assert r.status_code == 303
    assert first.get("/").status_code == 200
    assert second.get("/").status_code == 302


def test_password_change_names_the_bad_field_and_keeps_the_page(client, people, db):
    person = people("lola", "composer")
    sign_in(client, person, db)
    token = csrf_of(client, "/account/password")
    r = client.post("/account/password", data={"csrf_token": token, "current_password": person.password,
                                                "new_password": "short", "confirm_password": "short"})
    assert r.status_code == 422
    assert "new_password" in r.get_data(as_text=True)


def test_idle_timeout_is_thirty_minutes(app):
    assert app.config["SIRENA_IDLE_TIMEOUT"] == timedelta(minutes=30)
    assert app.config["SIRENA_ABSOLUTE_TIMEOUT"] == timedelta(hours=12)


def test_each_operator_reads_the_console_in_their_language(client, people, db):
    person = people("mara", "composer")
    sign_in(client, person, db)
    assert ">Panel<" in client.get("/").get_data(as_text=True)  # Spanish by default
    token = csrf_of(client, "/")
    assert client.post("/account/language", data={"csrf_token": token, "language": "en"}).status_code == 303
    assert ">Dashboard<" in client.get("/").get_data(as_text=True)
    r = client.post("/account/language", data={"csrf_token": token, "language": "fr"})
    assert r.status_code == 422 and "language" in r.get_data(as_text=True)
