"""pytest plugin: the fault suite's summary table, printed at the end and kept in docs/faults.md.

Loaded from tests/conftest.py (`pytest_plugins`), so the xdist controller has it too: each fault
case attaches its row to its report (`user_properties`), which xdist carries back to the controller.
docs/faults.md is rewritten only when every case of the suite ran and passed, so a partial run
(`-k`) never replaces the full table.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import pytest

from tests.faults.rig import RESULT_KEY

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "faults.md"
# The cases of issues 11 and 17; the file is rewritten only when each of them reported a row.
CASES = (
    "worker SIGKILLed mid-batch (twice)",
    "worker SIGTERMed mid-batch (deploy)",
    "carrier bind dropped, then refusing binds",
    "carrier refusing binds for 60 s",
    "carrier black hole (accepts, never answers)",
    "throttling every 5th submit",
    "slow carriers (0.5-2.0 s per response)",
    "Redis restarted empty",
    "Redis hung 30 s (SIGSTOP)",
    "PostgreSQL restarted (immediate)",
    "PostgreSQL down 60 s",
    "receipts before ids stored, duplicated",
    "scheduler killed when an alert is due",
    "scheduler down 60 s",
    "two approvals of one alert at once (100 rounds)",
)

_rows: list[dict[str, Any]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == RESULT_KEY:
            _rows.append({**value, "passed": report.passed})


def render(rows: list[dict[str, Any]]) -> str:
    """The table in Markdown (it reads as plain text on a terminal too)."""
    head = ("| fault | recipients | lost | duplicates on air | counted by Sirena | bound | time to complete (s) | "
            "notes |\n|---|---:|---:|---:|---:|---:|---:|---|")
    order = {name: i for i, name in enumerate(CASES)}
    lines = [head]
    for r in sorted(rows, key=lambda r: order.get(r["fault"], len(order))):
        mark = "" if r.get("passed", True) else " **(FAILED)**"
        if r["recipients"]:
            sent = f"{r['recipients']:,} | {r['lost']} | {r['duplicates']} | {r['counted']} | {r['bound']}"
        else:  # a case that sends nothing (concurrent approvals): its figures are in the notes
            sent = "— | — | — | — | —"
        lines.append(f"| {r['fault']}{mark} | {sent} | {r['seconds']:.1f} | {r.get('notes', '')} |")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _rows:
        return
    table = render(_rows)
    terminalreporter.write_sep("=", "fault suite: every recipient reached, duplicates bounded and counted")
    terminalreporter.write_line(table)
    complete = {r["fault"] for r in _rows if r.get("passed")} >= set(CASES)
    if complete and os.environ.get("SIRENA_FAULTS_NO_DOC") != "1":
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(_document(table))
        terminalreporter.write_line(f"written to {DOC}")


def _document(table: str) -> str:
    load = os.getloadavg()[0]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""# Fault suite results

Written by the last full run of `tests/faults/` ({when}, load average {load:.1f} on {os.cpu_count()} CPUs).
Each case sends one real alert through `sirena worker` and `sirena scheduler` processes, Redis,
PostgreSQL+PostGIS and the SMPP simulator (`sirena smsc-sim`), injects the fault mid-send and checks,
against the simulator's record of what reached the air: nobody lost, duplicates within the bound
and never more than Sirena counted (`possible_duplicates` on the delivery), counters right, and
`sirena audit verify` clean. The bound is what the design allows for that fault (see
`runbooks/capacity.md` and the test's docstring); "time to complete" runs from approval to the
alert's completion, fault and recovery included.

{table}

{COVERAGE}
"""


# Every row of the reliability research's fault table (RELIABILITY.md, table (a)) and where it is
# checked: a case above, another part of the suite, or why it does not apply. Kept beside this file.
COVERAGE = (Path(__file__).resolve().parent / "coverage.md").read_text(encoding="utf-8")
