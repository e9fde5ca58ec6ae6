"""Signing in to the console: password, then a single-use TOTP code (or enrolment), with lockout.

Lockout (ASVS 2.2.1) counts failures by user name as typed, whether or not it exists, so the
answer never tells an attacker which names are real:

- a user name from one address: 5 failures in 15 minutes lock that pair for the rest of the
  window. Another address (the operations centre) can still sign in: one attacker cannot lock
  every operator out by guessing from one place;
- a user name from anywhere: 100 failures in an hour lock the account for the rest of the hour
  (the ASVS ceiling); an admin can lift it (`unlock`).

Counts live in Redis so every web process shares them; if Redis is unreachable a process-local
count takes over (a per-process limit is weaker but still a limit, and sign-in keeps working).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

from argon2.exceptions import VerificationError
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, NotFound, Refused
from alerting.base.models import Operator
from alerting.base.settings import Secret
from alerting.directory.accounts import HASHER, check_password_policy, hash_password, verify_password, verify_totp
from audit import trail
from audit.actor import Actor

log = logging.getLogger("sirena.signin")

PAIR_LIMIT, PAIR_WINDOW_S = 5, 15 * 60
ACCOUNT_LIMIT, ACCOUNT_WINDOW_S = 100, 60 * 60
PENDING_STEP_S = 300  # the code must follow the password within 5 minutes
_DUMMY_HASH = HASHER.hash("not-a-password-of-anyone")
GENERIC_FAILURE = "wrong user name, password or code"


class Throttle:
    """Failed sign-in counters shared through Redis, per (user name, address) and per user name."""

    def __init__(self, redis: Redis | None, *, prefix: str = "sirena:signin:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._local: dict[str, tuple[int, float]] = {}

    def _key(self, kind: str, *parts: str) -> str:
        return self.prefix + kind + ":" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]

    def _count(self, key: str) -> tuple[int, int]:
        """(failures in the window, seconds left in it)."""
        if self.redis is not None:
            try:
                pipe = self.redis.pipeline()
                pipe.get(key)
                pipe.ttl(key)
                count, ttl = pipe.execute()
                return int(count or 0), max(int(ttl or 0), 0)
            except Exception as exc:  # Redis down: fall back to this process's counts
                log.warning("sign-in throttle: Redis unavailable (%s); counting in-process", exc)
        count, until = self._local.get(key, (0, 0.0))
        left = int(until - time.monotonic())
        return (count, left) if left > 0 else (0, 0)

    def _hit(self, key: str, window_s: int) -> None:
        if self.redis is not None:
            try:
                pipe = self.redis.pipeline()
                pipe.incr(key)
                pipe.expire(key, window_s, nx=True)
                pipe.execute()
                return
            except Exception as exc:
                log.warning("sign-in throttle: Redis unavailable (%s); counting in-process", exc)
        count, until = self._local.get(key, (0, 0.0))
        if until <= time.monotonic():
            count, until = 0, time.monotonic() + window_s
        self._local[key] = (count + 1, until)

    def _clear(self, key: str) -> None:
        self._local.pop(key, None)
        if self.redis is not None:
            try:
                self.redis.delete(key)
            except Exception as exc:
                log.warning("sign-in throttle: could not clear a counter (%s)", exc)

    def locked_for_s(self, username: str, address: str) -> int:
        """Seconds until `username` may try again from `address` (0: not locked)."""
        user = username.strip().lower()
        pair, pair_left = self._count(self._key("pair", user, address))
        account, account_left = self._count(self._key("acct", user))
        left = 0
        if pair >= PAIR_LIMIT:
            left = max(left, pair_left)
        if account >= ACCOUNT_LIMIT:
            left = max(left, account_left)
        return left

    def failed(self, username: str, address: str) -> None:
        user = username.strip().lower()
        self._hit(self._key("pair", user, address), PAIR_WINDOW_S)
        self._hit(self._key("acct", user), ACCOUNT_WINDOW_S)

    def succeeded(self, username: str, address: str) -> None:
        self._clear(self._key("pair", username.strip().lower(), address))

    def unlock(self, username: str) -> None:
        """Lift the account-wide lock (admin action); pair locks expire by themselves."""
        self._clear(self._key("acct", username.strip().lower()))


@dataclass(frozen=True)
class StepResult:
    """The outcome of one sign-in step. `next_step`: "totp", "enrol" or "done" when ok."""

    ok: bool
    operator_id: int | None = None
    next_step: str | None = None
    message: str = ""
    locked_for_s: int = 0


def _visitor(username: str, address: str, user_agent: str | None) -> Actor:
    return Actor(kind="anonymous", name=username.strip()[:64], interface="console", address=address,
                 user_agent=user_agent)


def check_password(session: Session, throttle: Throttle, username: str, password: str, *, address: str,
                   user_agent: str | None = None) -> StepResult:
    """First step: the password. Audits every failure (outcome refused) in `session`.

    Never says whether the name exists; always spends one argon2 verification.
    """
    visitor = _visitor(username, address, user_agent)
    locked = throttle.locked_for_s(username, address)
    if locked:
        trail.append(session, actor=visitor, action="operator.sign_in", outcome="refused",
                     reason="locked out after repeated failures", payload={"step": "password", "locked_for_s": locked})
        return StepResult(False, message=f"too many failed attempts; try again in {locked // 60 + 1} minutes "
                                         "or ask an admin to unlock the account", locked_for_s=locked)
    operator = session.scalar(select(Operator).where(Operator.username == username.strip()).with_for_update())
    if operator is None:
        with contextlib.suppress(VerificationError):
            HASHER.verify(_DUMMY_HASH, password or "x")
        good = False
    else:
        good = verify_password(operator, password or "")
    if not good or operator is None or operator.disabled:
        throttle.failed(username, address)
        reason = "disabled account" if operator is not None and operator.disabled and good else "bad password"
        trail.append(session, actor=visitor, action="operator.sign_in", outcome="refused", reason=reason,
                     subject_type="operator" if operator else None, subject_id=operator.id if operator else None,
                     payload={"step": "password"})
        return StepResult(False, message=GENERIC_FAILURE)
    step = "totp" if operator.totp_enrolled_at is not None else "enrol"
    return StepResult(True, operator_id=operator.id, next_step=step)


def check_code(session: Session, throttle: Throttle, operator_id: int, code: str, key: Secret, *,
               enrolling: bool, address: str, user_agent: str | None = None) -> StepResult:
    """Second step: a TOTP code, single use (a replayed code is refused and audited, ASVS 2.8.4/2.8.5)."""
    operator = session.get(Operator, operator_id, with_for_update=True)
    if operator is None or operator.disabled:
        return StepResult(False, message=GENERIC_FAILURE)
    visitor = _visitor(operator.username, address, user_agent)
    locked = throttle.locked_for_s(operator.username, address)
    if locked:
        trail.append(session, actor=visitor, action="operator.sign_in", outcome="refused",
                     reason="locked out after repeated failures", subject_type="operator", subject_id=operator.id,
                     payload={"step": "totp"})
        return StepResult(False, message=f"too many failed attempts; try again in {locked // 60 + 1} minutes",
                          locked_for_s=locked)
    if not verify_totp(operator, code or "", key):
        throttle.failed(operator.username, address)
        trail.append(session, actor=visitor, action="operator.sign_in", outcome="refused",
                     reason="wrong, expired or already used code", subject_type="operator",
                     subject_id=operator.id, payload={"step": "enrol" if enrolling else "totp"})
        return StepResult(False, operator_id=operator.id, message="wrong, expired or already used code")
    throttle.succeeded(operator.username, address)
    now = utcnow()
    actor = Actor(kind="operator", name=operator.username, operator_id=operator.id,
                  roles=frozenset(operator.roles or []), interface="console", address=address, user_agent=user_agent)
    if enrolling and operator.totp_enrolled_at is None:
        operator.totp_enrolled_at = now
        trail.append(session, actor=actor, action="operator.totp_enrolled", subject_type="operator",
                     subject_id=operator.id)
    operator.last_login_at, operator.failed_logins = now, 0
    trail.append(session, actor=actor, action="operator.signed_in", subject_type="operator", subject_id=operator.id,
                 payload={"mfa": "totp"})
    return StepResult(True, operator_id=operator.id, next_step="done")


def verify_step_up(session: Session, throttle: Throttle, operator_id: int, code: str, key: Secret, *,
                   action: str, actor: Actor) -> None:
    """Re-check a fresh TOTP code before a sensitive action (ASVS 3.7.1): a live approval, admin changes.

    The code is single-use like any other, so a stolen session alone cannot approve. A wrong code
    counts toward the sign-in lockout; the InvalidInput naming "step_up_code" carries `audit_as`, so
    the error boundary audits it after the action's transaction has rolled back. Raises Refused
    when locked out.
    """
    operator = session.get(Operator, operator_id, with_for_update=True)
    if operator is None:
        raise NotFound(f"operator {operator_id} does not exist")
    address = actor.address or "unknown"
    locked = throttle.locked_for_s(operator.username, address)
    if locked:
        raise Refused(f"too many wrong codes; try again in {locked // 60 + 1} minutes")
    if verify_totp(operator, code or "", key):
        return
    throttle.failed(operator.username, address)
    raise InvalidInput("confirm with a fresh code from your authenticator",
                       fields={"step_up_code": "wrong, expired or already used code"},
                       audit_as=action, audit_reason="step-up code wrong, expired or already used")


def change_password(session: Session, operator_id: int, current: str, new: str, confirm: str, actor: Actor) -> Operator:
    """Change an operator's own password. Raises InvalidInput naming the field.

    The caller revokes the operator's other sessions in the same transaction (ASVS 3.3.3).
    """
    operator = session.get(Operator, operator_id, with_for_update=True)
    if operator is None:
        raise NotFound(f"operator {operator_id} does not exist")
    if not verify_password(operator, current or ""):
        trail.append(session, actor=actor, action="operator.password_change", outcome="refused",
                     reason="wrong current password", subject_type="operator", subject_id=operator.id)
        raise InvalidInput("the current password is wrong", fields={"current_password": "wrong password"})
    if new != confirm:
        raise InvalidInput("the new passwords differ", fields={"confirm_password": "does not match the new password"})
    try:
        check_password_policy(new, operator.username)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, fields={"new_password": exc.field_errors["password"]}) from None
    operator.password_hash = hash_password(new)
    operator.password_changed_at = utcnow()
    trail.append(session, actor=actor, action="operator.password_changed", subject_type="operator",
                 subject_id=operator.id)
    return operator


def pending_expired(started_at: float) -> bool:
    """Whether a password step done at `started_at` (epoch seconds) is too old for its code."""
    return time.time() - started_at > PENDING_STEP_S


__all__ = ["ACCOUNT_LIMIT", "GENERIC_FAILURE", "PAIR_LIMIT", "StepResult", "Throttle", "change_password",
           "check_code", "check_password", "pending_expired",
           "verify_step_up"]
