"""The OpenAPI 3 document, generated from the operations' own marshmallow schemas (apispec)."""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Response, current_app, json, request

from alerting.directory import permissions
from alerting.interfaces.api import api_bp
from alerting.interfaces.api.framework import OPERATIONS, Operation
from alerting.interfaces.api.problems import ProblemSchema, problem

VERSION = "1.0.0"
DESCRIPTION = """Emergency mass alerts by SMS. Every alert is a draft until a second operator approves it;
a token acts as its operator and is bound by the same rules (two-person rule included).

Authentication: `Authorization: Bearer <token>` (`sirena tokens create`); a token in the query string
is refused with 400. Scopes: read, alerts:draft, alerts:submit, alerts:approve, alerts:cancel,
contacts:write, groups:write, zones:write. Rate limit per token (429 with Retry-After).

Errors: RFC 9457 `application/problem+json` with `code` and `errors: [{field, reason}]`.

Retries: send `Idempotency-Key` on POSTs; a retry with the same key gets the first response
(`Idempotent-Replayed: true`) and never acts twice; the same key with a different body is a 422.

Webhooks (`sirena webhooks add`): events alert.state_changed, reply.received, delivery.state_changed,
POSTed as JSON `{id, type, created_at, data}` with headers `Sirena-Event-Id` and
`Sirena-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>`. Verify the
HMAC over the exact bytes received, compare in constant time, refuse timestamps more than 5 minutes
off, and dedupe by event id (delivery is at least once). Failed POSTs are retried with backoff
(30 s doubling, up to 6 h apart, 12 attempts).
"""
_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_PROBLEM = {"application/problem+json": {"schema": "Problem"}}
_TEXTS = {400: "Malformed request (e.g. a token in the query string)", 401: "Missing or invalid bearer token",
          403: "Missing scope, or refused by a rule (audited)", 404: "Not found", 409: "Not allowed in this state",
          422: "Invalid input: each field and the reason", 429: "Rate limit reached", 503: "Not ready"}


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in _PARAM.findall(rule):
        schema: dict[str, Any] = ({"type": "integer", "minimum": 1, "maximum": 2**31 - 1} if converter == "int"
                                  else {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^/]+$"})
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return "/api/v1" + _PARAM.sub(r"{\2}", rule), params


def _operation(op: Operation) -> dict[str, Any]:
    _, params = _path(op.rule)
    out: dict[str, Any] = {"operationId": op.endpoint, "summary": op.summary, "tags": [op.tag],
                           "description": op.description, "parameters": list(params)}
    if op.query is not None:
        out["parameters"].append({"in": "query", "schema": op.query})
    if op.raw_body:
        out["requestBody"] = {"required": True, "content": {op.raw_body: {"schema": {"type": "string"}}}}
    elif op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
    if op.method == "POST" and not op.public:
        out["parameters"].append({"in": "header", "name": "Idempotency-Key", "required": False,
                                  "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                                             "pattern": "^[!-~]+$"},
                                  "description": "a retried request with the same key gets the first response"})
    if op.produces == "application/json":
        body_schema: Any = {"type": "array", "items": op.response} if op.many and op.response else op.response
        ok: dict[str, Any] = {"description": "OK", "content": {"application/json": {"schema": body_schema}}}
    else:
        ok = {"description": "OK", "content": {op.produces: {"schema": {"type": "string"}}}}
    responses: dict[str, Any] = {str(op.status): ok}
    for status in op.errors:
        if status == 503 and op.endpoint == "readyz":
            responses["503"] = {"description": _TEXTS[503], "content": {"application/json": {"schema": op.response}}}
        else:
            responses[str(status)] = {"description": _TEXTS[status], "content": _PROBLEM}
    if not op.public:
        responses.setdefault("500", {"description": "Internal error with an error_id", "content": _PROBLEM})
        out["security"] = [{"bearer": []}]
        # The authorization table's cell for this operation (alerting/directory/permissions.py).
        out["x-sirena-scope"], out["x-sirena-action"] = op.scope, op.action
        out["x-sirena-roles"] = sorted(permissions.roles_for(op.action)) if op.action else []
    else:
        out["security"] = []
    out["responses"] = responses
    return out


def build_spec() -> dict[str, Any]:
    spec = APISpec(title="Sirena API", version=VERSION, openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
                   info={"description": DESCRIPTION},
                   servers=[{"url": "/"}])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Problem", schema=ProblemSchema)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        path, _ = _path(op.rule)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@api_bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3 document (public: it holds no data)."""
    cache = current_app.extensions.setdefault("sirena_api", {})
    if "openapi" not in cache:
        cache["openapi"] = json.dumps(build_spec())
    return Response(cache["openapi"], mimetype="application/json")


@api_bp.route("/<path:unknown>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_an_operation(unknown: str) -> Response:
    """Anything under /api/v1 that is not an operation: a problem document, never the console's HTML page."""

    return problem(404, "not_found", f"no API operation at {request.method} /api/v1/{unknown}; "
                                     "see /api/v1/openapi.json")
