"""How an API operation is declared once and then validated, authorized, documented and answered.

`@operation(...)` registers a view on `api_bp` and records its schemas; the same marshmallow
schemas validate the request (body and query) and generate the OpenAPI document (openapi.py).
Per request, in order: token not in the query string; bearer token (401); rate limit (429);
scope and action (403: the token carries the scope, and its operator's roles, read on this
request, may hold that scope and do the operation's action: alerting/directory/permissions.py); query and
body parsed (422 naming each field); Idempotency-Key claimed (POST); the view, which opens one
transaction and calls one service; the result dumped by its schema.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, g, json, request
from marshmallow import Schema, ValidationError

from alerting.base.errors import InvalidInput, SirenaError
from alerting.base.json_limits import parse_json
from alerting.directory import permissions
from alerting.interfaces.api import auth, idempotency
from alerting.interfaces.api.problems import handle_sirena_error, handle_unexpected

DEFAULT_ERRORS = (400, 401, 403, 404, 409, 422, 429)
MAX_BODY_BYTES = 5 * 1024 * 1024


@dataclass
class Operation:
    method: str
    rule: str
    endpoint: str
    summary: str
    tag: str
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    response: type[Schema] | None = None
    many: bool = False
    status: int = 200
    scope: str | None = None
    action: str | None = None  # alerting/directory/permissions.py: what the token's operator must be allowed to do
    public: bool = False
    errors: tuple[int, ...] = DEFAULT_ERRORS
    raw_body: str | None = None  # a non-JSON request body's media type ("text/csv", "application/xml")
    produces: str = "application/json"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


OPERATIONS: list[Operation] = []


def _walk_for_nul(value: Any, path: str, problems: dict[str, str]) -> None:
    """PostgreSQL text and JSONB cannot hold U+0000; refuse it here, naming where it is."""
    if isinstance(value, str):
        if "\x00" in value:
            problems[path or "body"] = "contains a NUL character"
    elif isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in str(k):
                problems[f"{path}.{k!r}" if path else repr(k)] = "key contains a NUL character"
            _walk_for_nul(v, f"{path}.{k}" if path else str(k), problems)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk_for_nul(v, f"{path}[{i}]", problems)


def flatten(messages: Any, prefix: str = "") -> dict[str, str]:
    """marshmallow's nested error dict → {"target.zones": "Not a valid list."}."""
    out: dict[str, str] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "body"
            out.update(flatten(value, name))
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            out[prefix or "body"] = " ".join(messages)
        else:
            for i, m in enumerate(messages):
                out.update(flatten(m, f"{prefix}[{i}]"))
    else:
        out[prefix or "body"] = str(messages)
    return out


def _load(schema_cls: type[Schema], data: Any, where: str) -> Any:
    problems: dict[str, str] = {}
    _walk_for_nul(data, "", problems)
    if problems:
        raise InvalidInput(f"{where}: {next(iter(problems))} contains a NUL character", fields=problems)
    try:
        return schema_cls().load(data)
    except ValidationError as exc:
        fields_ = flatten(exc.messages)
        first = next(iter(fields_.items()), ("body", "invalid"))
        more = f" (and {len(fields_) - 1} more)" if len(fields_) > 1 else ""
        raise InvalidInput(f"{first[0]}: {first[1]}{more}", fields=fields_) from None


def parse_json_body(op: Operation) -> Any:
    """The request's JSON body through its schema: 422 naming `body` when it is larger than
    MAX_BODY_BYTES (refused from Content-Length before it is read), nested deeper than
    json_limits.MAX_DEPTH, or not JSON; 422 naming each field the schema refuses."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise InvalidInput(f"body: larger than {MAX_BODY_BYTES:,} bytes", fields={"body": "too large"})
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(f"body: larger than {MAX_BODY_BYTES:,} bytes", fields={"body": "too large"})
    if not raw.strip():
        return _load(op.body, {}, "body") if op.body is not None else None
    if not request.is_json:
        raise InvalidInput("body: send JSON with Content-Type: application/json",
                           fields={"Content-Type": "expected application/json"})
    data = parse_json(raw, field="body", max_bytes=MAX_BODY_BYTES)
    if op.body is None:
        return data
    return _load(op.body, data if data is not None else {}, "body")


def _render(op: Operation, result: Any) -> tuple[int, Any, Response | None]:
    if isinstance(result, Response):
        return result.status_code, None, result
    status = op.status
    if isinstance(result, tuple):
        result, status = result
    body = op.response(many=op.many).dump(result) if op.response is not None else result
    return status, body, None


def _json_response(status: int, body: Any, *, replayed: bool = False) -> Response:
    mimetype = "application/problem+json" if status >= 400 else "application/json"
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=mimetype)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


View = Callable[..., Any]


def operation(bp: Blueprint, method: str, rule: str, **options: Any) -> Callable[[View], View]:
    """Register `view` on `bp` as METHOD rule, with its schemas and scope (see Operation)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(method=method, rule=rule, endpoint=view.__name__, **options)
        if not op.public and (op.scope is None or op.action not in permissions.SCOPES[op.scope]):
            # Caught at import: an operation outside the table would be nobody's, or everybody's.
            raise ValueError(f"{method} {rule}: action {op.action!r} is not one scope {op.scope!r} unlocks")
        OPERATIONS.append(op)

        @functools.wraps(view)
        def handler(**path_args: Any) -> Response:
            try:
                return _handle(op, view, path_args)
            except SirenaError as exc:
                return handle_sirena_error(exc)
            except Exception as exc:
                return handle_unexpected(exc)

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=handler, methods=[method])
        return view

    return decorate


def _handle(op: Operation, view: Callable[..., Any], path_args: dict[str, Any]) -> Response:
    auth.refuse_token_in_query()
    if not op.public:
        g.actor = auth.authenticate()
        auth.check_rate(current_app._get_current_object(), g.actor)  # type: ignore[attr-defined]
        assert op.scope is not None and op.action is not None
        permissions.require_scope(g.actor, op.scope)
        permissions.require(g.actor, op.action, f"use {op.method} {request.path}")
    kwargs = dict(path_args)
    if op.query is not None:
        kwargs["query"] = _load(op.query, request.args.to_dict(), "query")
    if op.body is not None and op.raw_body is None:
        kwargs["body"] = parse_json_body(op)
    key = request.headers.get(idempotency.HEADER)
    if op.method != "POST" or key is None or op.public:
        status, body, response = _render(op, view(**kwargs))
        return response if response is not None else _json_response(status, body)
    key = idempotency.check_key(key)
    token_id = g.actor.token_id
    digest = idempotency.request_digest(op.method, request.path, request.get_data(cache=True))
    replay = idempotency.claim(token_id, key, op.method, request.path, digest)
    if replay is not None:
        return _json_response(replay.status, replay.body, replayed=True)
    g.idempotency_key = key
    try:
        status, body, response = _render(op, view(**kwargs))
    except SirenaError as exc:
        response = handle_sirena_error(exc)
        idempotency.complete(token_id, key, response.status_code, json.loads(response.get_data()))
        return response
    except Exception:
        idempotency.complete(token_id, key, 500, None)
        raise
    if response is not None:
        idempotency.complete(token_id, key, 500, None)  # non-JSON responses are not replayable
        return response
    idempotency.complete(token_id, key, status, body)
    return _json_response(status, body)
