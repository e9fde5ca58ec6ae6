"""The Flask application: the hardened operator console, and the REST API.

`create_app(settings)` is the only way to build it (the `sirena web` command, gunicorn and the
tests all call it). Everything it serves, including the map and chart code, comes from the app
itself: no CDN, so the console keeps working when the operations centre's internet link is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, g
from jinja2 import pass_context
from werkzeug.middleware.proxy_fix import ProxyFix

from alerting.base import runtime
from alerting.base.models import AlertMode
from alerting.base.settings import Settings
from alerting.directory import permissions
from alerting.interfaces.api import api_bp, probes_bp
from alerting.interfaces.web import errors, i18n, labels, security
from alerting.interfaces.web.console import (  # noqa: F401  (monitor: routes on the alerts blueprint)
    admin,
    alerts,
    areas,
    audit_pages,
    auth,
    dashboard,
    directory,
    incidents,
    monitor,
    registration_pages,
    replies,
    templates,
)
from alerting.interfaces.web.i18n import language, localtime
from alerting.interfaces.web.sessions import ServerSessionInterface
from alerting.interfaces.web.signin import Throttle

log = logging.getLogger("sirena.web")

MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # contact CSVs and GeoJSON; bigger imports go through the CLI


def create_app(
    settings: Settings,
    *,
    configure_services: bool = True,
    tile_url: str | None = None,
    proxy_hops: int = 0,
    idle_timeout: timedelta = timedelta(minutes=30),
    absolute_timeout: timedelta = timedelta(hours=12),
) -> Flask:
    """Build the console app.

    `configure_services` starts this process's runtime (alerting/base/runtime.py: the database
    and Redis; False when the caller already did, as the tests do). `tile_url` is a base-map tile
    template (`https://host/{z}/{x}/{y}.png`); with none, maps draw the zones on a plain background.
    `proxy_hops` trusts that many reverse proxies' X-Forwarded-* headers (TLS is terminated there:
    HSTS and Secure cookies follow from it).
    Timeouts: ASVS 3.3.2 level 2 (30 minutes idle, 12 hours absolute).
    """
    app = Flask(__name__, static_folder="static", template_folder="templates")
    tile_url = tile_url if tile_url is not None else settings.tile_url
    app.config.update(
        SECRET_KEY=settings.secret_key().reveal(),
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        SIRENA_SETTINGS=settings,
        SIRENA_TIMEZONE=settings.timezone,
        SIRENA_TILE_URL=tile_url or "",
        SIRENA_INTAKE_CONFIG=settings.intake,  # CAP signatures and trust, quiet hours (SIRENA_INTAKE_*, …)
        SIRENA_API_RATE_PER_MIN=settings.api_rate_per_min,
        SIRENA_IDLE_TIMEOUT=idle_timeout,
        SIRENA_ABSOLUTE_TIMEOUT=absolute_timeout,
        TEMPLATES_AUTO_RELOAD=False,
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    if proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxy_hops, x_proto=proxy_hops, x_host=proxy_hops)  # type: ignore[method-assign]
    redis = _services(settings) if configure_services else _redis(settings)
    app.extensions["sirena_throttle"] = Throttle(redis)
    app.session_interface = ServerSessionInterface()
    security.install(app, redis_url=settings.redis_url, tile_url=tile_url)
    errors.register(app)
    _templates(app)
    _blueprints(app)
    return app


def _redis(settings: Settings) -> Any:
    return runtime.redis_connection(settings.redis_url, timeout_s=settings.redis_timeout_s)


def _services(settings: Settings) -> Any:
    """This process's runtime (database, Redis): the web app's one start-up call."""
    return runtime.start(settings, name="sirena-web").redis


def _templates(app: Flask) -> None:

    i18n.install(app)  # `_` in templates: Flask-Babel, per operator
    app.jinja_env.globals.update(AlertMode=AlertMode, labels=labels.labels)
    filters: dict[str, Callable[..., Any]] = {
        "localtime": localtime, "thousands": i18n.number, "percent": i18n.percent, "decimal": i18n.decimal,
        "duration": i18n.duration, "label": labels.label, "tr": i18n.translate_message}
    app.jinja_env.filters.update({name: _at_render(f) for name, f in filters.items()})

    @app.context_processor
    def _context() -> dict[str, Any]:
        operator = g.get("operator")
        roles = set(operator.roles or []) if operator is not None else set()
        # `can(action)`: the authorization table (alerting/directory/permissions.py) decides what a page offers too.
        return {"operator": operator, "roles": roles, "can": lambda action: permissions.allowed(roles, action),
                "lang": language(),
                "tile_url": app.config["SIRENA_TILE_URL"]}


def _at_render(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter Jinja calls when the page is rendered, never when the template is compiled: its
    optimizer folds a filter of constants (`'live'|label('mode')`) once, in whichever language
    the first page was in."""

    @pass_context
    def at_render(_context: Any, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return at_render


def _blueprints(app: Flask) -> None:
    # console.monitor is imported for its routes on the alerts blueprint
    for module in (auth, dashboard, alerts, replies, incidents, directory, admin, areas, templates,
                   registration_pages, audit_pages):
        app.register_blueprint(module.bp)
    security.csrf.exempt(api_bp)  # bearer tokens, no cookies: CSRF cannot ride on them
    app.register_blueprint(api_bp)
    app.config["SIRENA_SELF_AUTH_BLUEPRINTS"].add(api_bp.name)
    app.register_blueprint(probes_bp)  # /healthz, /readyz, /metrics: no sign-in, nothing private
    app.config["SIRENA_SELF_AUTH_BLUEPRINTS"].add(probes_bp.name)
