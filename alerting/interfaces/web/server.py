"""`sirena web`'s production server: gunicorn, threaded workers, a clean stop on SIGTERM.

Each worker process builds its own app after the fork (database engine, Redis client and the
audit sealer are per process) and serves with `threads` threads: an open alert page holds one for
up to 20 s (the live view's long poll, `live.json?wait=20`), holding no database connection.

SIGTERM (systemd, `docker stop`): the master stops accepting, every worker finishes the requests
it is answering — a long poll answers at once with what it has (`stopping`), the page asks again
and gets the next server — and exits; the master exits 0 after at most `graceful_s`. SIGINT
(Ctrl-C) does the same without waiting for requests in flight.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from alerting.base.db import engine
from alerting.base.settings import Settings
from alerting.interfaces.web.app import create_app
from alerting.interfaces.web.lifetime import stopping
from audit.seal import Sealer

# Set in a worker process when its server asks it to stop: a long poll answers at once.


class StoppingThreadWorker(ThreadWorker):
    """gunicorn's threaded worker, telling the app's long polls that it is stopping."""
    def handle_exit(self, sig: int, frame: Any) -> None:
        stopping.set()
        super().handle_exit(sig, frame)


class _Server(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any], app_options: dict[str, Any]) -> None:
        self.settings, self.options, self.app_options = settings, options, app_options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return build_app(self.settings, **self.app_options)


def build_app(settings: Settings, *, tile_url: str | None = None, proxy_hops: int = 0) -> Flask:
    """The served app of this process: the console with its services, and the audit sealer running
    (events this process writes get their link in the chain within a second or two)."""
    app = create_app(settings, tile_url=tile_url, proxy_hops=proxy_hops)
    app.extensions["sirena_sealer"] = Sealer.start_for(engine())
    return app


def serve(settings: Settings, *, host: str, port: int, workers: int = 2, threads: int = 32,
          graceful_s: int = 10, tile_url: str | None = None, proxy_hops: int = 0) -> None:
    """Run gunicorn in the foreground until SIGTERM or SIGINT; see the module docstring."""
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": f"{__name__}.StoppingThreadWorker",
        "graceful_timeout": graceful_s,
        "timeout": 60,  # a worker whose main loop stops answering for this long is replaced
        "keepalive": 5,
        "proc_name": "sirena-web",
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "preload_app": False,  # each worker builds its app (engine, Redis, sealer) after the fork
        "control_socket_disable": True,  # gunicorn 23+ would open one in ~/.gunicorn, shared by every instance
    }
    _Server(settings, options, {"tile_url": tile_url, "proxy_hops": proxy_hops}).run()
