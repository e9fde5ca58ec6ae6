"""What every fault case shares: the invariants checked after recovery, and the row of the summary table.

The simulator is the ground truth of what reached the air. After any single fault and its recovery:
- lost = recipients with no message on the air = 0;
- duplicates on the air ≤ the case's documented bound, and ≤ what the system counted
  (`deliveries.possible_duplicates`): a duplicate nobody counted is a failure;
- the alert is completed, its live counters (trigger-kept `alert_counters`) equal the rows, and
  every delivery was handed to a carrier;
- the audit chain verifies (`audit.verify.verify_chain`, what `sirena audit verify` runs).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from alerting.base import db as dbmod
from alerting.base.settings import Settings
from tests.cluster import delivery_totals, state_of

RESULT_KEY = "sirena_fault"


@dataclass
class FaultRow:
    """One line of the summary table."""

    fault: str
    recipients: int
    lost: int
    duplicates: int
    counted: int
    bound: int
    seconds: float
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def on_air(simulator, prefix: str = "") -> dict[str, int]:  # type: ignore[no-untyped-def]
    """recipient → whole messages they got (2 = one duplicate); only numbers starting with `prefix`
    (digits, no +), when a case sends several alerts to groups of their own."""
    return {dest: len(texts) for dest, texts in simulator.messages_by_recipient().items() if dest.startswith(prefix)}


def check_recovered(simulator, alert_id: int, n: int, *, bound: int, settings: Settings,  # type: ignore[no-untyped-def]
                    handed_states: tuple[str, ...] = ("submitted", "delivered"), prefix: str = "") -> dict[str, int]:
    """Assert the invariants of the module docstring; return lost, duplicates, counted. `prefix`: see on_air."""
    got = on_air(simulator, prefix)
    totals = delivery_totals(alert_id)
    lost = n - len(got)
    duplicates = sum(c - 1 for c in got.values())
    counted = totals.pop("possible_duplicates")
    assert lost == 0, f"lost {lost} recipients (deliveries: {totals})"
    assert duplicates <= bound, f"{duplicates} duplicates on air (counted {counted}) above the bound {bound}"
    assert duplicates <= counted, f"{duplicates} duplicates reached the air but the system counted {counted}"
    assert state_of(alert_id).value == "completed"
    assert sum(totals.get(s, 0) for s in handed_states) == n, f"deliveries not all handed over: {totals}"
    with dbmod.transaction() as s:
        # One snapshot for both: receipts keep moving rows to `delivered` while we look.
        s.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        counters = {st: int(c) for st, c in s.execute(text(
            "SELECT state, sum(n) FROM alert_counters WHERE alert_id = :a GROUP BY state HAVING sum(n) <> 0"),
            {"a": alert_id})}
        rows = {st: int(c) for st, c in s.execute(text(
            "SELECT state, count(*) FROM deliveries WHERE alert_id = :a GROUP BY state"), {"a": alert_id})}
    assert counters == rows, f"live counters {counters} disagree with the rows {rows}"
    check_audit(settings)
    return {"lost": lost, "duplicates": duplicates, "counted": counted}


def check_audit(settings: Settings) -> None:
    from audit.verify import verify_chain

    verdict = verify_chain(dbmod.engine(), settings)
    assert verdict.ok, f"audit verify failed: {verdict.first}"
    assert verdict.count > 0


def record(request: pytest.FixtureRequest, row: FaultRow) -> None:
    """Hand the row to the summary (tests/faults/summary.py); works across xdist workers."""
    request.node.user_properties.append((RESULT_KEY, asdict(row)))
    print(f"\nfault result: {asdict(row)}")


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 1)
