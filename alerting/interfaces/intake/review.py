"""The intake log: every mail and CAP document received, and the refused ones kept for review."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.base.db import transaction, utcnow
from alerting.base.models.intake import IntakeMessage

log = logging.getLogger("sirena.intake")

MAX_KEPT_BYTES = 10 * 1024 * 1024


def record(session: Session, channel: str, *, sender: str, subject: str, raw: bytes | None, outcome: str,
           reason: str | None = None, alert_id: int | None = None) -> IntakeMessage:
    """Log one received item in `session`'s transaction (raw bytes kept up to MAX_KEPT_BYTES)."""
    row = IntakeMessage(channel=channel, sender=sender.replace("\x00", "")[:1000],
                        subject=subject.replace("\x00", "")[:1000], raw=(raw or b"")[:MAX_KEPT_BYTES],
                        size_bytes=len(raw or b""), outcome=outcome,
                        reason=(reason or "").replace("\x00", "")[:4000] or None, alert_id=alert_id)
    session.add(row)
    session.flush()
    return row


def keep_for_review(channel: str, *, sender: str, subject: str, raw: bytes | None, outcome: str,
                    reason: str) -> int | None:
    """Keep a refused or malformed item in a transaction of its own (the action's rolled back).

    Never raises: the refusal must still reach the sender; a failure is logged in full.
    """
    try:
        with transaction() as session:
            return record(session, channel, sender=sender, subject=subject, raw=raw, outcome=outcome,
                          reason=reason).id
    except Exception:
        log.exception("could not keep a refused %s item from %s for review: %s", channel, sender, reason)
        return None


def pending_review(session: Session, limit: int = 100) -> list[IntakeMessage]:
    """Refused and malformed items nobody has reviewed yet, oldest first."""
    return list(session.scalars(select(IntakeMessage).where(IntakeMessage.reviewed_at.is_(None),
                                                            IntakeMessage.outcome != "draft_created")
                                .order_by(IntakeMessage.received_at).limit(limit)))


def mark_reviewed(session: Session, message_id: int) -> None:
    row = session.get(IntakeMessage, message_id, with_for_update=True)
    if row is not None and row.reviewed_at is None:
        row.reviewed_at = utcnow()
