"""The demo's child processes: simulator, gateway workers, scheduler and console."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SIRENA = str(Path(sys.executable).parent / "sirena")
SIM_CONFIG = Path(__file__).resolve().parents[3] / "smsc_sim" / "demo.toml"
CONTROL_PORT = 2780


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP (a service manager, a closed terminal) stop the demo as Ctrl-C does: by
    KeyboardInterrupt, so its `finally` stops the children. Without this the default action killed
    the demo alone, and its children, each in a session of its own, kept ports 8000, 2775, 2776
    and 2780."""
    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP are ignored while the children are being stopped: a second
    Ctrl-C must not cut the stop short and leave one of them holding its port."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def carrier_passwords() -> dict[str, str]:
    """Fresh simulator passwords for this run (SMPP allows 8 characters); never stored anywhere."""
    return {f"SIRENA_CARRIER_{name}_PASSWORD": secrets.token_hex(4) for name in ("ALPHA", "BETA")}


@dataclass
class Children:
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([SIRENA, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def simulator(self, pdu_log: Path) -> None:
        proc = subprocess.Popen([SIRENA, "smsc-sim", "--config", str(SIM_CONFIG), "--log", str(pdu_log),
                                 "--no-records"], env=self.env, stdout=subprocess.PIPE,
                                stderr=open(self.logs / "simulator.log", "wb"), start_new_session=True)  # noqa: SIM115
        self.procs["simulator"] = proc
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            if json.loads(line or b"{}").get("smsc_sim") == "listening":
                return
        raise RuntimeError(f"the simulator did not start; see {self.logs / 'simulator.log'} "
                           "(are ports 2775, 2776 and 2780 free?)")

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.procs.items()}

    def stop(self) -> None:
        """Stop every child cleanly (SIGTERM, then SIGKILL after 10 s)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
