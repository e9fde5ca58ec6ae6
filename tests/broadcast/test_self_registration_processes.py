"""Self-registration through the deployed processes: a handset texts ALTA CENTRO with
`sirena smsc-sim reply` (the simulator's control port), a `sirena worker` reads it and sends the
question, the handset answers SI, and `sirena target preview` counts the new resident in the zone;
the `sirena scheduler` expires a request nobody confirmed."""

from __future__ import annotations

import json

from shapely.geometry import box
from sqlalchemy import text

from alerting.base.db import transaction
from alerting.directory.registration_keywords import publish_keyword, set_policy
from audit.actor import Actor
from geo.zones import save_zone
from smsc_sim import CarrierConfig, SimConfig, Simulator
from tests.cluster import Cluster, wait_until
from tests.conftest import SIM_PASSWORDS, carriers_toml, run_sirena

ADMIN = Actor.system("test-admin")


def _state(number: str) -> str | None:
    with transaction() as s:
        return s.execute(text("SELECT state FROM registrations WHERE msisdn = :n ORDER BY id DESC LIMIT 1"),
                         {"n": number}).scalar()


def test_a_handset_registers_through_the_worker_and_the_scheduler_expires_the_unconfirmed(committed_db, redis_db,
                                                                                          tmp_path):
    sim = Simulator(SimConfig(carriers=[CarrierConfig(name=n, port=0, system_id=n, password=pw)
                                        for n, pw in SIM_PASSWORDS.items()], control_port=0))
    sim.start_in_thread()
    cluster = Cluster.with_carriers(committed_db, carriers_toml(sim.ports()), tmp_path)
    with transaction() as s:
        save_zone(s, "Centro", box(-70.67, -33.46, -70.63, -33.43), "geojson")
        publish_keyword(s, "centro", zone="Centro", actor=ADMIN)
        set_policy(s, enabled=True, actor=ADMIN)
    try:
        cluster.wait_listening(redis_db, cluster.worker())
        cluster.scheduler()
        shell = {k: v for k, v in cluster.env.items() if not k.startswith("SIM_")}

        def handset(number: str, body: str) -> dict:
            done = run_sirena(shell, "smsc-sim", "reply", "--from", number, "--to", "SIRENA-SC", body,
                              "--control-port", str(sim.control_port), "--wait", "20", "--json")
            assert done.returncode == 0, done.stdout + done.stderr
            return json.loads(done.stdout.strip().splitlines()[-1])["reading"]

        assert handset("56990001001", "ALTA CENTRO") == {"registration": "pending"}
        wait_until(lambda: len(sim.messages(dest="56990001001")) == 1, 20, "the confirmation question",
                   cluster.log_text)
        assert "responda SI antes de 24 h" in sim.messages(dest="56990001001")[0]["text"]
        assert sim.messages(dest="56990001001")[0]["source"] == "4242"
        human = run_sirena(shell, "smsc-sim", "reply", "--from", "56990001001", "--to", "SIRENA-SC", "Sí",
                           "--control-port", str(sim.control_port), "--wait", "20").stdout
        assert "Sirena took it as a self-registration: active" in human
        wait_until(lambda: len(sim.messages(dest="56990001001")) == 2, 20, "the welcome", cluster.log_text)
        preview = run_sirena(shell, "target", "preview", "--zone", "Centro", "--json")
        shown = json.loads(preview.stdout.strip().splitlines()[-1])
        assert (shown["total"], shown["by_zone"][0]["subscribed"]) == (1, 1)

        assert handset("56990001002", "JOIN") == {"registration": "pending"}
        with transaction() as s:  # a day later
            s.execute(text("UPDATE registrations SET expires_at = now() - interval '1 s' WHERE state = 'pending'"))
        wait_until(lambda: _state("+56990001002") == "expired", 20, "the scheduler's expiry pass", cluster.log_text)
        assert _state("+56990001001") == "active"
        assert len(sim.messages(dest="56990001002")) == 1  # the question; expiry sends nothing
    finally:
        cluster.stop()
        sim.stop()
