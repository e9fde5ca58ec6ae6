"""/readyz: PostgreSQL, Redis, and a bind up for every sender, from what a real gateway worker publishes."""

from __future__ import annotations


def test_no_gateway_running_is_not_ready(client):
    response = client.get("/api/v1/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["postgres"]["ok"] and body["checks"]["redis"]["ok"]
    assert "no gateway worker" in body["checks"]["binds"]["why"]


def test_ready_while_a_worker_runs_with_every_sender_bound(worker_process, client):
    worker_process()
    response = client.get("/api/v1/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"]["binds"]["routes"] == {"BOMBEROS": ["alpha"], "SIRENA-SC": ["alpha", "beta"]}


def test_a_sender_whose_only_carrier_refuses_binds_is_named(worker_process, simulator, client):
    simulator.set_fault("alpha", "refuse_bind", mode="nack", status=0x0D)
    worker_process()
    response = client.get("/api/v1/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["binds"]["why"] == "no bind up for sender(s) BOMBEROS"


def test_the_probes_answer_at_the_root_too_without_signing_in(worker_process, client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    assert client.get("/readyz").status_code == 503  # no gateway published yet
    worker_process()
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "sirena_api_requests" in metrics.get_data(as_text=True)
