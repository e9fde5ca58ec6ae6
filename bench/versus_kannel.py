"""Sirena's pipeline beside Kannel with its message store, interleaved on this machine: the ratio of their rates.

    .venv/bin/python bench/versus_kannel.py [--n 100000] [--kannel-n 20000] [--rounds 2]
                                            [--no-store-too] [--peers DIR]

Each round runs Kannel 1.4.5 (bearerbox + smsbox, HTTP sendsms → SMPP → a loopback sink, Debian's
package installed on demand) with `store-type = spool`, then `bench/pipeline.py` (N recipients,
delivery receipts on, every receipt matched), then Kannel again, so both see the same machine;
the ratio of a round is Sirena's rate over the mean of the two Kannel runs around it. Kannel's
harness is the peers' (`run_kannel.sh` in `--peers`, by default `../shared/peers` beside the
checkout); it sends no receipts and its CPU figure is bearerbox + smsbox only, while Sirena's
counts its workers, the simulator, PostgreSQL, Redis and the scheduler. `--no-store-too` also runs
Kannel without a store (the moonshot). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def last_json(output: str, what: str) -> dict[str, Any]:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise SystemExit(f"{what} printed no JSON line:\n{output[-2000:]}")


def kannel(peers: Path, n: int, variant: str) -> dict[str, Any]:
    env = {**os.environ, "N": str(n), "RUNS": "1", "DRAIN_RUNS": "0", "VARIANTS": variant}
    done = subprocess.run(["bash", str(peers / "run_kannel.sh")], env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    if done.returncode != 0:
        raise SystemExit(f"run_kannel.sh failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result = last_json(done.stdout, "run_kannel.sh")["variants"][variant]
    return {"msgs_per_s": result["msgs_per_s"], "cpu_us_per_msg": result["cpu_us_per_msg"],
            "lost": result["lost"], "dup": result["dup"]}


def sirena(n: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "pipeline.py"), "--n", str(n)], capture_output=True,
                          text=True, timeout=3600, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"bench/pipeline.py failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result = last_json(done.stdout, "bench/pipeline.py")
    return {"msgs_per_s": result["msgs_per_s"], "cpu_us_per_msg": result["processes_cpu_us_per_msg"],
            "by_process": result["cpu_us_per_msg_by_process"], "lost": result["lost"], "dup": result["dup"],
            "all_delivered_s": result["all_delivered_s"], "load_avg_1m": result["load_avg_1m"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="Sirena's recipients per run")
    parser.add_argument("--kannel-n", type=int, default=20_000, help="messages per Kannel run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-store-too", action="store_true", help="also Kannel without its store")
    parser.add_argument("--peers", type=Path, default=ROOT.parent / "shared" / "peers",
                        help="the folder holding run_kannel.sh")
    args = parser.parse_args()
    if not (args.peers / "run_kannel.sh").is_file():
        raise SystemExit(f"--peers: no run_kannel.sh in {args.peers}")
    variants = ["mps10-spool"] + (["mps10"] if args.no_store_too else [])
    rounds = []
    before = {v: kannel(args.peers, args.kannel_n, v) for v in variants}
    for k in range(args.rounds):
        ours = sirena(args.n)
        after = {v: kannel(args.peers, args.kannel_n, v) for v in variants}
        kannel_rate = {v: (before[v]["msgs_per_s"] + after[v]["msgs_per_s"]) / 2 for v in variants}
        ratio = {v: round(ours["msgs_per_s"] / kannel_rate[v], 2) for v in variants}
        rounds.append({"sirena": ours, "kannel_before": before, "kannel_after": after, "ratio": ratio})
        print(f"round {k + 1}: Sirena {ours['msgs_per_s']:,} msg/s at {ours['cpu_us_per_msg']} µs/msg "
              f"(receipts matched, lost {ours['lost']}, duplicates {ours['dup']}); "
              + "; ".join(f"Kannel {v} {before[v]['msgs_per_s']:,.0f} / {after[v]['msgs_per_s']:,.0f} msg/s at "
                          f"{before[v]['cpu_us_per_msg']} / {after[v]['cpu_us_per_msg']} µs/msg → ratio {ratio[v]}"
                          for v in variants), flush=True)
        before = after
    summary = {v: statistics.median(r["ratio"][v] for r in rounds) for v in variants}
    print(f"Sirena / Kannel (median of {len(rounds)} rounds): "
          + ", ".join(f"{v} {summary[v]}" for v in variants))
    print(json.dumps({"bench": "versus_kannel", "n": args.n, "kannel_n": args.kannel_n,
                      "ratio_median": summary, "rounds": rounds}))


if __name__ == "__main__":
    main()
