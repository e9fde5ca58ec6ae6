"""Interpreting inbound messages: receipts → delivery states, replies → meanings and actions.

Every deliver_sm is already stored raw (broadcast/inbound.py) when this runs; nothing here can lose
one. `process_inbound(min_id, max_id)` is the job the inbound store queues after each commit, and
`sweep()` takes whatever rows are still unprocessed (Redis lost the job, a worker died), so nothing
depends on Redis. Both work in sets: one transaction per batch, one statement per step.

A reply is matched by its sender's number (through `contacts`, any of a contact's numbers: a
STOP or an ACK from a responder's second phone is theirs) to their open deliveries: an alert
sending or completed within REPLY_WINDOW_S whose message was handed to a carrier. With several
open, the one whose reply code the text quotes (`ACK 4821`) wins, else the most recent. On a shared
short code the first word is one of its keywords (`BOMBEROS ACK 4821`), and only that sender's
alerts match; without a keyword, a reply that quotes the code of an alert sent to that number
from that code (`ACK 4821`) is matched to it. A reply nobody can match is kept with the reason (`unmatched_sender`,
`no_open_alert`, `unknown_keyword`). Opt-out (STOP/BAJA/ALTO) and opt-in (START/ALTA) apply to
the contact whatever matched, and are confirmed by SMS; HELP is raised at once (an escalation job
and an audit event). A verification campaign (an alert whose `escalation` has `"verification":
true`) marks a contact verified on a yes and unverified on a no.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from psycopg2.extras import execute_values
from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base import runtime
from alerting.base.db import pg_array, retrying_transaction, transaction
from alerting.base.models import ReplyMeaning
from alerting.base.phones import mask_msisdn, source_msisdn
from alerting.base.sms_text.vocabulary import Vocabulary, load_vocabulary
from audit import trail
from audit.actor import Actor
from broadcast import carrier_facts, next_numbers, receipts, self_registration
from broadcast.escalation import raise_help_now, retry_undelivered
from broadcast.followups import FollowupDraft, create_followups
from broadcast.inbound import queue_interpretation, receipts_max_hold_s

log = logging.getLogger("sirena.replies")

REPLY_WINDOW_S = 3 * 86400
BATCH = 5000
# Interpretation jobs go at the front of the flash queue, which every worker takes first: a HELP
# must not wait behind the send batches of a big alert (a job takes milliseconds per hundred rows).
SYSTEM = Actor.system("inbound")

CONFIRMATIONS = {
    ("stop", "es"): "Sirena: no recibira mas mensajes de este servicio (las alertas vitales pueden llegar igual). "
                    "Para volver responda ALTA.",
    ("stop", "en"): "Sirena: you will get no more messages from this service (life-safety alerts may still "
                    "reach you). Reply START to come back.",
    ("start", "es"): "Sirena: volvera a recibir los mensajes de este servicio. Para darse de baja responda BAJA.",
    ("start", "en"): "Sirena: you will get this service's messages again. Reply STOP to leave.",
}


@dataclass
class InboundReport:
    rows: int = 0  # inbound rows taken (at most the batch's limit)
    receipts: int = 0
    receipts_matched: int = 0
    replies: int = 0
    unmatched: dict[str, int] = field(default_factory=dict)
    meanings: dict[str, int] = field(default_factory=dict)

    def add(self, other: InboundReport) -> None:
        """Count `other`'s batch into this report."""
        self.rows += other.rows
        self.receipts += other.receipts
        self.receipts_matched += other.receipts_matched
        self.replies += other.replies
        for mine, theirs in ((self.unmatched, other.unmatched), (self.meanings, other.meanings)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n


_vocabularies: dict[Path | None, Vocabulary] = {}  # by file: loaded once per process


def current_vocabulary() -> Vocabulary:
    """The vocabulary replies are read with: SIRENA_VOCABULARY_FILE of this process's runtime (the
    built-in one without a file, or before the runtime starts), loaded once. Raises ConfigError
    naming the variable for a bad file."""
    settings = runtime.settings()
    path = settings.vocabulary_file if settings is not None else None
    if path not in _vocabularies:
        _vocabularies[path] = load_vocabulary(path)
    return _vocabularies[path]


# A receipts job (they come by the tens of thousands after a blast) takes one batch of at most this
# many rows (~0.2 s of work), then queues the rest of its range behind the waiting jobs of the
# highest priority that has any (inbound.queue_interpretation): an alert approved during a backlog
# of receipts waits for a job or two of it, not for the backlog.
RECEIPT_BATCH = 2000
_ONLY = {None: "", "receipts": " AND kind = 'receipt'", "replies": " AND kind <> 'receipt'"}


def process_inbound(min_id: int, max_id: int, only: str | None = None, part: int = 0) -> dict[str, Any]:
    """Job: interpret the unprocessed inbound rows with ids in [min_id, max_id] (of every kind, or
    `only` "receipts" or "replies": every other kind). Idempotent.

    The gateway coalesces its stored rows into one job every few hundred milliseconds. The range
    has a lower bound on purpose: during a million-receipt blast the partial index of unprocessed
    rows fills with dead entries for rows already done, and a scan from the start of the table
    would walk all of them on every job. Older stragglers are the periodic sweep's.
    """
    # Batches of BATCH rows until the range is done: a burst can put more than one batch in a range,
    # and the rest would otherwise wait for the periodic sweep (every 5 s). Two passes at once can
    # deadlock on the live counters (each applies receipts and replies of the same alert); the
    # victim runs again rather than leaving its rows to the sweep.
    if only not in _ONLY:
        raise ValueError(f"only: expected receipts or replies, got {only!r}")
    where = f"id BETWEEN {int(min_id)} AND {int(max_id)}{_ONLY[only]}"
    limit = RECEIPT_BATCH if only == "receipts" else BATCH
    total = InboundReport()
    while True:
        report = retrying_transaction(
            lambda session: process_batch(session, where, carrier_facts.receipt_styles(session), limit=limit),
            what=f"process_inbound({min_id}, {max_id}, {only})")
        total.add(report)
        if report.rows < limit:
            return total.__dict__
        if only == "receipts":
            queue_interpretation(min_id, max_id, only, part + 1)  # lost: the sweep takes the rest
            return total.__dict__


def sweep(limit: int = BATCH, min_age_s: float = 1.0) -> dict[str, Any]:
    """Job/periodic pass: interpret unprocessed rows older than `min_age_s` (younger ones have a job
    on the way), then match receipts still waiting for their message id. Idempotent. Receipts
    younger than SIRENA_RECEIPTS_MAX_HOLD_S + 5 s are left to their own job, which may be held that
    long (a `min_age_s` of 0 takes them too: a full pass on request). At most `limit` rows."""
    total = InboundReport()
    where = f"received_at <= now() - make_interval(secs => {float(min_age_s)})"
    if min_age_s > 0:
        where += (f" AND (kind <> 'receipt' OR received_at <= now() - "
                  f"make_interval(secs => {max(float(min_age_s), receipts_max_hold_s() + 5)}))")
    report = retrying_transaction(
        lambda session: process_batch(session, where, carrier_facts.receipt_styles(session), limit=limit),
        what="inbound sweep")
    total.receipts, total.replies = report.receipts, report.replies
    with transaction() as session:
        matched = receipts.match_receipts(session)
        total.receipts_matched = matched.matched
        _retry(session, matched.undelivered)
    return total.__dict__


def _retry(session: Session, undelivered: list[int]) -> None:
    """UNDELIV/EXPIRED: on the contact's next number when it has one (broadcast/next_numbers.py),
    else once through another carrier where the sender allows it."""
    if not undelivered:
        return
    moved = set(next_numbers.try_next_numbers(session, undelivered))
    undelivered = [i for i in undelivered if i not in moved]
    if not undelivered:
        return
    routes = carrier_facts.routes_by_sender(session)
    if not routes:
        log.warning("%d undelivered messages not retried: no carrier is known (run `sirena setup`)", len(undelivered))
        return

    retry_undelivered(session, undelivered, routes)


class InboundRow(NamedTuple):
    """An unprocessed inbound_messages row, as process_batch reads it."""

    id: int
    kind: str
    carrier: str
    source_addr: str
    destination_addr: str
    text: str | None
    tlvs: dict[str, Any] | None
    received_at: datetime


def process_batch(session: Session, where: str, styles: Mapping[str, str], *, limit: int = BATCH,
                  vocabulary: Vocabulary | None = None) -> InboundReport:
    """Interpret unprocessed inbound rows matching `where` (an SQL condition built by this module).

    Locks them (SKIP LOCKED: a concurrent pass takes others), stores receipts and matches them,
    interprets replies (with `vocabulary`, by default this process's: current_vocabulary()), marks
    every row processed with its outcome, all in `session`'s transaction.
    """
    cursor = session.connection().connection.cursor()
    try:  # plain tuples: SQLAlchemy's rows were a twentieth of a worker's CPU during a blast
        cursor.execute(f"""
            SELECT id, kind, carrier, source_addr, destination_addr, text, tlvs, received_at FROM inbound_messages
             WHERE processed_at IS NULL AND {where} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
        """, (limit,))
        rows = [InboundRow._make(r) for r in cursor.fetchall()]
    finally:
        cursor.close()
    report = InboundReport(rows=len(rows))
    outcomes: dict[int, str] = {}
    receipt_rows = [(r.id, r.carrier, r.tlvs, r.text, r.received_at) for r in rows if r.kind == "receipt"]
    if receipt_rows:
        ids, unparsable, matched = receipts.ingest_receipts(session, receipt_rows, styles)
        report.receipts = len(ids)
        report.receipts_matched = matched.matched
        _retry(session, matched.undelivered)
        outcomes.update({r[0]: "receipt" for r in receipt_rows})
        outcomes.update({i: "unparsable_receipt" for i in unparsable})
    mo_rows = [r for r in rows if r.kind == "mo"]
    if mo_rows:  # ALTA/JOIN and a pending registration's SI are registrations, not replies
        taken = self_registration.take_registrations(session, mo_rows, vocabulary or current_vocabulary())
        outcomes.update(taken)
        mo_rows = [r for r in mo_rows if r.id not in taken]
    if mo_rows:
        outcomes.update(interpret_replies(session, mo_rows, vocabulary or current_vocabulary(), report))
    outcomes.update({r.id: "stored_raw" for r in rows if r.kind not in ("receipt", "mo")})
    if outcomes:
        session.execute(text("""
            UPDATE inbound_messages m SET processed_at = now(), outcome = v.outcome
              FROM unnest(CAST(:ids AS bigint[]), CAST(:outcomes AS varchar[])) AS v(id, outcome) WHERE m.id = v.id
        """), {"ids": pg_array(outcomes), "outcomes": pg_array(outcomes.values())})
    return report


def _e164(source: str) -> str:
    return source_msisdn(source)


_MATCH = text("""
WITH m AS (SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:msisdns AS varchar[]), CAST(:senders AS text[]),
                                CAST(:codes AS varchar[]), CAST(:by_code AS boolean[]))
                  AS m(inbound_id, msisdn, senders, code, by_code))
SELECT m.inbound_id, c.id AS contact_id, c.language, pick.*
  FROM m
  -- The contact that has this number, first or further (contact_numbers): two index probes. LIMIT
  -- keeps it a per-reply look-up (unlimited, the planner hashed every contact of the directory).
  LEFT JOIN LATERAL (
       SELECT f.id, f.language, f.msisdn FROM contacts f WHERE f.msisdn = m.msisdn
       UNION ALL
       SELECT o.id, o.language, o.msisdn FROM contact_numbers n JOIN contacts o ON o.id = n.contact_id
        WHERE n.msisdn = m.msisdn
       LIMIT 1) c ON true
  -- All its numbers (the first, then contact_numbers by its primary key); a stranger's: its own.
  CROSS JOIN LATERAL (
       SELECT CASE WHEN c.id IS NULL THEN ARRAY[m.msisdn]
                   ELSE ARRAY[c.msisdn] || ARRAY(SELECT x.msisdn FROM contact_numbers x WHERE x.contact_id = c.id)
              END AS numbers) k
  LEFT JOIN LATERAL (
       -- The alerts sent within the window (ix_alerts_reply_window: a few), then the delivery of
       -- each to this number, or to another number of the same contact (the unique (alert_id,
       -- msisdn) index, one probe a number): a responder answers from whichever phone is at
       -- hand. Whoever the directory says owns the number now; a number of nobody's matches
       -- only the SMS sent to it. The contact's delivery that is not `next_number` wins (the
       -- number it was last tried on: broadcast/next_numbers.py).
       SELECT d.id AS delivery_id, a.id AS alert_id, a.poll_options, a.escalation, a.sender_name, a.mode
         FROM alerts a
         JOIN deliveries d ON d.alert_id = a.id AND d.msisdn = ANY(k.numbers)
        WHERE a.state IN ('sending', 'completed')
          AND coalesce(a.sending_at, a.approved_at) > now() - make_interval(secs => :window)
          AND d.state IN ('submitting', 'submitted', 'delivered', 'failed', 'expired', 'next_number')
          AND (m.senders IS NULL OR a.sender_name = ANY(string_to_array(m.senders, ',')))
          AND (NOT m.by_code OR a.reply_code = m.code)  -- a shared code's reply without its keyword
        ORDER BY (a.reply_code = m.code) IS TRUE DESC, coalesce(a.sending_at, a.approved_at) DESC, a.id DESC,
                 d.state = 'next_number', d.id DESC
        LIMIT 1) pick ON true
""")


def _senders(session: Session) -> dict[str, list[tuple[str, str, str | None]]]:
    """address → [(sender name, kind, keyword)] of the active senders."""
    out: dict[str, list[tuple[str, str, str | None]]] = {}
    for name, kind, address, keyword in session.execute(text(
            "SELECT name, kind, address, keyword FROM senders WHERE active")).all():
        out.setdefault(address.lstrip("+"), []).append((name, kind, keyword))
    return out


def interpret_replies(session: Session, rows: list[Any], vocabulary: Vocabulary,
                      report: InboundReport) -> dict[int, str]:
    """Match, classify and store replies for inbound MO rows; act on STOP/START/HELP/verification.

    Returns {inbound id: outcome}. One statement matches all, one inserts all replies.
    """
    by_address = _senders(session)
    prepared = []
    for row in rows:
        senders = by_address.get(row.destination_addr.lstrip("+"), [])
        keywords = [k for _, kind, k in senders if kind == "shared" and k]
        reading = vocabulary.read(row.text or "", keywords=keywords)
        by_code = False
        if keywords and reading.keyword:
            names = [n for n, _, k in senders if k == reading.keyword]
        elif keywords and reading.code:
            # No keyword, but it quotes a code: the alert of one of this address's shared senders
            # that was sent to this number with that code (a reply is never lost for want of a keyword).
            names, by_code = [n for n, kind, _ in senders if kind == "shared"], True
        elif keywords:
            names = []
        else:
            names = [n for n, _, _ in senders]
        prepared.append((row, reading, keywords, names, by_code))
    # No JIT: the probes of a contact's several numbers (= ANY) lift the estimate past JIT's
    # thresholds, and compiling took 0.27 s of a 0.33 s match of 10,000 replies that runs in 0.06 s.
    session.execute(text("SET LOCAL jit = off"))
    matched = {r.inbound_id: r for r in session.execute(_MATCH, {
        "ids": [p[0].id for p in prepared], "msisdns": [_e164(p[0].source_addr) for p in prepared],
        "senders": [",".join(p[3]) if p[3] else None for p in prepared],
        "codes": [p[1].code for p in prepared], "by_code": [p[4] for p in prepared], "window": REPLY_WINDOW_S})}
    session.execute(text("SET LOCAL jit TO DEFAULT"))
    values, acts, outcomes = [], [], {}
    for row, reading, keywords, names, by_code in prepared:
        hit = matched[row.id]
        if keywords and (not names or (by_code and hit.delivery_id is None)):
            reason, hit_alert = "unknown_keyword", None
        elif hit.contact_id is None:
            reason, hit_alert = "unmatched_sender", None
        elif hit.delivery_id is None:
            reason, hit_alert = "no_open_alert", None
        else:
            reason, hit_alert = None, hit
        if hit_alert is not None and hit_alert.poll_options:
            reading = vocabulary.read(row.text or "", keywords=keywords, poll_options=hit_alert.poll_options)
        meaning = reading.meaning
        verification = bool(hit_alert is not None and (hit_alert.escalation or {}).get("verification"))
        if verification and meaning is ReplyMeaning.ACK:
            meaning = ReplyMeaning.VERIFY_YES
        sender = hit_alert.sender_name if hit_alert is not None else (names[0] if names else None)
        values.append((row.id, hit_alert.delivery_id if hit_alert else None, hit_alert.alert_id if hit_alert else None,
                       hit.contact_id, _e164(row.source_addr), meaning.value, reading.poll_answer, row.text, reason))
        acts.append((meaning, hit, hit_alert, sender, verification))
        outcomes[row.id] = reason or "matched"
        report.unmatched[reason or "matched"] = report.unmatched.get(reason or "matched", 0) + 1
        report.meanings[meaning.value] = report.meanings.get(meaning.value, 0) + 1
    cursor = session.connection().connection.cursor()
    try:
        reply_ids = [r[0] for r in execute_values(cursor, """
            INSERT INTO replies (inbound_id, delivery_id, alert_id, contact_id, msisdn, meaning, poll_answer, text,
                                 unmatched_reason) VALUES %s RETURNING id""", values,
            page_size=len(values), fetch=True)]
    finally:
        cursor.close()
    report.replies = len(reply_ids)
    _act(session, list(zip(reply_ids, values, acts, strict=True)))
    return outcomes


def _act(session: Session, replies: list[tuple[int, tuple[Any, ...], tuple[Any, ...]]]) -> None:
    """The consequences of a batch of replies, in sets: opt-out/in, verification, HELP."""
    by_meaning: dict[ReplyMeaning, list[tuple[int, tuple[Any, ...], tuple[Any, ...]]]] = {}
    for item in replies:
        by_meaning.setdefault(item[2][0], []).append(item)
    confirmations: list[FollowupDraft] = []
    for meaning, column_value, word in ((ReplyMeaning.STOP, "now()", "stop"), (ReplyMeaning.START, "NULL", "start")):
        items = [i for i in by_meaning.get(meaning, []) if i[2][1].contact_id is not None]
        if not items:
            continue
        contact_ids = sorted({i[2][1].contact_id for i in items})
        session.execute(text(f"""
            UPDATE contacts SET opted_out_at = {column_value},
                   opted_out_reason = CASE WHEN :stop THEN 'replied ' || :word ELSE NULL END, updated_at = now()
             WHERE id = ANY(:ids)"""), {"ids": contact_ids, "stop": meaning is ReplyMeaning.STOP, "word": word})
        trail.append(session, actor=SYSTEM, action=f"contact.opted_{'out' if word == 'stop' else 'in'}",
                     subject_type="contact", subject_id=contact_ids[0] if len(contact_ids) == 1 else None,
                     payload={"contacts": contact_ids, "replies": [i[0] for i in items]})
        for reply_id, value, (_, hit, _alert, sender, _) in items:
            if sender is None:
                log.warning("no sender to confirm %s to %s", word, mask_msisdn(value[4]))
                continue
            language = hit.language if (word, hit.language) in CONFIRMATIONS else "es"
            confirmations.append(FollowupDraft(value[4], f"opt{'out' if word == 'stop' else 'in'}_confirm", sender,
                                               CONFIRMATIONS[(word, language)], alert_id=value[2],
                                               contact_id=hit.contact_id, reply_id=reply_id))
    if confirmations:
        create_followups(session, confirmations, created_by="inbound", queue="high")
    verified = [i[2][1].contact_id for i in by_meaning.get(ReplyMeaning.VERIFY_YES, [])]
    refuted = [i[2][1].contact_id for i in by_meaning.get(ReplyMeaning.NO, []) if i[2][4]]
    for ids, state in ((verified, "verified"), (refuted, "unverified")):
        if ids:
            session.execute(text("""UPDATE contacts SET verification_state = :state, verified_at = now(),
                                    updated_at = now() WHERE id = ANY(:ids)"""), {"ids": ids, "state": state})
    helps = by_meaning.get(ReplyMeaning.HELP, [])
    if helps:

        raise_help_now(session, [(reply_id, value[2], value[4], value[7]) for reply_id, value, _ in helps])
