"""The gateway this process runs, if any: what the jobs RQ runs here (send a batch, send follow-ups)
send through. The rest of the process's runtime (settings, database, Redis) is in
alerting/base/runtime.py; a gateway is the sending side's own, held open by `sirena worker`.

A gateway registers itself when it starts and leaves when it stops; a process with no gateway
(the web app, the scheduler) refuses those jobs with a clear error instead of sending nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broadcast.gateway import Gateway

_current: Gateway | None = None


def current() -> Gateway:
    """The gateway of this process; send-batch and follow-up jobs only run where one was started."""
    if _current is None:
        raise RuntimeError("this job needs a gateway worker (`sirena worker`): this process holds no binds")
    return _current


def install(gateway: Gateway) -> None:
    global _current
    _current = gateway


def uninstall(gateway: Gateway) -> None:
    """Forget `gateway` if it is the current one (a later gateway stays)."""
    global _current
    if _current is gateway:
        _current = None
