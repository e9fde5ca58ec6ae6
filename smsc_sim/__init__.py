"""`sirena smsc-sim`: the project's own SMPP 3.4 SMSC simulator (asyncio, real TCP).

Several carriers at once (one port each), binds checked against their accounts, unique message
ids, delivery receipts (appendix-B text and/or TLVs), simulated handsets that reply, fault
injection (config, control port, or the Python API) and a log of every PDU: the ground truth of
what reached "the air" for tests, benchmarks and the demo.
"""

from smsc_sim.config import (
    CarrierConfig,
    FaultSpec,
    HandsetConfig,
    ReceiptConfig,
    SimConfig,
    load_config,
)
from smsc_sim.simulator import Simulator

__all__ = [
    "CarrierConfig",
    "FaultSpec",
    "HandsetConfig",
    "ReceiptConfig",
    "SimConfig",
    "Simulator",
    "load_config",
]
