"""What an operator watches of the replies: an alert's live counts, who has not answered, the
stream of its replies (the console's long poll), HELP requests and the replies nobody matched.

Reads only; the replies are written by broadcast/replies.py. Phone numbers leave here whole
except in `unmatched_replies` (strangers' numbers: the last 4 digits are enough to recognise one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base.models.messages import ANSWERED
from broadcast.jobs import counts_by_state


def alert_reply_counts(session: Session, alert_id: int) -> dict[str, Any]:
    """Live reply counts of an alert: each recipient counted once, by their latest answer (HELP counts
    whoever ever asked), poll results by option, free texts, and replies since it began that
    matched nobody; `deliveries` holds the counts by delivery state (trigger-kept counters)."""
    rows = session.execute(text("""
        WITH latest AS (SELECT DISTINCT ON (delivery_id) delivery_id, meaning, poll_answer FROM replies
                         WHERE alert_id = :a AND delivery_id IS NOT NULL AND meaning = ANY(:answered)
                         ORDER BY delivery_id, id DESC)
        SELECT meaning, poll_answer, count(*) FROM latest GROUP BY 1, 2
    """), {"a": alert_id, "answered": list(ANSWERED)}).all()
    counts: dict[str, Any] = {"ack": 0, "no": 0, "help": 0, "poll": {}, "verified": 0}
    for meaning, answer, n in rows:
        if meaning == "poll":
            counts["poll"][answer] = counts["poll"].get(answer, 0) + int(n)
        elif meaning == "verify_yes":
            counts["verified"] += int(n)
        elif meaning != "help":
            counts[meaning] += int(n)
    extra = session.execute(text("""
        SELECT count(DISTINCT delivery_id) FILTER (WHERE meaning = 'help'),
               count(*) FILTER (WHERE meaning = 'free_text'), count(DISTINCT delivery_id)
          FROM replies WHERE alert_id = :a
    """), {"a": alert_id}).one()
    counts["help"], counts["free_text"], counts["responders"] = int(extra[0]), int(extra[1]), int(extra[2])

    counts["deliveries"] = counts_by_state(session, alert_id)  # queued/submitted/delivered/failed/...
    counts["answered"] = sum(int(n) for _, _, n in rows)  # recipients whose latest word is an answer
    counts["unmatched"] = int(session.execute(text(f"SELECT count(*) FROM ({_ALERT_UNMATCHED}) u"),
                                              {"a": alert_id, "limit": None}).scalar_one())
    return counts


# This alert's replies that matched nothing: from a number it was sent to, since it went out (the
# recipient answered with an unknown keyword, or to a sender it was not sent from). A stranger's
# text, or a reply to another alert, is not this alert's business.
_ALERT_UNMATCHED = """
    SELECT r.id, r.msisdn, r.text, r.unmatched_reason, r.created_at, r.inbound_id
      FROM replies r JOIN deliveries d ON d.alert_id = :a AND d.msisdn = r.msisdn
     WHERE r.alert_id IS NULL AND r.unmatched_reason IS NOT NULL
       AND r.created_at >= (SELECT coalesce(sending_at, approved_at, created_at) FROM alerts WHERE id = :a)
     ORDER BY r.id DESC LIMIT :limit
"""


def alert_unmatched(session: Session, alert_id: int, *, limit: int = 20) -> list[dict[str, Any]]:
    """This alert's unmatched replies (see _ALERT_UNMATCHED), newest first: number by its last 4
    digits, text as shown_text(), why it matched nothing, and the address it was sent to."""
    rows = session.execute(text(f"""
        SELECT u.id, u.msisdn, u.text, u.unmatched_reason, u.created_at, m.destination_addr,
               octet_length(m.short_message) AS raw_bytes, m.data_coding
          FROM ({_ALERT_UNMATCHED}) u JOIN inbound_messages m ON m.id = u.inbound_id ORDER BY u.id DESC
    """), {"a": alert_id, "limit": limit}).mappings().all()
    return [{"id": r["id"], "msisdn_last4": (r["msisdn"] or "")[-4:], "reason": r["unmatched_reason"],
             "text": shown_text(r["text"], r["raw_bytes"], r["data_coding"]), "to": r["destination_addr"],
             "at": r["created_at"].isoformat()} for r in rows]


# A carrier took it (or refused it: final); `retrying` (failed, re-sent through another carrier,
# when the counts tell it apart) was taken too, and so was `next_number` (failed on one number,
# then tried on the contact's next: a carrier's count, never in the people counts of progress()).
HANDED = ("submitted", "delivered", "failed", "expired", "retrying", "next_number")
WAITING = ("queued", "submitting", "waiting_route")


def progress(counts: dict[str, int], replies: dict[str, Any]) -> dict[str, Any]:
    """How far an alert is, from its counts by delivery state and its reply counts: recipients,
    handed to a carrier (`sent`), delivered, failed, still waiting to go, cancelled before going,
    and who answered. `retrying` is None until the counts tell failed-final from retrying apart."""
    recipients = sum(counts.values())
    sent = sum(counts.get(s, 0) for s in HANDED)
    return {"recipients": recipients, "sent": sent, "delivered": counts.get("delivered", 0),
            "failed": counts.get("failed", 0) + counts.get("expired", 0), "retrying": counts.get("retrying"),
            "waiting": sum(counts.get(s, 0) for s in WAITING), "cancelled": counts.get("cancelled", 0),
            "ack": replies.get("ack", 0), "no": replies.get("no", 0), "help": replies.get("help", 0),
            "not_answered": max(0, sent - int(replies.get("answered", 0))),
            "unmatched": replies.get("unmatched", 0)}


_NON_RESPONDERS = """
    SELECT d.id AS delivery_id, d.msisdn, d.state, d.contact_id, c.name
      FROM deliveries d LEFT JOIN contacts c ON c.id = d.contact_id
     WHERE d.alert_id = :a AND d.state IN ('submitted', 'delivered', 'failed', 'expired') AND d.id > :after
       AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.delivery_id = d.id AND r.meaning = ANY(:answered))
     ORDER BY d.id
"""


def non_responders(session: Session, alert_id: int, limit: int = 100, offset: int = 0, *,
                   after_id: int = 0) -> list[dict[str, Any]]:
    """Recipients handed to a carrier who have not answered (ack, no, help, poll), in delivery order,
    after delivery id `after_id` (a page: the next one starts after the last id of this one)."""
    rows = session.execute(text(_NON_RESPONDERS + " LIMIT :limit OFFSET :offset"), {
        "a": alert_id, "answered": list(ANSWERED), "limit": limit, "offset": offset, "after": after_id,
    }).mappings().all()
    return [dict(r) for r in rows]


def each_non_responder(session: Session, alert_id: int, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every non-responder of `non_responders`, streamed (a download of a million rows stays small)."""
    result = session.execute(text(_NON_RESPONDERS).execution_options(yield_per=batch),
                             {"a": alert_id, "answered": list(ANSWERED), "after": 0})
    for row in result.mappings():
        yield dict(row)


def shown_text(text_: str | None, raw_bytes: int | None, data_coding: int | None) -> str | None:
    """A reply's text as an operator sees it: as decoded, or `(binary, 12 bytes, data_coding 0x04)`
    when its payload was not text and was kept raw (broadcast/inbound.py)."""
    if text_ is not None or raw_bytes is None:
        return text_
    return f"(binary, {raw_bytes} bytes, data_coding 0x{data_coding or 0:02X})"


def events_since(session: Session, alert_id: int, after_id: int, limit: int = 200) -> dict[str, Any]:
    """The alert's replies after reply id `after_id` (oldest first) and its current counts: one SSE
    or long-poll step. The client sends back `last_id`. An event's `text` is shown_text()."""
    rows = session.execute(text("""
        SELECT r.id, r.meaning, r.poll_answer, r.text, r.msisdn, r.created_at, r.delivery_id, c.name,
               octet_length(m.short_message) AS raw_bytes, m.data_coding
          FROM replies r LEFT JOIN contacts c ON c.id = r.contact_id LEFT JOIN inbound_messages m ON m.id = r.inbound_id
         WHERE r.alert_id = :a AND r.id > :after ORDER BY r.id LIMIT :limit
    """), {"a": alert_id, "after": after_id, "limit": limit}).mappings().all()
    events = [{"type": "reply", "id": r["id"], "meaning": r["meaning"], "poll_answer": r["poll_answer"],
               "text": shown_text(r["text"], r["raw_bytes"], r["data_coding"]), "msisdn": r["msisdn"],
               "name": r["name"], "delivery_id": r["delivery_id"], "at": r["created_at"].isoformat()}
              for r in rows]
    escalations = [dict(r) for r in session.execute(text("""
        SELECT stage, reply_id, recipients, created_at FROM escalations WHERE alert_id = :a ORDER BY id
    """), {"a": alert_id}).mappings()]
    return {"events": events, "last_id": events[-1]["id"] if events else after_id,
            "counts": alert_reply_counts(session, alert_id), "escalations": escalations}


def unmatched_replies(session: Session, *, limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
    """Replies that matched no alert (an unknown number, nothing open for it, an unknown keyword),
    newest first, below reply id `before_id` when given: number by its last 4 digits only, text as
    shown_text(), the carrier and our number it came to, and why it matched nothing."""
    rows = session.execute(text("""
        SELECT r.id, r.msisdn, r.meaning, r.text, r.unmatched_reason, m.carrier, m.destination_addr,
               m.received_at, octet_length(m.short_message) AS raw_bytes, m.data_coding
          FROM replies r JOIN inbound_messages m ON m.id = r.inbound_id
         WHERE r.alert_id IS NULL AND r.unmatched_reason IS NOT NULL AND r.id < :before
         ORDER BY r.id DESC LIMIT :limit
    """), {"before": min(before_id or 2**63 - 1, 2**63 - 1), "limit": limit}).mappings().all()
    return [{"id": r["id"], "msisdn_last4": (r["msisdn"] or "")[-4:], "meaning": r["meaning"],
             "text": shown_text(r["text"], r["raw_bytes"], r["data_coding"]), "reason": r["unmatched_reason"],
             "carrier": r["carrier"], "to": r["destination_addr"], "received_at": r["received_at"]} for r in rows]


def help_requests(session: Session, *, since_hours: int = 24, limit: int = 50) -> list[dict[str, Any]]:
    """HELP replies of the last `since_hours`, newest first, with who sent them and for which alert
    (the dashboard's "needs attention")."""
    rows = session.execute(text("""
        SELECT r.id, r.alert_id, a.reference, r.msisdn, c.name, r.text, r.created_at
          FROM replies r LEFT JOIN alerts a ON a.id = r.alert_id LEFT JOIN contacts c ON c.id = r.contact_id
         WHERE r.meaning = 'help' AND r.created_at > now() - make_interval(hours => :h)
         ORDER BY r.id DESC LIMIT :limit
    """), {"h": since_hours, "limit": limit}).mappings().all()
    return [dict(r) for r in rows]


def live_marks(session: Session, alert_id: int) -> tuple[str, int]:
    """What the console's long poll compares between two looks, cheaply (primary-key and index reads
    only): a fingerprint of what the live view shows (the alert's state, its counters by state and
    carrier, its carrier re-sends on their way, its escalations, the newest reply anywhere, which
    moves the unmatched count too) and
    the alert's own newest reply id. Raises nothing for a missing alert: the caller read it first."""
    row = session.execute(text("""
        SELECT a.state,
               (SELECT coalesce(max(id), 0) FROM replies WHERE alert_id = :a) AS last_reply,
               (SELECT coalesce(max(id), 0) FROM replies) AS any_reply,
               (SELECT count(*) FROM escalations WHERE alert_id = :a) AS escalations,
               (SELECT count(*) FROM followups WHERE alert_id = :a AND kind = 'carrier_retry'
                   AND state IN ('queued', 'submitting', 'submitted')) AS retrying,
               (SELECT string_agg(state || ':' || carrier || ':' || n, ',' ORDER BY state, carrier)
                  FROM alert_counters WHERE alert_id = :a) AS counters
          FROM alerts a WHERE a.id = :a
    """), {"a": alert_id}).one_or_none()
    if row is None:
        return "", 0
    return f"{row.state}|{row.any_reply}|{row.escalations}|{row.retrying}|{row.counters or ''}", int(row.last_reply)
