"""How many submit_sm/s the simulator answers on one bind over loopback.

The simulator runs as `sirena smsc-sim` in its own process; the client here is a windowed raw
socket (pre-encoded PDUs, one sendall per window refill), so the client is not the limit.
Runs four modes: nothing kept, records in memory, records + JSON-lines file log, records + a
receipt per submit over a transceiver. Rates depend on what else runs on the machine; the
server's CPU per message (and the capacity of one core it implies) is the figure to compare.

    .venv/bin/python bench/smsc_sim.py [--count 200000] [--window 200]

Last line: {"bench": "smsc_sim", ...}.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
HEADER = struct.Struct(">IIII")


def _pdu(command_id: int, seq: int, body: bytes) -> bytes:
    return HEADER.pack(16 + len(body), command_id, 0, seq) + body


def _submit_body(i: int, registered_delivery: int) -> bytes:
    text = f"ALERTA simulacro {i:07d}: responda ACK 4821".encode()
    return (b"\0" + b"\x01\x01" + b"2000\0" + b"\x01\x01" + f"569{i % 100_000_000:08d}".encode() + b"\0"
            + b"\0\0\0" + b"\0" + b"\0" + bytes((registered_delivery, 0, 0, 0, len(text))) + text)


def _read_pdus(sock: socket.socket, buf: bytearray) -> list[tuple[int, int, int]]:
    """Read what is available (blocking for at least one PDU); return (command_id, status, seq)."""
    out: list[tuple[int, int, int]] = []
    while not out:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("simulator closed the connection")
        buf += chunk
        pos = 0
        while len(buf) - pos >= 16:
            length, command_id, status, seq = HEADER.unpack_from(buf, pos)
            if len(buf) - pos < length:
                break
            out.append((command_id, status, seq))
            pos += length
        del buf[:pos]
    return out


def run_client(port: int, count: int, window: int, registered_delivery: int) -> dict[str, float]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bind = b"sirena\0" + b"sirena\0" + b"\0" + bytes((0x34, 0, 0)) + b"\0"
    sock.sendall(_pdu(0x00000009 if registered_delivery else 0x00000002, 1, bind))
    buf = bytearray()
    (command_id, status, _), = _read_pdus(sock, buf)
    if status != 0:
        raise SystemExit(f"bind refused: status 0x{status:x}")
    # Pre-encode the bodies: the client must cost far less than the server per PDU.
    bodies = [_submit_body(i, registered_delivery) for i in range(min(count, 10_000))]
    sent = answered = errors = receipts = 0
    seq = 2
    start = time.perf_counter()
    while answered < count:
        burst = []
        while sent < count and sent - answered < window:
            burst.append(_pdu(0x00000004, seq, bodies[sent % len(bodies)]))
            seq += 1
            sent += 1
        if burst:
            sock.sendall(b"".join(burst))
        acks = []
        for command_id, status, seq_in in _read_pdus(sock, buf):
            if command_id == 0x80000004:
                answered += 1
                errors += status != 0
            elif command_id == 0x00000005:
                receipts += 1
                acks.append(_pdu(0x80000005, seq_in, b"\0"))
        if acks:
            sock.sendall(b"".join(acks))
    seconds = time.perf_counter() - start
    sock.close()
    return {"seconds": round(seconds, 3), "per_s": round(count / seconds), "errors": errors,
            "receipts_seen": receipts}


def run_mode(name: str, count: int, window: int, extra: list[str], registered_delivery: int = 0) -> dict[str, object]:
    cmd = [sys.executable, "-c", "from alerting.interfaces.cli import main; main()", "smsc-sim", "--port", "0", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["ports"]["default"]
        server = psutil.Process(proc.pid)
        cpu0 = sum(server.cpu_times()[:2])
        result = run_client(port, count, window, registered_delivery)
        cpu = sum(server.cpu_times()[:2]) - cpu0
    finally:
        proc.terminate()
        proc.wait(10)
    row = {"mode": name, "count": count, "window": window, **result,
           "server_cpu_us_per_msg": round(cpu / count * 1e6, 1)}
    print(f"{name:28s} {row['per_s']:>8} submit_sm/s  server CPU {row['server_cpu_us_per_msg']} µs/msg"
          f"  errors {row['errors']}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--window", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            run_mode("no records", args.count, args.window, ["--no-records"]),
            run_mode("records in memory", args.count, args.window, []),
            run_mode("memory + file log", args.count, args.window, ["--log", str(Path(tmp) / "pdus.jsonl")]),
            run_mode("memory + receipts (trx)", args.count, args.window, [], registered_delivery=1),
        ]
    print(json.dumps({"bench": "smsc_sim", "count": args.count, "window": args.window,
                      "submits_per_s": {r["mode"]: r["per_s"] for r in rows},
                      "server_cpu_us_per_msg": {r["mode"]: r["server_cpu_us_per_msg"] for r in rows},
                      # What one core could answer at that CPU cost: comparable across loaded runs.
                      "server_capacity_per_s": {r["mode"]: round(1e6 / max(float(r["server_cpu_us_per_msg"]), 0.1))
                                                for r in rows},
                      "target_per_s": 20_000}))


if __name__ == "__main__":
    main()
