"""Server-side console sessions: revocable, with an idle and an absolute timeout (ASVS 3.2, 3.3).

The cookie holds 32 random bytes; the `web_sessions` table holds only their SHA-256, the
operator, the session data (CSRF token, sign-in progress, flashes) and the two deadlines. Signing
in makes a new id (`regenerate`), so a session id planted before sign-in is worthless; signing out
and a password change revoke rows, so a copied cookie stops working at once.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from werkzeug.datastructures import CallbackDict

from alerting.base.db import rowcount, transaction, utcnow
from alerting.base.models import WebSession
from alerting.directory.accounts import revoke_operator_sessions, session_digest

COOKIE_SECURE = "__Host-sirena"  # __Host-: Secure, Path=/, no Domain (ASVS 3.4.4)
COOKIE_PLAIN = "sirena"  # plain HTTP on a loopback development server only
ANONYMOUS_LIFETIME = timedelta(hours=1)
_TOUCH_EVERY = timedelta(seconds=30)  # fewer writes; the idle timeout is minutes


class ConsoleSession(CallbackDict, SessionMixin):
    """`flask.session`: a dict saved server-side, plus who is signed in."""

    def __init__(self, data: dict[str, Any] | None = None, *, sid: str | None = None,
                 operator_id: int | None = None, expired: bool = False, last_seen_at: datetime | None = None,
                 expires_at: datetime | None = None) -> None:
        def on_update(_self: ConsoleSession) -> None:
            _self.modified = True

        super().__init__(data or {}, on_update)
        self.sid = sid
        self.operator_id = operator_id
        self.expired = expired  # the cookie named a session that timed out or was revoked
        self.last_seen_at = last_seen_at
        self.expires_at = expires_at
        self.modified = False
        self.regenerate_to: int | bool | None = False  # False: keep the id; else the operator of the new id
        self.revoke = False

    def sign_in(self, operator_id: int) -> None:
        """Bind to `operator_id` under a brand-new id (the old one is revoked when saved)."""
        self.regenerate_to = operator_id
        self.clear()
        self.modified = True

    def restart_anonymous(self) -> None:
        """A new anonymous id (used when a sign-in step starts), old one revoked."""
        self.regenerate_to = None
        self.clear()
        self.modified = True

    def sign_out(self) -> None:
        self.revoke = True
        self.clear()


class ServerSessionInterface(SessionInterface):
    """Flask session interface backed by `web_sessions`. Config: SIRENA_IDLE_TIMEOUT, SIRENA_ABSOLUTE_TIMEOUT."""

    def open_session(self, app: Flask, request: Request) -> ConsoleSession:
        if request.path.startswith("/static/") or request.path.startswith("/api/"):
            return ConsoleSession()  # assets and the bearer-token API never touch the session table
        sid = request.cookies.get(COOKIE_SECURE) or request.cookies.get(COOKIE_PLAIN)
        if not sid or len(sid) > 128:
            return ConsoleSession()
        now = utcnow()
        idle: timedelta = app.config["SIRENA_IDLE_TIMEOUT"]
        with transaction() as session:
            row = session.get(WebSession, session_digest(sid))
            if row is None or row.revoked_at is not None:
                return ConsoleSession(expired=True)
            if row.expires_at <= now or (row.operator_id is not None and row.last_seen_at + idle <= now):
                row.revoked_at = now
                return ConsoleSession(expired=True)
            return ConsoleSession(dict(row.data or {}), sid=sid, operator_id=row.operator_id,
                                  last_seen_at=row.last_seen_at, expires_at=row.expires_at)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ConsoleSession)
        from flask import request

        if request.path.startswith("/static/") or request.path.startswith("/api/"):
            return
        secure = request.is_secure
        name = COOKIE_SECURE if secure else COOKIE_PLAIN
        now = utcnow()
        with transaction() as db:
            if session.revoke:
                if session.sid:
                    _revoke(db, [session_digest(session.sid)], now)
                response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="Strict")
                return
            if session.regenerate_to is not False:
                if session.sid:
                    _revoke(db, [session_digest(session.sid)], now)
                session.sid, session.operator_id = None, session.regenerate_to
            if session.sid is None:
                if not session and session.operator_id is None:
                    return  # nothing worth a row: no cookie for a visitor who stored nothing
                session.sid = secrets.token_urlsafe(32)
                lifetime = app.config["SIRENA_ABSOLUTE_TIMEOUT"] if session.operator_id else ANONYMOUS_LIFETIME
                db.add(WebSession(id_sha256=session_digest(session.sid), operator_id=session.operator_id,
                                  data=dict(session), expires_at=now + lifetime, last_seen_at=now,
                                  address=(request.remote_addr or "")[:64],
                                  user_agent=(request.user_agent.string or "")[:512]))
                if secrets.randbelow(50) == 0:
                    purge_expired(db, now)
            elif session.modified:
                db.execute(update(WebSession).where(WebSession.id_sha256 == session_digest(session.sid))
                           .values(data=dict(session), last_seen_at=now))
            elif session.last_seen_at is None or session.last_seen_at + _TOUCH_EVERY <= now:
                db.execute(update(WebSession).where(WebSession.id_sha256 == session_digest(session.sid))
                           .values(last_seen_at=now))
        response.set_cookie(name, session.sid, path="/", secure=secure, httponly=True, samesite="Strict")
        response.vary.add("Cookie")


def _revoke(db: Session, digests: list[str], now: datetime) -> None:
    db.execute(update(WebSession).where(WebSession.id_sha256.in_(digests), WebSession.revoked_at.is_(None))
               .values(revoked_at=now))


def live_sessions(db: Session, operator_id: int) -> list[WebSession]:
    """The operator's sessions that are neither revoked nor past their absolute deadline."""
    return list(db.scalars(select(WebSession).where(
        WebSession.operator_id == operator_id, WebSession.revoked_at.is_(None),
        WebSession.expires_at > utcnow()).order_by(WebSession.created_at.desc())))


def purge_expired(db: Session, now: datetime | None = None) -> int:
    """Delete sessions expired or revoked more than a day ago (they are not audit records)."""
    cutoff = (now or utcnow()) - timedelta(days=1)
    return rowcount(db.execute(delete(WebSession).where(
        (WebSession.expires_at < cutoff) | (WebSession.revoked_at < cutoff))))


__all__ = ["ConsoleSession", "ServerSessionInterface", "WebSession", "live_sessions",
           "purge_expired", "revoke_operator_sessions"]
