"""The WSGI entry point gunicorn serves in the container: `gunicorn sirena_wsgi:app`.

The same factory as every other served app (alerting.interfaces.web.wsgi.make_app): settings, intake config
(CAP signature requirement, quiet hours) and logging from the environment (SIRENA_*), once per
gunicorn worker process. TLS ends at the reverse proxy in front: one hop is trusted.
"""

from __future__ import annotations

from alerting.interfaces.web.wsgi import make_app

app = make_app(proxy_hops=1)
