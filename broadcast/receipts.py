"""Delivery receipts: parsed, stored, matched to the messages they report on, in sets.

A receipt names a message by the id the carrier gave in submit_sm_resp, but carriers spell it
differently in receipts (upper case, zero-padded, decimal for a hex id). Each carrier declares how
in the carriers file (`receipt_id_style`):

| style          | submit_sm_resp id | receipt id |
|----------------|-------------------|------------|
| `string`       | any text          | same text, any case, any leading zeros (default) |
| `hex`          | hex               | hex        |
| `decimal`      | decimal           | decimal    |
| `hex:decimal`  | hex               | decimal (Kannel's msg-id-type 0x02 case) |
| `decimal:hex`  | decimal           | hex        |

The canonical key of a message part is the submit spelling, lower case, without leading zeros
(`sirena_message_key` in SQL); a receipt id is converted into that spelling here. A trigger keeps
`message_parts` ((carrier, key) → delivery or follow-up, part) as the gateway records ids
(migration 0006_inbound), so a batch of receipts is matched by one join.

Every receipt is stored (`receipts`, one per inbound row), matched or not; a receipt whose id is
not recorded yet (it overtook its submit_sm_resp) waits and is matched by a later pass. States:
the first final receipt of a part decides that part; a message is delivered when every part is,
failed/expired as soon as one part finally fails; intermediate states change nothing; a final
state is never overwritten by a later receipt (stored all the same, as evidence).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base.db import pg_array
from alerting.base.errors import ConfigError
from broadcast.carriers import RECEIPT_ID_STYLES

STYLES = RECEIPT_ID_STYLES
FINAL_STATES = frozenset({"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "REJECTD"})
# SMPP 3.4 §5.3.2.35 message_state values.
MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD",
                  7: "UNKNOWN", 8: "REJECTD"}
_STAT_PREFIXES = {"DELIV": "DELIVRD", "UNDEL": "UNDELIV", "EXPIR": "EXPIRED", "REJEC": "REJECTD",
                  "ACCEP": "ACCEPTD", "ENROU": "ENROUTE", "DELET": "DELETED", "UNKNO": "UNKNOWN"}
_ID = re.compile(r"(?i)\bid:\s*([^\s]+)")
_STAT = re.compile(r"(?i)\bstat:\s*([A-Za-z]+)")
_ERR = re.compile(r"(?i)\berr:\s*([0-9A-Za-z]+)")
_DONE = re.compile(r"(?i)\bdone\s+date:\s*(\d{10})(\d{2})?")


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    raw_id: str
    stat: str
    error_code: str | None
    done_at: datetime | None

    @property
    def final(self) -> bool:
        return self.stat in FINAL_STATES


def _stat_word(word: str) -> str:
    word = word.upper()
    return word if word in FINAL_STATES or word in MESSAGE_STATES.values() else _STAT_PREFIXES.get(word[:5], word[:8])


def parse_receipt(tlvs: Mapping[str, Any] | None, body: str | None) -> ParsedReceipt | None:
    """The id, state, error code and done time of a receipt; None when it names no message.

    TLVs (`receipted_message_id`, `message_state`, `network_error_code`) win over the appendix-B
    text (`id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…`) field by field.
    """
    tlvs = tlvs or {}
    body = body or ""
    raw_id = str(tlvs.get("receipted_message_id") or "").strip()
    if not raw_id and (m := _ID.search(body)):
        raw_id = m.group(1)
    if not raw_id:
        return None
    stat = MESSAGE_STATES.get(int(tlvs["message_state"])) if isinstance(tlvs.get("message_state"), int) else None
    if stat is None:
        m = _STAT.search(body)
        stat = _stat_word(m.group(1)) if m else "UNKNOWN"
    error_code = None
    network = tlvs.get("network_error_code")
    if isinstance(network, str) and len(network) == 6:  # bytes kept as hex: type (1) + code (2)
        try:
            error_code = f"{int(network[2:], 16):03d}"
        except ValueError:
            error_code = network
    if error_code is None and (m := _ERR.search(body)):
        error_code = m.group(1)
    done_at = None
    if m := _DONE.search(body):
        d, seconds = m.group(1), m.group(2) or "00"  # YYMMDDhhmm[ss], as appendix B writes it
        try:  # by hand: strptime was a twentieth of a worker's CPU during a blast
            year = int(d[0:2])
            done_at = datetime(year + (2000 if year < 69 else 1900), int(d[2:4]), int(d[4:6]), int(d[6:8]),
                               int(d[8:10]), int(seconds), tzinfo=UTC)  # %y's century rule
        except ValueError:
            done_at = None
    return ParsedReceipt(raw_id[:80], stat, error_code, done_at)


def check_style(style: str, carrier: str = "?") -> tuple[str | None, str | None]:
    """(submit base, receipt base) of a style. Raises ConfigError naming the carrier's key."""
    if style not in STYLES:
        raise ConfigError(f"carriers.{carrier}.receipt_id_style: expected one of {', '.join(STYLES)}, "
                          f"got {style!r}", key=f"carriers.{carrier}.receipt_id_style")
    if style == "string":
        return None, None
    submit, _, receipt = style.partition(":")
    return submit, receipt or submit


def submit_key(message_id: str) -> str:
    """The canonical key of an id as submit_sm_resp gave it (same as SQL `sirena_message_key`)."""
    return message_id.lower().lstrip("0") or "0"


def receipt_key(style: str, raw_id: str) -> str:
    """The canonical key of a receipt's id under a carrier's style: the submit spelling, lower case,
    without leading zeros. An id that is not a number in the declared base is compared as text."""
    submit_base, receipt_base = check_style(style)
    if submit_base is not None:
        try:
            value = int(raw_id, 16 if receipt_base == "hex" else 10)
            return format(value, "x" if submit_base == "hex" else "d")
        except ValueError:
            pass
    return submit_key(raw_id)


@dataclass(slots=True)
class ReceiptReport:
    stored: int = 0
    unparsable: int = 0
    matched: int = 0
    changed: int = 0
    undelivered: list[int] = field(default_factory=list)  # deliveries a receipt just failed/expired


# Stored and matched in one statement: a receipt whose message part is already recorded is written
# matched (one row version, no entry in the pending index); one that overtook its submit_sm_resp is
# written pending and matched by a later pass (match_receipts). LATERAL … LIMIT 1 (the LIMIT keeps
# the planner from flattening it into a join): each receipt looks up its part by the primary key; a
# plain join let the planner hash the whole of message_parts at every batch (28-34 ms for 400-450
# receipts once 63,500-85,000 parts were recorded, growing with the alert).
_INGEST = """
INSERT INTO receipts (inbound_id, carrier, raw_id, msg_key, stat, final, error_code, done_at, received_at,
                      delivery_id, followup_id, part_no, matched_at)
SELECT v.inbound_id, v.carrier, v.raw_id, v.msg_key, v.stat, v.final, v.error_code, v.done_at, v.received_at,
       mp.delivery_id, mp.followup_id, mp.part_no, CASE WHEN mp.carrier IS NOT NULL THEN now() END
  FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], %s::boolean[],
              %s::varchar[], %s::timestamptz[], %s::timestamptz[])
       AS v(inbound_id, carrier, raw_id, msg_key, stat, final, error_code, done_at, received_at)
  LEFT JOIN LATERAL (SELECT * FROM message_parts p WHERE p.carrier = v.carrier AND p.msg_key = v.msg_key
                      LIMIT 1) mp ON true
    ON CONFLICT (inbound_id) DO NOTHING
RETURNING id, delivery_id, followup_id, matched_at IS NOT NULL, final, stat, error_code, coalesce(done_at, received_at)
"""


def ingest_receipts(session: Session, rows: Iterable[tuple[int, str, Mapping[str, Any] | None, str | None, datetime]],
                    styles: Mapping[str, str], *, apply: bool = True) -> tuple[list[int], list[int], ReceiptReport]:
    """Store receipts from inbound rows (inbound id, carrier, tlvs, text, received at) in one INSERT,
    matched to their message parts in the same statement, and (with `apply`) apply the matched ones.

    Returns (ids of receipts stored now, inbound ids that named no message, report). Idempotent:
    an inbound row already stored as a receipt is skipped. Receipts whose message id is not
    recorded yet are stored pending, for a later match_receipts.
    """
    report = ReceiptReport()
    values, unparsable = [], []
    for inbound_id, carrier, tlvs, body, received_at in rows:
        parsed = parse_receipt(tlvs, body)
        if parsed is None:
            unparsable.append(inbound_id)
            continue
        key = receipt_key(styles.get(carrier, "string"), parsed.raw_id)
        values.append((inbound_id, carrier or "", parsed.raw_id, key, parsed.stat, parsed.final,
                       parsed.error_code, parsed.done_at, received_at))
    report.unparsable = len(unparsable)
    if not values:
        return [], unparsable, report
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(_INGEST, [pg_array(c) for c in zip(*values, strict=True)])  # an array constant per column
        stored = cursor.fetchall()
    finally:
        cursor.close()
    ids = [r[0] for r in stored]
    report.stored = len(ids)
    hits = [(r[1], r[2]) for r in stored if r[3]]
    report.matched = len(hits)
    if apply and hits:
        # (delivery, stat, code, time) of the final receipts of deliveries, in the order they came
        finals = [(r[1], r[5], r[6], r[7]) for r in sorted(stored) if r[3] and r[1] is not None and r[4]]
        _apply(session, hits, report, finals)
    return ids, unparsable, report


# The pending receipts of this pass find their message parts in one join.
_MATCH = """
WITH p AS (SELECT id, carrier, msg_key FROM receipts WHERE matched_at IS NULL AND {which}
            ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
UPDATE receipts r SET delivery_id = mp.delivery_id, followup_id = mp.followup_id, part_no = mp.part_no,
       matched_at = now()
  FROM p JOIN message_parts mp ON mp.carrier = p.carrier AND mp.msg_key = p.msg_key
 WHERE r.id = p.id
RETURNING r.delivery_id, r.followup_id
"""

# Recomputed from every receipt of the message, so a duplicate or a replay changes nothing. The first
# failed part (its state and code) is a DISTINCT ON, not an ordered array_agg: those sort once per
# message (13 ms of a 40-ms pass of 774 receipts).
_APPLY = """
WITH firsts AS (SELECT DISTINCT ON ({column}, part_no) {column} AS tid, part_no, stat, error_code,
                       coalesce(done_at, received_at) AS at
                  FROM receipts WHERE {column} = ANY(CAST(:ids AS bigint[])) AND final
                 ORDER BY {column}, part_no, id),
     agg AS (SELECT tid, count(*) FILTER (WHERE stat = 'DELIVRD') AS ok_parts,
                    bool_or(part_no IS NULL AND stat = 'DELIVRD') AS whole_ok,
                    max(at) FILTER (WHERE stat = 'DELIVRD') AS ok_at,
                    min(at) FILTER (WHERE stat <> 'DELIVRD') AS bad_at
               FROM firsts GROUP BY tid),
     first_bad AS (SELECT DISTINCT ON (tid) tid, stat AS bad, error_code AS bad_code
                     FROM firsts WHERE stat <> 'DELIVRD' ORDER BY tid, at, part_no),
     next AS (SELECT t.id, agg.*, first_bad.bad, first_bad.bad_code, CASE
                WHEN t.state <> 'submitted' THEN t.state
                WHEN first_bad.bad = 'EXPIRED' THEN 'expired'
                WHEN first_bad.bad IS NOT NULL THEN 'failed'
                WHEN agg.ok_parts >= coalesce(t.parts, 1) OR agg.whole_ok THEN 'delivered'
                ELSE t.state END AS new_state,
                CASE WHEN agg.whole_ok THEN coalesce(t.parts, 1) ELSE least(agg.ok_parts, 32767) END AS ok_count
                FROM {table} t JOIN agg ON agg.tid = t.id LEFT JOIN first_bad ON first_bad.tid = t.id)
UPDATE {table} t
   SET parts_delivered = next.ok_count,
       state = next.new_state,
       delivered_at = CASE WHEN next.new_state = 'delivered' AND t.state <> 'delivered' THEN next.ok_at
                           ELSE t.delivered_at END,
       failed_at = CASE WHEN next.new_state IN ('failed', 'expired') AND t.state <> next.new_state
                        THEN next.bad_at ELSE t.failed_at END,
       error_code = CASE WHEN next.new_state IN ('failed', 'expired') AND t.state <> next.new_state
                         THEN coalesce(next.bad_code, next.bad) ELSE t.error_code END,
       error_reason = CASE WHEN next.new_state IN ('failed', 'expired') AND t.state <> next.new_state
                           THEN 'receipt ' || next.bad || coalesce(', carrier error ' || next.bad_code, '')
                           ELSE t.error_reason END,
       updated_at = now()
  FROM next
 WHERE t.id = next.id AND (t.state <> next.new_state OR t.parts_delivered <> next.ok_count)
RETURNING t.id, t.state
"""

# The common case, a one-part message still `submitted` whose first final receipt is in this batch:
# that receipt decides it, and nothing else needs reading (what _APPLY would conclude from the
# message's receipts: no earlier final one can exist, it would have moved the state). The rest
# (long messages, duplicates, late receipts, intermediate states, follow-ups) go through _APPLY.
_APPLY_ONE_PART = """
WITH firsts AS (SELECT DISTINCT ON (v.tid) v.tid, v.stat, v.error_code, v.at
                  FROM unnest(CAST(:ids AS bigint[]), CAST(:stats AS varchar[]), CAST(:codes AS varchar[]),
                              CAST(:ats AS timestamptz[])) WITH ORDINALITY AS v(tid, stat, error_code, at, k)
                 ORDER BY v.tid, v.k)
UPDATE deliveries t
   SET parts_delivered = CASE WHEN f.stat = 'DELIVRD' THEN coalesce(t.parts, 1) ELSE 0 END,
       state = CASE f.stat WHEN 'DELIVRD' THEN 'delivered' WHEN 'EXPIRED' THEN 'expired' ELSE 'failed' END,
       delivered_at = CASE WHEN f.stat = 'DELIVRD' THEN f.at ELSE t.delivered_at END,
       failed_at = CASE WHEN f.stat <> 'DELIVRD' THEN f.at ELSE t.failed_at END,
       error_code = CASE WHEN f.stat <> 'DELIVRD' THEN coalesce(f.error_code, f.stat) ELSE t.error_code END,
       error_reason = CASE WHEN f.stat <> 'DELIVRD'
                           THEN 'receipt ' || f.stat || coalesce(', carrier error ' || f.error_code, '')
                           ELSE t.error_reason END,
       updated_at = now()
  FROM firsts f
 WHERE t.id = f.tid AND t.state = 'submitted' AND coalesce(t.parts, 1) = 1
RETURNING t.id, t.state
"""

# A follow-up that re-sent an undelivered message through another carrier and got through: the
# delivery it stands for is delivered after all (the counters follow through their trigger).
_RETRY_DELIVERED = """
UPDATE deliveries d SET state = 'delivered', delivered_at = f.delivered_at, parts_delivered = coalesce(d.parts, 1),
       error_reason = coalesce(d.error_reason || '; ', '') || 'delivered on retry through ' || f.carrier,
       updated_at = now()
  FROM followups f
 WHERE f.id = ANY(:ids) AND f.kind = 'carrier_retry' AND f.state = 'delivered' AND d.id = f.delivery_id
   AND d.state IN ('failed', 'expired')
"""


def match_receipts(session: Session, receipt_ids: list[int] | None = None, *, limit: int = 20000) -> ReceiptReport:
    """Match pending receipts (these ids, or the oldest `limit` pending) and apply them. Idempotent.

    One statement matches, one per table (deliveries, follow-ups) applies; rows another pass holds
    are skipped (SKIP LOCKED) and picked up by the next pass.
    """
    report = ReceiptReport()
    which = "id = ANY(:ids)" if receipt_ids is not None else "received_at > now() - interval '30 days'"
    params: dict[str, Any] = {"limit": limit}
    if receipt_ids is not None:
        params["ids"] = receipt_ids
    hits = session.execute(text(_MATCH.format(which=which)), params).all()
    report.matched = len(hits)
    _apply(session, [(h[0], h[1]) for h in hits], report)
    return report


def _apply(session: Session, hits: list[tuple[int | None, int | None]], report: ReceiptReport,
           finals: Sequence[tuple[int, str, str | None, datetime]] = ()) -> None:
    """Apply matched receipts ((delivery id, follow-up id) each) to their messages' states; `finals`
    (delivery id, stat, error code, time, in the order the receipts came) may decide one-part
    deliveries without reading their receipts back."""
    decided: set[int] = set()
    if finals:
        columns = list(zip(*finals, strict=True))
        changed = session.execute(text(_APPLY_ONE_PART), {"ids": pg_array(columns[0]), "stats": pg_array(columns[1]),
                                                          "codes": pg_array(columns[2]),
                                                          "ats": pg_array(columns[3])}).all()
        decided = {i for i, _ in changed}
        report.changed += len(changed)
        report.undelivered += [i for i, state in changed if state in ("failed", "expired")]
    for table, column, ids in (("deliveries", "delivery_id", {h[0] for h in hits if h[0] is not None} - decided),
                               ("followups", "followup_id", {h[1] for h in hits if h[1] is not None})):
        if ids:
            # Lock the rows of long messages first, in id order, then apply in a new statement: a
            # pass applying the other part of the same long message commits first, and this
            # statement's snapshot then sees its receipts too (otherwise each would count only its
            # own part). A one-part message has no other part to wait for: its row is left to the
            # UPDATE (locking every row first was a tenth of the pass).
            # NO KEY UPDATE (what the UPDATE itself takes), not UPDATE: a reply being stored meanwhile
            # checks its foreign key to the delivery with KEY SHARE, which FOR UPDATE blocked; that
            # wait closed a deadlock with the live counters (bench/inbound.py, 0-4 per run).
            in_order = pg_array(sorted(ids))
            session.execute(text(f"SELECT id FROM {table} WHERE id = ANY(CAST(:ids AS bigint[])) AND parts > 1 "
                                 "ORDER BY id FOR NO KEY UPDATE"), {"ids": in_order})
            changed = session.execute(text(_APPLY.format(table=table, column=column)), {"ids": in_order}).all()
            report.changed += len(changed)
            if table == "deliveries":
                report.undelivered += [i for i, state in changed if state in ("failed", "expired")]
            else:
                session.execute(text(_RETRY_DELIVERED), {"ids": [i for i, _ in changed]})


def pending_count(session: Session) -> int:
    """Receipts kept but not (yet) matched to any message: shown to the operator, never dropped."""
    return int(session.execute(text("SELECT count(*) FROM receipts WHERE matched_at IS NULL")).scalar_one())


@dataclass(frozen=True, slots=True)
class CarrierHealth:
    carrier: str
    finals: int
    delivered: int
    failed: int
    failure_rate: float
    latency_p50_s: float | None
    latency_p90_s: float | None
    degraded: bool
    reason: str


def carrier_health_from_receipts(session: Session, window: timedelta, *, min_finals: int = 20,
                                 now: datetime | None = None) -> dict[str, CarrierHealth]:
    """Per carrier, over receipts received in the last `window`: failure rate, receipt latency, and
    whether it is degraded: a failure rate above 20 % and twice the others' median (+5 points), or
    a p90 latency above 60 s and three times the others' median p90. Needs `min_finals` receipts.
    """
    rows = session.execute(text("""
        SELECT r.carrier, count(*) FILTER (WHERE r.final),
               count(*) FILTER (WHERE r.stat = 'DELIVRD'),
               count(*) FILTER (WHERE r.final AND r.stat <> 'DELIVRD'),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.received_at - d.submitted_at))
                 FILTER (WHERE r.final AND d.submitted_at IS NOT NULL),
               percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM r.received_at - d.submitted_at))
                 FILTER (WHERE r.final AND d.submitted_at IS NOT NULL)
          FROM receipts r LEFT JOIN deliveries d ON d.id = r.delivery_id
         WHERE r.received_at > coalesce(CAST(:now AS timestamptz), now()) - make_interval(secs => :window)
         GROUP BY r.carrier
    """), {"window": window.total_seconds(), "now": now}).all()
    stats = {r[0]: (int(r[1]), int(r[2]), int(r[3]), r[4], r[5]) for r in rows}
    out: dict[str, CarrierHealth] = {}
    for name, (finals, delivered, failed, p50, p90) in stats.items():
        rate = failed / finals if finals else 0.0
        others = [s for n, s in stats.items() if n != name and s[0] >= min_finals]
        other_rate = (_median([s[2] / s[0] for s in others]) if others else None) or 0.0
        other_p90 = _median([s[4] for s in others if s[4] is not None])
        reason = ""
        if finals >= min_finals:
            if rate > 0.2 and rate > 2 * other_rate + 0.05:
                reason = f"{rate:.0%} of receipts failed (others {other_rate:.0%})"
            elif p90 is not None and other_p90 is not None and p90 > 60 and p90 > 3 * other_p90:
                reason = f"receipts arrive after {p90:.0f} s (p90; others {other_p90:.0f} s)"
        out[name] = CarrierHealth(name, finals, delivered, failed, rate, p50, p90, bool(reason), reason)
    return out


def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
