"""The demo's child processes: simulator, gateway workers, scheduler and console."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SIRENA = str(Path(sys.executable).parent / "sirena")
SIM_CONFIG = Path(__file__).resolve().parent.parent.parent / "broadcast" / "smsc_sim" / "demo.toml"
CONTROL_PORT = 2780


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
