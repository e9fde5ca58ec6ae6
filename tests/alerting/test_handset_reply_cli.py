"""`sirena smsc-sim reply`: a simulated handset answers through a running simulator, as the
deployment page tells an IT person to check the whole chain (simulator → worker → Sirena)."""

from __future__ import annotations

import json

from sqlalchemy import text

from alerting.base.db import transaction
from smsc_sim import CarrierConfig, SimConfig, Simulator
from tests.cluster import Cluster, approved_alert, delivery_totals, seed_group, wait_until
from tests.conftest import SIM_PASSWORDS, carriers_toml, run_sirena


def test_a_handset_replies_by_command_and_sirena_says_what_it_made_of_it(committed_db, redis_db, tmp_path):
    sim = Simulator(SimConfig(carriers=[CarrierConfig(name=n, port=0, system_id=n, password=pw)
                                        for n, pw in SIM_PASSWORDS.items()], control_port=0))
    sim.start_in_thread()
    cluster = Cluster.with_carriers(committed_db, carriers_toml(sim.ports()), tmp_path)
    try:
        cluster.wait_listening(redis_db, cluster.worker())
        seed_group(3)
        alert_id = approved_alert({"es": "Simulacro: responda ACK {codigo}"})
        wait_until(lambda: delivery_totals(alert_id).get("submitted", 0) + delivery_totals(alert_id).get(
            "delivered", 0) == 3, 20, "the alert to be handed to the carriers", cluster.log_text)
        with transaction() as s:
            code, reference = s.execute(text("SELECT reply_code, reference FROM alerts WHERE id = :a"),
                                        {"a": alert_id}).one()
        shell = {k: v for k, v in cluster.env.items() if not k.startswith("SIM_")}  # no carrier password needed
        done = run_sirena(shell, "smsc-sim", "reply", "--from", "+56990000002", "--to", "SIRENA-SC", f"ACK {code}",
                          "--control-port", str(sim.control_port), "--wait", "20", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        data = json.loads(done.stdout.strip().splitlines()[-1])
        assert (data["to"], data["carrier"], data["sender"]) == ("4242", "alpha", "SIRENA-SC")
        assert data["reading"] == {"meaning": "ack", "unmatched_reason": None, "reference": reference}
        human = run_sirena(shell, "smsc-sim", "reply", "--from", "56990000003", "--to", "BOMBEROS", "AYUDA",
                           "--control-port", str(sim.control_port), "--wait", "20").stdout
        assert "reply sent: 56990000003 → 5555 (BOMBEROS) through alpha: 'AYUDA'" in human
        assert "Sirena read it as help, matched to no alert (unknown_keyword)" in human
        refused = run_sirena(shell, "smsc-sim", "reply", "--from", "56990000003", "--to", "NADIE", "hola",
                             "--control-port", str(sim.control_port))
        assert refused.returncode == 2 and "--to: 'NADIE' is no sender of" in refused.stderr
    finally:
        cluster.stop()
        sim.stop()
