"""Fault injection for one simulated carrier: what is wrong with it right now.

Kinds and their parameters (every kind also takes `for_s`: the fault clears itself after that):

| kind | parameters | effect |
|---|---|---|
| refuse_bind | mode="nack"|"close", status=0x0D, times=0 | binds refused (error or TCP close); 0 = until cleared |
| wrong_password | times=0 | binds refused with ESME_RINVPASWD even with the right password |
| drop_after | n, times=1, rst=False | a connection dropped after n more PDUs (answered; a bind counts) |
| drop_at | at (unix time) or in_s | every connection of the carrier is dropped at that moment (one shot) |
| throttle | every_nth or above_tps, status=0x58 | that submit_sm answered ESME_RTHROTTLED (or `status`) |
| slow | delay_s (seconds or [min, max]) | every response delayed |
| black_hole | deliver=False, enquire_link=False | submit_sm never answered; deliver=True: it still reaches the air |
| reject | share, status=0x0B | that share of submit_sm refused with a permanent error |
| restart | after_s | all connections and the listener closed, back after after_s (one shot) |
| dlr_before_resp | — | a receipt asked for is sent before its submit_sm_resp |
| duplicate_receipts | share=1.0 | that share of receipts is sent twice |
| unreachable | numbers, stat="UNDELIV", refuse, status=0x0B | to these numbers: final receipt `stat` (or refused) |

`times` counts refusals or drops before the fault clears itself; 0 = until cleared.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from smsc_sim import pdu
from smsc_sim.errors import InvalidInput

KINDS: dict[str, set[str]] = {
    "refuse_bind": {"mode", "status", "times"},
    "wrong_password": {"times"},
    "drop_after": {"n", "times", "rst"},
    "drop_at": {"at", "in_s"},
    "throttle": {"every_nth", "above_tps", "status"},
    "slow": {"delay_s"},
    "black_hole": {"deliver", "enquire_link"},
    "reject": {"share", "status"},
    "restart": {"after_s"},
    "dlr_before_resp": set(),
    "duplicate_receipts": {"share"},
    "unreachable": {"numbers", "stat", "refuse", "status"},
}
UNREACHABLE_STATES = ("UNDELIV", "EXPIRED", "REJECTD")
# One-shot actions: carried out when set, not kept as a state.
ACTIONS = {"drop_at", "restart"}


@dataclass
class Fault:
    kind: str
    params: dict[str, Any]
    until: float | None = None  # time.monotonic() deadline, from for_s
    count: int = 0
    used: int = 0


def check_fault(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate a fault; return its parameters with defaults. Raises InvalidInput naming the field."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown fault kind {kind!r}", fields={"kind": f"expected one of {', '.join(KINDS)}"})
    unknown = set(params) - KINDS[kind] - {"for_s"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(f"fault {kind} has no parameter {name!r}", fields={name: "unknown parameter"})
    p = dict(params)
    if kind == "refuse_bind":
        p.setdefault("mode", "nack")
        p.setdefault("status", pdu.ESME_RBINDFAIL)
        p.setdefault("times", 0)
        if p["mode"] not in ("nack", "close"):
            raise InvalidInput("refuse_bind mode", fields={"mode": "expected nack or close"})
    elif kind == "wrong_password":
        p.setdefault("times", 0)
    elif kind == "drop_after":
        if int(p.get("n", 0)) < 1:
            raise InvalidInput("drop_after needs n >= 1", fields={"n": "expected an integer >= 1"})
        p.setdefault("times", 1)
        p.setdefault("rst", False)
    elif kind == "drop_at":
        if ("at" in p) == ("in_s" in p):
            raise InvalidInput("drop_at needs exactly one of at, in_s", fields={"at": "or in_s"})
    elif kind == "throttle":
        if ("every_nth" in p) == ("above_tps" in p):
            raise InvalidInput("throttle needs exactly one of every_nth, above_tps",
                               fields={"every_nth": "or above_tps"})
        p.setdefault("status", pdu.ESME_RTHROTTLED)
    elif kind == "slow":
        delay = p.get("delay_s", 1.0)
        low, high = (delay, delay) if isinstance(delay, int | float) else (delay[0], delay[1])
        if low < 0 or high < low:
            raise InvalidInput("slow delay_s", fields={"delay_s": "expected seconds or [min, max]"})
        p["delay_s"] = (float(low), float(high))
    elif kind == "black_hole":
        p.setdefault("deliver", False)
        p.setdefault("enquire_link", False)
    elif kind == "reject":
        if not 0.0 <= float(p.get("share", -1)) <= 1.0:
            raise InvalidInput("reject share", fields={"share": "expected a share 0..1"})
        p.setdefault("status", pdu.ESME_RINVDSTADR)
    elif kind == "restart":
        p.setdefault("after_s", 1.0)
    elif kind == "duplicate_receipts":
        p.setdefault("share", 1.0)
    elif kind == "unreachable":
        numbers = p.get("numbers")
        if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) and n for n in numbers):
            raise InvalidInput("unreachable needs numbers", fields={"numbers": "expected a list of phone numbers"})
        p["numbers"] = sorted({n.lstrip("+") for n in numbers})
        p.setdefault("stat", "UNDELIV")
        if p["stat"] not in UNREACHABLE_STATES:
            raise InvalidInput("unreachable stat", fields={"stat": f"expected one of {', '.join(UNREACHABLE_STATES)}"})
        p.setdefault("refuse", False)
        p.setdefault("status", pdu.ESME_RINVDSTADR)
    return p


@dataclass
class SubmitVerdict:
    """What to do with one submit_sm: answer status, delay, or no answer at all."""

    status: int = 0
    delay_s: float = 0.0
    answer: bool = True
    on_air: bool = True


@dataclass
class FaultSet:
    """The active faults of one carrier. Used only from the simulator's event loop."""

    rng: random.Random
    faults: dict[str, Fault] = field(default_factory=dict)
    _tps_second: int = 0
    _tps_count: int = 0

    def set(self, kind: str, params: dict[str, Any]) -> Fault:
        """Activate (or replace) a stateful fault; parameters must be checked already."""
        for_s = params.get("for_s")
        fault = Fault(kind, params, until=time.monotonic() + float(for_s) if for_s else None)
        self.faults[kind] = fault
        return fault

    def clear(self, kind: str | None = None) -> None:
        if kind is None:
            self.faults.clear()
        else:
            self.faults.pop(kind, None)

    def active(self, kind: str) -> Fault | None:
        fault = self.faults.get(kind)
        if fault is not None and fault.until is not None and time.monotonic() >= fault.until:
            del self.faults[kind]
            return None
        return fault

    def describe(self) -> list[dict[str, Any]]:
        return [{"kind": f.kind, **f.params} for f in self.faults.values() if self.active(f.kind)]

    def _consume(self, fault: Fault) -> None:
        fault.used += 1
        times = int(fault.params.get("times", 0))
        if times and fault.used >= times:
            self.faults.pop(fault.kind, None)

    def bind_refusal(self) -> tuple[str, int] | None:
        """("nack", status) or ("close", 0) when the next bind must be refused, else None."""
        fault = self.active("wrong_password")
        if fault is not None:
            self._consume(fault)
            return "nack", pdu.ESME_RINVPASWD
        fault = self.active("refuse_bind")
        if fault is not None:
            self._consume(fault)
            return fault.params["mode"], int(fault.params["status"])
        return None

    def drop_threshold(self) -> Fault | None:
        return self.active("drop_after")

    def dropped(self, fault: Fault) -> None:
        """A connection was dropped under `fault`; count it against `times`."""
        self._consume(fault)

    def response_delay(self) -> float:
        fault = self.active("slow")
        if fault is None:
            return 0.0
        low, high = fault.params["delay_s"]
        return low if low == high else self.rng.uniform(low, high)

    def answers_enquire_link(self) -> bool:
        fault = self.active("black_hole")
        return fault is None or bool(fault.params["enquire_link"])

    def unreachable(self, destination: str) -> Fault | None:
        """The `unreachable` fault when it names this destination number, else None."""
        fault = self.active("unreachable")
        if fault is not None and destination.lstrip("+") in fault.params["numbers"]:
            return fault
        return None

    def judge_submit(self, destination: str = "") -> SubmitVerdict:
        """The fate of one submit_sm to `destination` under the active faults (call once per submit)."""
        verdict = SubmitVerdict(delay_s=self.response_delay())
        fault = self.unreachable(destination)
        if fault is not None and fault.params["refuse"]:
            verdict.status, verdict.on_air = int(fault.params["status"]), False
            return verdict
        fault = self.active("black_hole")
        if fault is not None:
            verdict.answer = False
            verdict.on_air = bool(fault.params["deliver"])
            return verdict
        fault = self.active("throttle")
        if fault is not None:
            fault.count += 1
            if "every_nth" in fault.params:
                hit = fault.count % int(fault.params["every_nth"]) == 0
            else:
                second = int(time.monotonic())
                if second != self._tps_second:
                    self._tps_second, self._tps_count = second, 0
                self._tps_count += 1
                hit = self._tps_count > float(fault.params["above_tps"])
            if hit:
                verdict.status, verdict.on_air = int(fault.params["status"]), False
                return verdict
        fault = self.active("reject")
        if fault is not None and self.rng.random() < float(fault.params["share"]):
            verdict.status, verdict.on_air = int(fault.params["status"]), False
        return verdict

    def dlr_before_resp(self) -> bool:
        return self.active("dlr_before_resp") is not None

    def receipt_copies(self) -> int:
        fault = self.active("duplicate_receipts")
        if fault is not None and self.rng.random() < float(fault.params["share"]):
            return 2
        return 1
