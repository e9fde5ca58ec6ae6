"""Submit rate of one windowed bind (broadcast.binds through broadcast.pool) against the simulator.

The simulator runs as `sirena smsc-sim` in its own process (it must never be the bottleneck); this
process holds one bind and submits batches through `CarrierPool.submit_many`, the gateway's path,
with window 1, 10 and 100. Prints submits/s and CPU µs per message (this process, and the
simulator's for reference).

    .venv/bin/python bench/smpp.py [--count 50000] [--batch 1000] [--receipts]

Last line: {"bench": "smpp", ...}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broadcast.carriers import parse_carriers  # noqa: E402
from broadcast.pool import CarrierPool, OutboundMessage, Outcome  # noqa: E402

PASSWORD = "bench"  # the throwaway simulator's account, not a secret


def start_simulator() -> tuple[subprocess.Popen[bytes], int]:
    args = [str(ROOT / ".venv" / "bin" / "sirena"), "smsc-sim", "--port", "0", "--no-records",
            "--system-id", "bench", "--password", PASSWORD]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if data.get("smsc_sim") == "listening":
            return proc, next(iter(data["ports"].values()))
    proc.kill()
    raise SystemExit("the simulator did not start")


def carriers_text(port: int, window: int, receipts: bool, binds: int = 1) -> str:
    return f"""
[senders.SC]
kind = "short"
address = "4242"
[carriers.sim]
host = "127.0.0.1"
port = {port}
system_id = "bench"
password_env = "PW"
binds = {binds}
window = {window}
tps = 1000000
registered_delivery = {int(receipts)}
senders = ["SC"]
"""


def run_window(port: int, window: int, count: int, batch: int, receipts: bool, sim: psutil.Process,
               binds: int = 1) -> dict:
    config = parse_carriers(carriers_text(port, window, receipts, binds), {"PW": PASSWORD})
    delivered = [0]

    def on_deliver(carrier: str, bind: str, fields: dict) -> None:
        delivered[0] += 1

    pool = CarrierPool(config, on_deliver)
    pool.start()
    text = b"ALERTA simulacro: evacuar sector norte por ruta 5. Responda ACK 4821"
    messages = [OutboundMessage(i, "SC", f"+569{i:08d}", [text]) for i in range(count)]
    warm = pool.submit_many(messages[:batch])  # connect-time effects out of the figure
    assert all(r.outcome is Outcome.SUBMITTED for r in warm)
    cpu0, sim0, t0 = time.process_time(), sum(sim.cpu_times()[:2]), time.perf_counter()
    submitted = 0
    for start in range(batch, count, batch):
        results = pool.submit_many(messages[start:start + batch])
        submitted += sum(r.outcome is Outcome.SUBMITTED for r in results)
    wall = time.perf_counter() - t0
    cpu, sim_cpu = time.process_time() - cpu0, sum(sim.cpu_times()[:2]) - sim0
    pool.stop(drain_s=2)
    n = count - batch
    return {"window": window, "binds": binds, "messages": n, "submitted": submitted, "seconds": round(wall, 3),
            "submits_per_s": round(n / wall), "cpu_us_per_msg": round(cpu / n * 1e6, 1),
            "sim_cpu_us_per_msg": round(sim_cpu / n * 1e6, 1), "receipts_handled": delivered[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="messages per window size")
    parser.add_argument("--batch", type=int, default=1000, help="messages per submit_many call")
    parser.add_argument("--receipts", action="store_true", help="ask for receipts (deliver_sm back)")
    args = parser.parse_args()
    proc, port = start_simulator()
    try:
        sim = psutil.Process(proc.pid)
        rows = []
        for window in (1, 10, 100):
            count = max(args.count // 5, 2 * args.batch) if window == 1 else args.count
            row = run_window(port, window, count, args.batch, args.receipts, sim)
            rows.append(row)
            _show(row)
        # For reference only (not one bind): the pipeline's shape, 4 binds in one process.
        four = run_window(port, 100, args.count, args.batch, args.receipts, sim, binds=4)
        _show(four)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(json.dumps({"bench": "smpp", "binds": 1, "receipts": args.receipts, "batch": args.batch,
                      "cpus": psutil.cpu_count(), "windows": rows,
                      "submits_per_s": {r["window"]: r["submits_per_s"] for r in rows},
                      "cpu_us_per_msg": {r["window"]: r["cpu_us_per_msg"] for r in rows},
                      "four_binds_window_100": {"submits_per_s": four["submits_per_s"],
                                                "cpu_us_per_msg": four["cpu_us_per_msg"]}}))


def _show(row: dict) -> None:
    print(f"{row['binds']} bind(s), window {row['window']:>3}: {row['submits_per_s']:>7,} submit/s  "
          f"{row['cpu_us_per_msg']:>6} µs CPU/msg here, {row['sim_cpu_us_per_msg']} µs in the simulator "
          f"({row['messages']:,} messages)")


if __name__ == "__main__":
    main()
