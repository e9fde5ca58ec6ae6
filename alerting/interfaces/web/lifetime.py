"""Set when this web process is stopping (SIGTERM to its gunicorn worker): long polls answer at once
with what they have, and the page asks the next process (alerting/interfaces/web/server.py)."""

from __future__ import annotations

import threading

stopping = threading.Event()
