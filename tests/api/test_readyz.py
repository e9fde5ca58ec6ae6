"""/readyz: PostgreSQL, Redis, and a bind up for every sender, from what the gateways publish."""

from __future__ import annotations

from broadcast.presence import publish


def health(binds: dict[str, str]) -> dict[str, object]:
    """In the shape CarrierPool.health() publishes: the carriers under "carriers"."""
    return {"carriers": {
        "alpha": {"test": True, "binds": {f"alpha-{i}": {"state": s} for i, s in enumerate(binds["alpha"])}},
        "beta": {"test": True, "binds": {f"beta-{i}": {"state": s} for i, s in enumerate(binds["beta"])}}},
        "possible_duplicates": 0}


SENDERS = {"SIRENA-SC": ["alpha", "beta"], "BOMBEROS": ["alpha"]}


def test_no_gateway_running_is_not_ready(client):
    response = client.get("/api/v1/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["postgres"]["ok"] and body["checks"]["redis"]["ok"]
    assert "no gateway worker" in body["checks"]["binds"]["why"]


def test_ready_when_every_sender_has_a_bind_up(client, redis_db):
    publish(redis_db, "gateway", "gw-a", {"health": health({"alpha": ["up", "down"], "beta": ["down"]}),
                                          "senders": SENDERS})
    response = client.get("/api/v1/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"]["binds"]["routes"] == {"BOMBEROS": ["alpha"], "SIRENA-SC": ["alpha"]}


def test_a_sender_whose_only_carrier_is_down_is_named(client, redis_db):
    publish(redis_db, "gateway", "gw-a", {"health": health({"alpha": ["down"], "beta": ["up"]}), "senders": SENDERS})
    response = client.get("/api/v1/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["binds"]["why"] == "no bind up for sender(s) BOMBEROS"


def test_the_probes_answer_at_the_root_too_without_signing_in(client, redis_db):
    assert client.get("/healthz").get_json()["status"] == "ok"
    assert client.get("/readyz").status_code == 503  # no gateway published yet
    publish(redis_db, "gateway", "gw-a", {"health": health({"alpha": ["up"], "beta": ["up"]}), "senders": SENDERS})
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "sirena_api_requests" in metrics.get_data(as_text=True)
