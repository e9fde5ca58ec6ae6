"""Bearer tokens for the API: hashed look-up, expiry, revocation and scopes, checked per request.

A token acts as its operator: the actor carries the operator's id and roles as they are on this
request, so the authorization table (alerting/directory/permissions.py) and the lifecycle's two-person rule
bind a token exactly as they bind the operator at the console (a token may approve only alerts
its operator did not write, only with the `alerts:approve` scope, and only while its operator
has the approver role).
"""

from __future__ import annotations

import time
from datetime import timedelta

from flask import Flask, request
from sqlalchemy import select, update

from alerting.base.db import transaction, utcnow
from alerting.base.models import ApiToken, Operator
from alerting.directory.accounts import token_digest
from alerting.interfaces.api.problems import BadRequest, TooManyRequests, Unauthorized, redis_of
from audit.actor import Actor

DEFAULT_RATE_PER_MIN = 600
_LAST_USED_GRANULARITY = timedelta(minutes=1)  # one write a minute per token, not one per request
_QUERY_TOKEN_NAMES = {"access_token", "token", "api_key", "apikey", "bearer"}


def refuse_token_in_query() -> None:
    """Query strings end up in proxy and server logs: a token sent there is refused (and is burnt)."""
    for name, value in request.args.items(multi=True):
        if name.lower() in _QUERY_TOKEN_NAMES or value.startswith("sir_"):
            raise BadRequest(f'query parameter "{name}": send the token in the Authorization header, '
                             "never in the URL (revoke this token: it may be in logs now)",
                             fields={name: "a token must not be sent in the query string"})


def authenticate() -> Actor:
    """The actor of the request's bearer token. Raises Unauthorized naming what is wrong."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if not header:
        raise Unauthorized("missing Authorization header; send `Authorization: Bearer <token>`",
                           fields={"Authorization": "missing"})
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("the Authorization header must be `Bearer <token>`",
                           fields={"Authorization": "not a bearer token"})
    digest = token_digest(presented.strip())
    now = utcnow()
    with transaction() as session:
        row = session.execute(select(ApiToken, Operator).join(Operator, Operator.id == ApiToken.operator_id)
                              .where(ApiToken.token_sha256 == digest)).first()
        if row is None:
            raise Unauthorized("unknown token", fields={"Authorization": "unknown token"})
        token, operator = row
        if token.revoked_at is not None:
            raise Unauthorized(f"token {token.prefix}… was revoked", fields={"Authorization": "revoked"})
        if token.expires_at is not None and token.expires_at <= now:
            raise Unauthorized(f"token {token.prefix}… expired at {token.expires_at.isoformat()}",
                               fields={"Authorization": "expired"})
        if operator.disabled:
            raise Unauthorized(f"the operator of token {token.prefix}… is disabled",
                               fields={"Authorization": "operator disabled"})
        if token.last_used_at is None or token.last_used_at < now - _LAST_USED_GRANULARITY:
            session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        return Actor(kind="token", name=f"{operator.username}/{token.name}", operator_id=operator.id,
                     roles=frozenset(operator.roles or []), interface="api", address=request.remote_addr,
                     user_agent=request.user_agent.string or None, token_id=token.id,
                     scopes=frozenset(token.scopes or []))


def check_rate(app: Flask, actor: Actor) -> None:
    """A fixed one-minute window per token in Redis; over the limit → 429 with Retry-After.

    Fails open when Redis is unreachable: in an emergency a missing limiter must not block alerts.
    """
    limit = int(app.config.get("SIRENA_API_RATE_PER_MIN", DEFAULT_RATE_PER_MIN))
    redis = redis_of(app)
    if redis is None or limit <= 0:
        return
    window = int(time.time()) // 60
    key = f"sirena:api-rate:{actor.token_id}:{window}"
    try:
        pipe = redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = pipe.execute()[0]
    except Exception:
        return
    if count > limit:
        retry = 60 - int(time.time()) % 60
        raise TooManyRequests(f"rate limit of {limit} requests a minute for this token reached; retry in {retry} s",
                              retry_after_s=retry)


