"""HELP replies until a person has dealt with them: pinned on the dashboard and on their alert's
page until an operator marks them handled (who and when kept on the reply, and audited).

Written by broadcast/replies.py (a HELP is stored, audited and told by SMS at once: broadcast/
escalation.raise_help_now); read here for the console; `mark_help_handled` is the one way to
take one off the board.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, InvalidTransition, NotFound
from alerting.base.models import Reply, ReplyMeaning
from alerting.base.phones import mask_msisdn
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor

MAX_NOTE = 500


@dataclass(frozen=True)
class OpenHelps:
    """The HELPs not handled yet, newest first (at most the limit asked for), and how many in all."""

    total: int
    helps: list[dict[str, Any]]


def open_helps(session: Session, *, alert_id: int | None = None, limit: int = 50) -> OpenHelps:
    """HELP replies nobody has marked handled, newest first, of one alert or of all (also those that
    matched no alert): reply id, alert id and reference, number, contact name, text, when."""
    where, params = "", {"limit": limit}
    if alert_id is not None:
        where, params["a"] = "AND r.alert_id = :a", alert_id
    rows = session.execute(text(f"""
        SELECT r.id, r.alert_id, a.reference, r.msisdn, c.name, r.text, r.created_at, r.unmatched_reason,
               count(*) OVER () AS total
          FROM replies r LEFT JOIN alerts a ON a.id = r.alert_id LEFT JOIN contacts c ON c.id = r.contact_id
         WHERE r.meaning = 'help' AND r.handled_at IS NULL {where}
         ORDER BY r.id DESC LIMIT :limit
    """), params).mappings().all()
    total = int(rows[0]["total"]) if rows else 0
    return OpenHelps(total, [{k: v for k, v in r.items() if k != "total"} for r in rows])


def mark_help_handled(session: Session, reply_id: int, actor: Actor, *, note: str = "") -> Reply:
    """Take a HELP off the board: who and when are kept on the reply and audited (reply.help_handled,
    with the note). Raises Refused (a role that may not: audited by the caller's error boundary),
    NotFound, InvalidInput (not a HELP, a note too long), InvalidTransition (handled already: two
    operators clicking together get one handling, and the second is told by whom)."""
    permissions.require(actor, "replies.handle_help", "mark a HELP handled")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"note: longer than {MAX_NOTE} characters", fields={"note": f"at most {MAX_NOTE}"})
    reply = session.get(Reply, reply_id, with_for_update=True)
    if reply is None:
        raise NotFound(f"reply {reply_id} does not exist", reply_id=reply_id)
    if reply.meaning is not ReplyMeaning.HELP:
        raise InvalidInput(f"reply {reply_id} is not a HELP", fields={"reply_id": "not a HELP"})
    if reply.handled_at is not None:
        who = session.execute(text("SELECT username FROM operators WHERE id = :o"),
                              {"o": reply.handled_by_id}).scalar()
        raise InvalidTransition(f"this HELP was marked handled by {who or 'someone'} at {_hhmm(reply.handled_at)}",
                                reply_id=reply_id)
    reply.handled_at, reply.handled_by_id = utcnow(), actor.operator_id
    trail.append(session, actor=actor, action="reply.help_handled", subject_type="alert", subject_id=reply.alert_id,
                 payload={"reply_id": reply.id, "from": mask_msisdn(reply.msisdn), "text": reply.text,
                          "asked_at": reply.created_at}, reason=note or None)
    return reply


def _hhmm(at: datetime) -> str:
    return at.strftime("%H:%M UTC")
