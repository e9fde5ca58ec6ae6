"""Web fixtures: the real app on the test database and Redis, operators who sign in with real TOTP."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from alerting.base.db import utcnow
from alerting.base.models import Operator
from alerting.base.settings import Settings
from alerting.directory.accounts import create_operator, decrypt_totp
from alerting.interfaces.web.app import create_app
from audit.actor import Actor

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


@dataclass
class Person:
    operator: Operator
    password: str
    seed: str
    used_step: int | None = None  # kept here, not on the ORM row: a flush would spend the code

    @property
    def username(self) -> str:
        return self.operator.username

    def code(self) -> str:
        """A TOTP code the server will accept when the request reaches it: the earliest step in its
        ±1 window not used yet. The previous step only with 10 s left before it expires (a loaded
        machine can take seconds to answer); with every step used, wait for the next one."""
        totp = pyotp.TOTP(self.seed)
        while True:
            t = time.time()
            now = int(t) // totp.interval
            last = max(s for s in (self.operator.totp_last_step, self.used_step, -1) if s is not None)
            safe_previous = (now + 1) * totp.interval - t > 10
            for step in ((now - 1,) if safe_previous else ()) + (now, now + 1):
                if step > last:
                    self.used_step = step
                    return totp.at(step * totp.interval)
            time.sleep((now + 1) * totp.interval - t + 0.05)


@pytest.fixture
def app(settings: Settings, db: Session, redis_db: object) -> Flask:
    return create_app(settings, configure_services=False)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    # Not `with app.test_client()`: a preserved context would let one request's `g` leak into the next.
    return app.test_client()


@pytest.fixture
def people(db: Session, settings: Settings):  # type: ignore[no-untyped-def]
    """make(username, *roles, enrolled=True) → a Person with a real argon2 password and TOTP seed."""
    key = settings.secret_key()

    def make(username: str, *roles: str, enrolled: bool = True) -> Person:
        new = create_operator(db, username, list(roles), key, Actor.system("test"), password=PASSWORD)
        if enrolled:
            new.operator.totp_enrolled_at = utcnow()
        db.flush()
        return Person(new.operator, PASSWORD, decrypt_totp(new.operator.totp_secret_enc, key))  # type: ignore[arg-type]

    return make


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def sign_in(client: FlaskClient, person: Person, db: Session | None = None) -> None:
    """The real two-step sign-in: password, then a TOTP code."""
    token = csrf_of(client, "/login")
    r = client.post("/login", data={"csrf_token": token, "username": person.username, "password": person.password})
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    token = csrf_of(client, "/login/code")
    if db is not None:
        db.refresh(person.operator)
    r = client.post("/login/code", data={"csrf_token": token, "code": person.code()})
    assert r.status_code == 303, r.get_data(as_text=True)[:800]


def page_token(client: FlaskClient, path: str = "/") -> str:
    return csrf_of(client, path)
