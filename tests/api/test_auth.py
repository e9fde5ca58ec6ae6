"""Bearer tokens: hashed look-up, expiry, revocation, scopes, no tokens in URLs, rate limits."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from alerting.base.db import utcnow
from alerting.base.models import ApiToken
from alerting.directory.accounts import revoke_token
from audit.actor import Actor


def _refusals(db, reason_like: str) -> int:  # type: ignore[no-untyped-def]
    return db.execute(text("SELECT count(*) FROM audit.events WHERE outcome = 'refused' AND reason LIKE :r"),
                      {"r": reason_like}).scalar_one()


def test_no_token_is_a_401_problem_with_a_bearer_challenge(client, db):
    response = client.get("/api/v1/groups")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["errors"] == [{"field": "Authorization", "reason": "missing"}]
    assert _refusals(db, "missing Authorization%") == 1


def test_an_unknown_token_is_refused_and_audited(client, db):
    response = client.get("/api/v1/groups", headers={"Authorization": "Bearer sir_nope"})
    assert response.status_code == 401 and response.get_json()["detail"] == "unknown token"
    assert _refusals(db, "unknown token") == 1


def test_a_revoked_token_stops_working_on_the_next_request(client, composer, db):
    assert client.get("/api/v1/groups", headers=composer.headers).status_code == 200
    revoke_token(db, composer.token_id, Actor.system("test"))
    response = client.get("/api/v1/groups", headers=composer.headers)
    assert response.status_code == 401 and "revoked" in response.get_json()["detail"]


def test_an_expired_token_is_refused(client, composer, db):
    db.get(ApiToken, composer.token_id).expires_at = utcnow() - timedelta(seconds=1)
    db.flush()
    response = client.get("/api/v1/groups", headers=composer.headers)
    assert response.status_code == 401 and "expired" in response.get_json()["detail"]


def test_only_the_hash_of_a_token_is_stored(composer, db):
    stored = db.execute(text("SELECT token_sha256 FROM api_tokens WHERE id = :i"), {"i": composer.token_id}).scalar()
    assert composer.token not in stored and len(stored) == 64


def test_a_token_in_the_query_string_is_a_400_even_when_valid(client, composer):
    response = client.get(f"/api/v1/groups?access_token={composer.token}")
    assert response.status_code == 400
    assert "Authorization header" in response.get_json()["detail"]
    assert client.get(f"/api/v1/groups?x={composer.token}").status_code == 400


def test_a_read_only_token_cannot_write(client, make_token, db):
    reader = make_token(scopes=("read",))
    response = client.post("/api/v1/groups", json={"name": "brigada"}, headers=reader.headers)
    assert response.status_code == 403 and response.get_json()["code"] == "refused"
    assert _refusals(db, "this token lacks the groups:write scope") == 1


def test_the_rate_limit_per_token_answers_429_with_retry_after(app, client, composer, make_token):
    app.config["SIRENA_API_RATE_PER_MIN"] = 3
    other = make_token()
    statuses = [client.get("/api/v1/groups", headers=composer.headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/v1/groups", headers=composer.headers)
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert client.get("/api/v1/groups", headers=other.headers).status_code == 200  # per token, not global


def test_a_rate_limited_token_is_audited_once_a_minute(app, client, composer, db):
    app.config["SIRENA_API_RATE_PER_MIN"] = 2
    statuses = [client.get("/api/v1/groups", headers=composer.headers).status_code for _ in range(6)]
    assert statuses == [200, 200, 429, 429, 429, 429]
    rows = db.execute(text("SELECT action, actor_token_id, payload FROM audit.events WHERE outcome = 'refused' "
                           "AND reason LIKE 'rate limit of 2 requests%'")).all()
    assert len(rows) == 1 and rows[0].actor_token_id == composer.token_id
    assert rows[0].payload["client"] == f"token:{composer.token_id}"
