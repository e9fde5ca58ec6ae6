"""The WSGI entry point gunicorn serves in the container: `gunicorn sirena_wsgi:app`.

Settings come from the environment (SIRENA_*), once per gunicorn worker process. TLS ends at the
reverse proxy in front (one hop: SIRENA_PROXY_HOPS is not a setting, so it is fixed here).
"""

from __future__ import annotations

from alerting.logs import configure_logging
from alerting.settings import Settings
from alerting.web import create_app

settings = Settings.from_env()
configure_logging(settings.log_level)
app = create_app(settings, proxy_hops=1)
