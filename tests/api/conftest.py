"""The API under test: the real blueprint on a Flask app, against the test's Postgres and Redis.

Until the console's app factory (alerting.interfaces.web.app.create_app) exists, a minimal app registers api_bp
the way the factory will: Settings in app.config["SIRENA_SETTINGS"].
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from alerting.base.settings import Settings
from alerting.directory.accounts import SCOPES, create_token
from alerting.directory.permissions import scope_roles
from audit.actor import Actor


def make_app(settings: Settings) -> Flask:
    try:
        from alerting.interfaces.web.app import create_app

        app = create_app(settings, configure_services=False)
    except ImportError:  # the console is not there (yet): register the blueprint as the factory does
        from alerting.interfaces.api import api_bp

        app = Flask("sirena-api-test")
        app.config["SIRENA_SETTINGS"] = settings
        app.register_blueprint(api_bp)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(settings: Settings, db: Session, redis_db: object) -> Flask:
    return make_app(settings)


@pytest.fixture
def client(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_client()


@dataclass
class Who:
    operator_id: int
    username: str
    token: str
    token_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_token(db: Session, factories):  # type: ignore[no-untyped-def]
    def make(roles: tuple[str, ...] = ("composer",), scopes: tuple[str, ...] | None = None,
             operator=None) -> Who:  # type: ignore[no-untyped-def]
        """An operator with `roles` and a token with `scopes` (default: every scope those roles may hold)."""
        op = operator or factories.OperatorFactory(roles=list(roles))
        if scopes is None:
            scopes = tuple(s for s in SCOPES if scope_roles(s) & set(op.roles))
        row, token = create_token(db, op.username, list(scopes), Actor.system("test"))
        return Who(op.id, op.username, token, row.id)

    return make


@pytest.fixture
def sender(factories, db):  # type: ignore[no-untyped-def]
    """The sender, and the group (three neighbours: a live alert to nobody is refused), that
    live_alert_body() aims at."""
    group = factories.GroupFactory(name="vecinos")
    for _ in range(3):
        factories.add_member(db, group, factories.ContactFactory())
    return factories.SenderFactory(name="SIRENA-SC")


@pytest.fixture
def composer(make_token) -> Who:  # type: ignore[no-untyped-def]
    return make_token(("composer",))


@pytest.fixture
def approver(make_token) -> Who:  # type: ignore[no-untyped-def]
    return make_token(("approver", "composer"))


def live_alert_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"texts": {"es": "Corte de agua en Zona Norte hasta las 18:00"}, "mode": "live",
                               "sender": "SIRENA-SC", "priority": "normal", "target": {"groups": ["vecinos"]}}
    body.update(overrides)
    return body

