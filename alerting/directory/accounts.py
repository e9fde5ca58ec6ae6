"""Operators and API tokens: argon2id passwords, encrypted single-use TOTP, hashed bearer tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from alerting.base.db import rowcount, utcnow
from alerting.base.errors import InvalidInput, NotFound, Refused
from alerting.base.models import ApiToken, Operator, Role, WebSession
from alerting.base.settings import Secret
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor

# argon2id above OWASP's minimum (m=19 MiB, t=2, p=1): m=19 MiB, t=3, p=1, ~30 ms a hash here.
HASHER = PasswordHasher(time_cost=3, memory_cost=19456, parallelism=1)
ISSUER = "Sirena"
LANGUAGES = ("es", "en")  # the console's languages; the first is an operator's until they choose
SCOPES = frozenset(permissions.SCOPES)  # the table says which roles may hold each
# A few of the most common passwords; the length rule (12+) already excludes most of the rest.
COMMON = frozenset({"123456789012", "password1234", "qwertyuiopas", "contraseña123", "passwordpassword",
                    "111111111111", "000000000000", "iloveyou1234", "administrator", "sirenasirena",
                    "123456123456", "abcdefghijkl", "qwerty123456", "password123!", "bomberos1234"})


@dataclass(frozen=True)
class NewOperator:
    operator: Operator
    password: str  # shown once
    totp_uri: str  # otpauth:// enrolment URI, shown once


def check_password_policy(password: str, username: str = "") -> None:
    """ASVS 2.1: 12–128 characters, any Unicode, not common, not the username. Raises InvalidInput."""
    reason = None
    if len(password) < 12:
        reason = "must have at least 12 characters"
    elif len(password) > 128:
        reason = "must have at most 128 characters"
    elif password.lower() in COMMON or (username and username.lower() in password.lower()):
        reason = "is too common or contains the user name"
    if reason:
        raise InvalidInput(f"password {reason}", fields={"password": reason})


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(operator: Operator, password: str) -> bool:
    """True if the password matches; upgrades the hash when parameters changed."""
    try:
        HASHER.verify(operator.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if HASHER.check_needs_rehash(operator.password_hash):
        operator.password_hash = HASHER.hash(password)
    return True


def _one_fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"sirena-totp", info=b"totp-seed").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _fernet(key: Secret) -> MultiFernet:
    """Encrypts with the current key; decrypts with it or any previous one (after a rotation)."""
    return MultiFernet([_one_fernet(value) for value in key.all_values()])


def encrypt_totp(seed: str, key: Secret) -> bytes:
    return _fernet(key).encrypt(seed.encode())


def decrypt_totp(blob: bytes, key: Secret) -> str:
    try:
        return _fernet(key).decrypt(blob).decode()
    except InvalidToken:
        raise InvalidInput("the TOTP seed cannot be decrypted with this secret key",
                           fields={"secret_key": "does not match the one the seed was encrypted with"}) from None


def reencrypt_totp(operator: Operator, key: Secret) -> bool:
    """Re-encrypt the operator's seed under the current key if an older one encrypted it; returns
    whether it changed. Raises InvalidInput if no key (current or previous) can read it."""
    if operator.totp_secret_enc is None or not key.previous:
        return False
    try:
        _one_fernet(key.reveal()).decrypt(operator.totp_secret_enc)
        return False
    except InvalidToken:
        pass
    try:
        operator.totp_secret_enc = _fernet(key).rotate(operator.totp_secret_enc)
    except InvalidToken:
        raise InvalidInput(f"the TOTP seed of {operator.username} cannot be decrypted with any configured key",
                           fields={"secret_key": "none of the current and previous keys encrypted it"}) from None
    return True


def totp_uri(operator: Operator, key: Secret) -> str:
    if operator.totp_secret_enc is None:
        raise InvalidInput("operator has no TOTP seed", fields={"totp": "not enrolled"})
    return pyotp.TOTP(decrypt_totp(operator.totp_secret_enc, key)).provisioning_uri(
        name=operator.username, issuer_name=ISSUER)


def verify_totp(operator: Operator, code: str, key: Secret, *, at: datetime | None = None) -> bool:
    """Accept a code within ±1 step, once: a code already used (or older) is refused (ASVS 2.8.4)."""
    if operator.totp_secret_enc is None or not code.strip().isdigit():
        return False
    totp = pyotp.TOTP(decrypt_totp(operator.totp_secret_enc, key))
    reencrypt_totp(operator, key)  # after a key rotation: each sign-in moves its seed to the new key
    now = at or utcnow()
    step_now = int(now.timestamp()) // totp.interval
    for step in (step_now - 1, step_now, step_now + 1):
        if secrets.compare_digest(totp.at(step * totp.interval), code.strip()):
            if operator.totp_last_step is not None and step <= operator.totp_last_step:
                return False
            operator.totp_last_step = step
            return True
    return False


def create_operator(session: Session, username: str, roles: list[str], key: Secret, actor: Actor, *,
                    password: str | None = None, display_name: str = "") -> NewOperator:
    """Create an operator with a generated (or given) password and a fresh TOTP seed."""
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise InvalidInput("invalid user name", fields={"username": "1–64 letters, digits, . - _"})
    roles = _valid_roles(roles)
    if session.scalar(select(Operator.id).where(Operator.username == username)):
        raise InvalidInput("user exists", fields={"username": f'"{username}" already exists'})
    password = password if password is not None else secrets.token_urlsafe(15)
    check_password_policy(password, username)
    seed = pyotp.random_base32()
    operator = Operator(username=username, display_name=display_name or username,
                        password_hash=hash_password(password), totp_secret_enc=encrypt_totp(seed, key),
                        roles=sorted(set(roles)), password_changed_at=utcnow())
    session.add(operator)
    session.flush()
    trail.append(session, actor=actor, action="operator.created", subject_type="operator",
                 subject_id=operator.id, payload={"username": username, "roles": operator.roles})
    uri = pyotp.TOTP(seed).provisioning_uri(name=username, issuer_name=ISSUER)
    return NewOperator(operator, password, uri)


def _valid_roles(roles: list[str]) -> list[str]:
    bad = [r for r in roles if r not in {role.value for role in Role}]
    if bad or not roles:
        raise InvalidInput("invalid roles", fields={"role": f"unknown: {', '.join(bad) or 'none given'}; "
                                                             "use composer, approver, admin or auditor"})
    return sorted(set(roles))


def set_roles(session: Session, operator_id: int, roles: list[str], actor: Actor) -> Operator:
    """Replace an operator's roles (audited with before and after). The last enabled admin keeps
    the admin role, and nobody changes their own roles (another admin must)."""
    roles = _valid_roles(roles)
    operator = session.get(Operator, operator_id, with_for_update=True)
    if operator is None:
        raise NotFound(f"operator {operator_id} does not exist")
    if actor.operator_id == operator.id:
        raise Refused("an operator cannot change their own roles: ask another admin", operator=operator.username)
    before = sorted(operator.roles)
    if Role.ADMIN.value in before and Role.ADMIN.value not in roles:
        admins = session.scalar(select(func.count()).select_from(Operator).where(
            Operator.roles.any_() == Role.ADMIN.value, Operator.disabled.is_(False), Operator.id != operator.id))
        if not admins:
            raise Refused(f"{operator.username} is the last admin: give the role to someone else first",
                          operator=operator.username)
    operator.roles = roles
    trail.append(session, actor=actor, action="operator.roles_changed", subject_type="operator",
                 subject_id=operator.id, payload={"username": operator.username, "before": before, "after": roles})
    return operator


def set_language(session: Session, operator_id: int, language: str, actor: Actor) -> Operator:
    """The language an operator reads the console in (audited with before and after): their own,
    or anyone's by an admin. Raises InvalidInput (not a console language), NotFound, Refused."""
    if language not in LANGUAGES:
        raise InvalidInput(f"unknown language {language!r}", fields={"language": f"expected {' or '.join(LANGUAGES)}"})
    if actor.operator_id != operator_id:
        permissions.require(actor, "operators.manage", "set another operator's language")
    operator = session.get(Operator, operator_id, with_for_update=True)
    if operator is None:
        raise NotFound(f"operator {operator_id} does not exist")
    before = operator.language
    operator.language = language
    trail.append(session, actor=actor, action="operator.language_changed", subject_type="operator",
                 subject_id=operator.id, payload={"username": operator.username, "before": before, "after": language})
    return operator


def reset_mfa(session: Session, operator_id: int, key: Secret, actor: Actor) -> str:
    """A new TOTP seed for an operator who lost their authenticator (audited); returns the enrolment
    URI, to be handed over once. The old seed stops working at once and their sessions end."""
    operator = session.get(Operator, operator_id, with_for_update=True)
    if operator is None:
        raise NotFound(f"operator {operator_id} does not exist")
    if actor.operator_id == operator.id:
        raise Refused("an operator cannot reset their own second factor: ask an admin", operator=operator.username)
    seed = pyotp.random_base32()
    operator.totp_secret_enc, operator.totp_enrolled_at, operator.totp_last_step = encrypt_totp(seed, key), None, None
    revoked = revoke_operator_sessions(session, operator.id)
    trail.append(session, actor=actor, action="operator.mfa_reset", subject_type="operator", subject_id=operator.id,
                 payload={"username": operator.username, "sessions_revoked": revoked})
    return pyotp.TOTP(seed).provisioning_uri(name=operator.username, issuer_name=ISSUER)


def get_operator(session: Session, username: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.username == username))
    if operator is None:
        raise NotFound(f'operator "{username}" does not exist', username=username)
    return operator


def actor_of(operator: Operator, *, interface: str, address: str | None = None,
             user_agent: str | None = None) -> Actor:
    return Actor(kind="operator", name=operator.username, operator_id=operator.id,
                 roles=frozenset(operator.roles or []), interface=interface, address=address,
                 user_agent=user_agent)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, username: str, scopes: list[str], actor: Actor, *, name: str = "",
                 expires_in: timedelta | None = timedelta(days=90)) -> tuple[ApiToken, str]:
    """A bearer token for `username`, returned in clear once; only its SHA-256 is stored.

    A token never outranks its operator: a scope their roles cannot hold (alerting/directory/permissions.py)
    is Refused, naming the scope and the role it needs (audited by the caller's error boundary).
    The API checks again on every request, against the roles the operator has then.
    """
    operator = get_operator(session, username)
    wanted = permissions.check_scopes(scopes, operator.roles or [], username)
    token = "sir_" + secrets.token_urlsafe(32)
    row = ApiToken(operator_id=operator.id, name=name or f"{username}-token", token_sha256=token_digest(token),
                   prefix=token[:10], scopes=wanted,
                   expires_at=utcnow() + expires_in if expires_in else None)
    session.add(row)
    session.flush()
    trail.append(session, actor=actor, action="token.created", subject_type="api_token", subject_id=row.id,
                 payload={"operator": username, "roles": sorted(operator.roles or []), "scopes": row.scopes,
                          "expires_at": str(row.expires_at)})
    return row, token


def revoke_token(session: Session, token_id: int, actor: Actor) -> ApiToken:
    row = session.get(ApiToken, token_id, with_for_update=True)
    if row is None:
        raise NotFound(f"token {token_id} does not exist", token_id=token_id)
    row.revoked_at = row.revoked_at or utcnow()
    trail.append(session, actor=actor, action="token.revoked", subject_type="api_token", subject_id=row.id)
    return row


def session_digest(sid: str) -> str:
    """What `web_sessions` keeps of a console session id: its SHA-256, never the id."""
    return hashlib.sha256(sid.encode()).hexdigest()


def revoke_operator_sessions(db: Session, operator_id: int, *, keep_sid: str | None = None) -> int:
    """Revoke every live session of an operator (except `keep_sid`); returns how many."""
    query = update(WebSession).where(WebSession.operator_id == operator_id, WebSession.revoked_at.is_(None))
    if keep_sid:
        query = query.where(WebSession.id_sha256 != session_digest(keep_sid))
    return rowcount(db.execute(query.values(revoked_at=utcnow())))
