"""Console hardening, in one place: access rules, CSRF, rate limits and response headers.

- Access: every console view declares who may use it: `public`, or `requires(action)`, an action
  of the one authorization table (alerting/directory/permissions.py) that the API, the CLI and the services
  consult too. A `before_request` hook checks the declaration before the view runs and refuses,
  by default, any endpoint that declares nothing (ASVS 4.1.3, 4.1.5). Roles are read from the
  database on every request, so removing a role takes effect at once.
- CSRF: Flask-WTF on every unsafe method (forms, and `X-CSRFToken` for the console's fetch calls).
  The bearer-token API is exempt (no cookies are used there).
- Rate limits: Flask-Limiter with its counts in Redis, shared by every web process.
- Headers on every response, error pages included: CSP without inline script, frame-ancestors
  'none', nosniff, Referrer-Policy, HSTS behind TLS, Cache-Control no-store outside /static/.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session

from alerting.base.db import transaction
from alerting.base.errors import Refused
from alerting.base.models import Operator
from alerting.directory import permissions
from alerting.interfaces.web.signin import verify_step_up
from audit.actor import Actor

F = TypeVar("F", bound=Callable[..., Any])

limiter = Limiter(get_remote_address, key_prefix="sirena-web", in_memory_fallback_enabled=True)
csrf = CSRFProtect()


@dataclass(frozen=True)
class Access:
    """Who may use a view: anyone (`public`), or an operator who may do `action` (permissions.ACTIONS)."""

    public: bool = False
    action: str | None = None


class SignInRequired(Exception):
    """An anonymous visitor asked for a page that needs an operator."""


def _tag(view: F, access: Access) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check(access)  # the before_request hook already checked; a second look costs nothing
        return view(*args, **kwargs)

    wrapper._sirena_access = access  # type: ignore[attr-defined]
    wrapper.provide_automatic_options = False  # type: ignore[attr-defined]  # only the methods in use (ASVS 13.2.1)
    return wrapper  # type: ignore[return-value]


def public(view: F) -> F:
    """Anyone may use this view (sign-in pages)."""
    return _tag(view, Access(public=True))


def requires(action: str) -> Callable[[F], F]:
    """A signed-in operator whose roles may do `action` (alerting/directory/permissions.py);
    others get 403 (audited)."""
    permissions.roles_for(action)  # an action missing from the table fails at import, not at 3 a.m.

    def decorate(view: F) -> F:
        return _tag(view, Access(action=action))

    return decorate


def step_up(db: Session, action: str) -> None:
    """Check the operator's fresh TOTP code (form field `step_up_code`) for `action`, in `db`.

    Call it in the action's transaction: the code is spent only if the action commits.
    """

    operator = current_operator()
    if operator is None:
        raise SignInRequired()
    verify_step_up(db, current_app.extensions["sirena_throttle"], operator.id, request.form.get("step_up_code", ""),
                   current_app.config["SIRENA_SETTINGS"].secret_key(), action=action, actor=current_actor())


def current_operator() -> Operator | None:
    return g.get("operator")


def current_actor() -> Actor:
    """The signed-in operator as an Actor (roles, address, user agent); anonymous when none."""
    operator = current_operator()
    address = request.remote_addr
    agent = request.user_agent.string or None
    if operator is None:
        return Actor(kind="anonymous", name="anonymous", interface="console", address=address, user_agent=agent)
    return Actor(kind="operator", name=operator.username, operator_id=operator.id,
                 roles=frozenset(operator.roles or []), interface="console", address=address, user_agent=agent)


def _load_operator() -> None:
    if "operator" in g:
        return
    g.operator = None
    operator_id = getattr(session, "operator_id", None)
    if operator_id is None:
        return
    with transaction() as db:
        operator = db.get(Operator, operator_id)
        if operator is None or operator.disabled:
            session.sign_out()  # type: ignore[attr-defined]
            return
        db.expunge(operator)
    g.operator = operator


def _check(access: Access) -> None:
    _load_operator()
    if access.public:
        return
    operator = current_operator()
    if operator is None:
        raise SignInRequired()
    assert access.action is not None
    if not permissions.allowed(operator.roles or [], access.action):
        needs = sorted(permissions.roles_for(access.action))
        raise Refused(f"{operator.username} may not use this page (needs the {' or '.join(needs)} role)",
                      endpoint=request.endpoint, action=access.action, needs=needs)


def enforce_access() -> None:
    """before_request: apply the view's declared access; refuse endpoints that declare none."""
    g.pop("operator", None)  # never trust an operator cached by an earlier request in this context
    endpoint = request.endpoint
    if endpoint == "static":
        return  # a public asset
    if endpoint is None:
        _load_operator()  # routing failed: the 404/405 page is the signed-in operator's, in their language
        return
    if set(request.blueprints) & current_app.config["SIRENA_SELF_AUTH_BLUEPRINTS"]:
        return  # the bearer-token API authenticates and authorizes each call itself
    view = current_app.view_functions.get(endpoint)
    access: Access | None = getattr(view, "_sirena_access", None)
    if access is None:  # default deny: a view nobody thought about is nobody's
        _load_operator()
        raise Refused("this page declares no access rule, so it is refused", endpoint=endpoint)
    _check(access)


def tile_origin(tile_url: str | None) -> str:
    if not tile_url:
        return ""
    parts = urlsplit(tile_url.replace("{s}", "a"))
    host = parts.netloc
    if "{s}" in tile_url:
        host = "*." + host.split(".", 1)[1] if "." in host else host
    return f"{parts.scheme}://{host}"


def content_security_policy(tile_url: str | None) -> str:
    tiles = tile_origin(tile_url)
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self'{' ' + tiles if tiles else ''}",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def security_headers(response: Response) -> Response:
    """after_request: the hardening headers, on every response including error pages."""
    headers = response.headers
    headers["Content-Security-Policy"] = current_app.config["SIRENA_CSP"]
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "geolocation=(), camera=(), microphone=(), payment=()"
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if request.path.startswith("/static/") and response.status_code == 200:
        headers["Cache-Control"] = "public, max-age=3600"
    else:
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    headers.pop("Server", None)
    return response


def install(app: Flask, *, redis_url: str, tile_url: str | None) -> None:
    """Wire access rules, CSRF, rate limits and headers into `app` (order matters: access before CSRF)."""
    app.config.update(
        SIRENA_CSP=content_security_policy(tile_url),
        SIRENA_SELF_AUTH_BLUEPRINTS=set(),
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which has its own timeouts
        WTF_CSRF_SSL_STRICT=True,
        RATELIMIT_STORAGE_URI=redis_url,
        RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 2, "socket_connect_timeout": 2},
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.before_request(enforce_access)
    csrf.init_app(app)
    limiter.init_app(app)
    app.after_request(security_headers)


def safe_next(target: str | None) -> str | None:
    """A same-site path to return to after sign-in, or None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target
