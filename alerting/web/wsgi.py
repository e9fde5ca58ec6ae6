"""The WSGI entry point for production: `gunicorn --workers 4 --threads 16 'alerting.web.wsgi:make_app()'`.

Threads, not only processes: each open alert page keeps one request waiting up to 20 s (the live
view's long poll), holding no database connection meanwhile.

Settings come from the environment once, when the server process builds the app (STYLE §4).
One reverse proxy in front is trusted for X-Forwarded-For/Proto: it terminates TLS, so HSTS and
the `__Host-` Secure cookie follow from its X-Forwarded-Proto. Without a proxy, use `sirena web`.
"""

from __future__ import annotations

from flask import Flask

from alerting.settings import Settings
from alerting.web import create_app


def make_app(proxy_hops: int = 1) -> Flask:
    """The console app from the environment's settings, trusting `proxy_hops` reverse proxies."""
    import os

    from alerting.intake.config import IntakeConfig

    app = create_app(Settings.from_env(), proxy_hops=proxy_hops)
    app.config["SIRENA_INTAKE_CONFIG"] = IntakeConfig.from_env(os.environ)  # CAP trust, quiet hours
    return app
