"""Rotating the secret key: what an older key encrypted, moved under the current one.

The secret key (SIRENA_SECRET_KEY_FILE) encrypts operators' TOTP seeds and webhook subscribers'
signing secrets, and derives the key that signs audit checkpoints and exports. After a rotation
the old key file is listed in SIRENA_SECRET_KEY_PREVIOUS_FILES: everything it wrote stays
readable (seeds and secrets decrypt, old checkpoint lines and exports verify). `reencrypt_secrets`
then moves seeds and secrets under the new key (a sign-in does it too, for that operator's seed),
so the old key is needed afterwards only to verify what it signed in the audit trail's files.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.base.errors import InvalidInput
from alerting.base.models import Operator
from alerting.base.settings import Secret
from alerting.directory.accounts import reencrypt_totp
from alerting.webhooks import reencrypt_subscriber_secrets
from audit import trail
from audit.actor import Actor


def reencrypt_secrets(session: Session, key: Secret, actor: Actor) -> dict[str, Any]:
    """Re-encrypt every TOTP seed and webhook secret that a previous key encrypted under the
    current key. Idempotent (a second run changes nothing). Audited (secret_key.reencrypted).

    Returns counts, and the operators and subscribers no configured key can read (their seed or
    secret was encrypted with a key that is not listed: re-enrol them, or re-add the subscriber).
    """
    operators, unreadable_operators = 0, []
    for operator in session.scalars(select(Operator).where(Operator.totp_secret_enc.is_not(None))
                                    .order_by(Operator.id).with_for_update()):
        try:
            operators += reencrypt_totp(operator, key)
        except InvalidInput:
            unreadable_operators.append(operator.username)
    subscribers, unreadable_subscribers = reencrypt_subscriber_secrets(session, key)
    result = {"previous_keys": len(key.previous), "totp_seeds_reencrypted": operators,
              "webhook_secrets_reencrypted": subscribers, "unreadable_operators": unreadable_operators,
              "unreadable_subscribers": unreadable_subscribers}
    trail.append(session, actor=actor, action="secret_key.reencrypted", payload=result)
    return result
