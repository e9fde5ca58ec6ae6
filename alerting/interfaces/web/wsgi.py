"""The WSGI entry point for a gunicorn of your own: `gunicorn --workers 4 --threads 16
--worker-class alerting.interfaces.web.server.StoppingThreadWorker \
'alerting.interfaces.web.wsgi:make_app()'` (`sirena web`
runs the same app under gunicorn itself: alerting/interfaces/web/server.py).

Threads, not only processes: each open alert page keeps one request waiting up to 20 s (the live
view's long poll), holding no database connection meanwhile.

The one factory every served app comes from (docker/wsgi.py calls it too, `sirena web` builds
the same app from the same Settings): settings come from the environment once, when the server
process builds the app (STYLE §4), intake config, tile URL and API rate included, so an entry
point cannot forget one. One reverse proxy in front is trusted for X-Forwarded-For/Proto: it
terminates TLS, so HSTS and the `__Host-` Secure cookie follow from its X-Forwarded-Proto.
Without a proxy, use `sirena web`.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from alerting.base.logs import configure_logging
from alerting.base.settings import Settings
from alerting.interfaces.web.server import build_app


def make_app(proxy_hops: int = 1, env: Mapping[str, str] | None = None) -> Flask:
    """The console app from the environment's settings (`env`, default os.environ), with logging
    configured and the audit sealer running, trusting `proxy_hops` reverse proxies. Raises
    ConfigError naming a bad variable."""
    settings = Settings.from_env(env)
    configure_logging(settings.log_level)
    return build_app(settings, proxy_hops=proxy_hops)
