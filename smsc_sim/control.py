"""The control port: JSON lines over TCP, so tests in other processes can steer a running simulator.

One request per line, one answer per line:

    {"cmd": "set_fault", "carrier": "alpha", "kind": "throttle", "params": {"every_nth": 5}}
    {"cmd": "clear_faults", "carrier": "alpha"}              (optional "kind")
    {"cmd": "status"}
    {"cmd": "send_mo", "carrier": "alpha", "source": "56911112222", "dest": "2000", "text": "ACK 4821"}
    {"cmd": "send_mo_batch", "carrier": "alpha", "messages": [{"source": ..., "dest": ..., "text": ...}]}
    {"cmd": "send_receipt", "carrier": "alpha", "message_id": "ab12", "stat": "UNDELIV", "err": 1}
    {"cmd": "send_receipt_batch", "carrier": "alpha", "message_ids": ["ab12", ...], "stat": "DELIVRD"}
    {"cmd": "submits", "carrier": "alpha"}                   (optional "since": index)
    {"cmd": "messages", "carrier": "alpha"}
    {"cmd": "summary", "carrier": "alpha"}                   (submits, messages, recipients, duplicates)
→   {"ok": true, ...} or {"ok": false, "error": "...", "fields": {...}}

It listens on the simulator's host (loopback by default) and has no authentication: it is a
test instrument, never to be exposed beyond the machine.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import TYPE_CHECKING, Any

from smsc_sim.errors import InvalidInput, SimError

if TYPE_CHECKING:
    from smsc_sim.simulator import Simulator


async def serve_control(sim: Simulator, host: str, port: int) -> asyncio.Server:
    """Start the control server on the running loop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                answer = await asyncio.get_running_loop().run_in_executor(None, _answer, sim, line)
                writer.write(json.dumps(answer, ensure_ascii=False, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=1 << 24)


def _answer(sim: Simulator, line: bytes) -> dict[str, Any]:
    # Runs in an executor thread: the Simulator API hands the work to the loop and waits.
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise InvalidInput("a request is a JSON object", fields={"line": "not an object"})
        return {"ok": True, **_run(sim, request)}
    except json.JSONDecodeError as exc:
        return {"ok": False, "error": f"bad JSON: {exc}"}
    except SimError as exc:
        return {"ok": False, "error": exc.message, **exc.details}
    except (TypeError, ValueError, KeyError) as exc:
        return {"ok": False, "error": f"bad request: {exc!r}"}


COMMANDS = ("set_fault", "clear_faults", "status", "send_mo", "send_mo_batch", "send_receipt",
            "send_receipt_batch", "submits", "messages", "summary")


def _run(sim: Simulator, r: dict[str, Any]) -> dict[str, Any]:
    cmd = r.get("cmd")
    if cmd == "set_fault":
        sim.set_fault(r["carrier"], r["kind"], **r.get("params", {}))
        return {}
    if cmd == "clear_faults":
        sim.clear_faults(r["carrier"], r.get("kind"))
        return {}
    if cmd == "status":
        return sim.status()
    if cmd == "send_mo":
        sim.send_mo(r["carrier"], r["source"], r["dest"], r["text"], r.get("data_coding"))
        return {}
    if cmd == "send_mo_batch":
        count = sim.send_mo_batch(r["carrier"], [(m["source"], m["dest"], m["text"]) for m in r["messages"]])
        return {"sent": count}
    if cmd == "send_receipt":
        sim.send_receipt(r["carrier"], r["message_id"], r.get("stat", "DELIVRD"), int(r.get("err", 0)),
                         source=r.get("source"), dest=r.get("dest"), style=r.get("style"), text=r.get("text", ""))
        return {}
    if cmd == "send_receipt_batch":
        count = sim.send_receipt_batch(r["carrier"], r["message_ids"], r.get("stat", "DELIVRD"), int(r.get("err", 0)))
        return {"sent": count}
    if cmd == "submits":
        return {"submits": sim.submits(r.get("carrier"))[int(r.get("since", 0)):]}
    if cmd == "summary":
        return sim.summary(r.get("carrier"))
    if cmd == "messages":
        return {"messages": sim.messages(r.get("carrier"), r.get("dest"))}
    raise InvalidInput(f"unknown command {cmd!r}", fields={"cmd": ", ".join(COMMANDS)})


class ControlClient:
    """A blocking client for the control port (tests that run the simulator as a subprocess)."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._file = self._sock.makefile("rwb")

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send one command; return the answer. Raises InvalidInput when the simulator refuses it."""
        self._file.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        self._file.flush()
        answer = json.loads(self._file.readline())
        if not answer.get("ok"):
            raise InvalidInput(f"smsc-sim refused {cmd}: {answer.get('error')}", fields=answer.get("fields", {}))
        return answer

    def set_fault(self, carrier: str, kind: str, **params: Any) -> None:
        self.request("set_fault", carrier=carrier, kind=kind, params=params)

    def clear_faults(self, carrier: str, kind: str | None = None) -> None:
        self.request("clear_faults", carrier=carrier, kind=kind)

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
