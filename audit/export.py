"""Export a timeline (one alert, or a time range) with its hashes, and verify such an export later.

Each exported event carries every hashed field exactly as hashed, plus content_hash (version 2
events; empty for version 1), prev_hash and hash, so anybody can recompute its hash from the file
alone (audit/chain.py documents the bytes). Only sealed events are exported: entry points seal
first (audit/seal.py).

- CSV: one row per event, columns `chain.FIELDS + content_hash, prev_hash, hash`; an empty cell in
  a NULLABLE column is NULL (the trail never stores '' there). A cell a spreadsheet would evaluate
  (`=…`, `+…`, `-…`, `@…`) is written after a single quote (alerting/base/csv_cells.py), taken off again
  when the export is verified. Checked event by event, and against
  the trail. Exports made before version 2 (no content_hash column) are still checked.
- JSON: an envelope with the scope, the chain head when exported, the events (each also with its
  payload parsed), their count and digest, and an HMAC by the checkpoint key: this proves, too,
  that no event was removed from or added to the file.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerting.base import csv_cells
from alerting.base.errors import InvalidInput
from audit import chain, trail
from audit.actor import Actor
from audit.checkpoints import read_head
from audit.verify import BROKEN_LINK, CHANGED_CONTENT, REORDERED, Problem, Verdict

EXPORT_FORMAT = "sirena-audit-export-v1"
CSV_COLUMNS = (*chain.FIELDS, "content_hash", "prev_hash", "hash")
CSV_COLUMNS_V1 = (*chain.FIELDS, "prev_hash", "hash")  # exports written before migration 0011
NOT_IN_TRAIL = "not_in_trail"
MISSING_FROM_EXPORT = "missing_from_export"
BAD_SIGNATURE = "bad_signature"
_INT_FIELDS = ("seq", "actor_operator_id", "actor_token_id")
_CHUNK = 5_000


@dataclass(frozen=True)
class Scope:
    """Which events: about these alerts (subject, or payload.alert_id) or these incidents (subject),
    and/or since ≤ at < until."""

    alert_ids: tuple[int, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    incident_ids: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alert_ids": list(self.alert_ids),
                               "since": chain.format_at(self.since) if self.since else None,
                               "until": chain.format_at(self.until) if self.until else None}
        if self.incident_ids:  # absent otherwise: the scope of exports made before incidents reads the same
            out["incident_ids"] = list(self.incident_ids)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scope:
        def when(v: str | None) -> datetime | None:
            return datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None
        return cls(tuple(int(a) for a in data.get("alert_ids") or ()), when(data.get("since")), when(data.get("until")),
                   tuple(int(i) for i in data.get("incident_ids") or ()))

    def sql(self) -> tuple[str, dict[str, Any]]:
        where: list[str] = ["e.seq <= :head"]
        params: dict[str, Any] = {}
        about: list[str] = []
        if self.alert_ids:
            ids = [str(a) for a in self.alert_ids]
            about.append("(e.subject_type = 'alert' AND e.subject_id = ANY(:aids)) "
                         "OR (e.payload ? 'alert_id' AND e.payload ->> 'alert_id' = ANY(:aids))")
            params["aids"] = ids
        if self.incident_ids:
            about.append("(e.subject_type = 'incident' AND e.subject_id = ANY(:iids))")
            params["iids"] = [str(i) for i in self.incident_ids]
        if about:
            where.append("(" + " OR ".join(about) + ")")
        if self.since:
            where.append("e.at >= :since")
            params["since"] = self.since
        if self.until:
            where.append("e.at < :until")
            params["until"] = self.until
        return " AND ".join(where), params


@dataclass(frozen=True)
class ExportSummary:
    count: int
    head: chain.Head
    first_seq: int | None
    last_seq: int | None


def _rows(session: Session, scope: Scope, head_seq: int) -> Iterator[dict[str, Any]]:
    where, params = scope.sql()
    stmt = text(f"SELECT {chain.SELECT_CANONICAL_COLUMNS_TEXT} FROM audit.events e WHERE {where} "
                "ORDER BY e.seq").execution_options(yield_per=2_000)
    for row in session.execute(stmt, {**params, "head": head_seq}):
        record = dict(zip(chain.FIELDS, row[:-3], strict=True))
        record["content_hash"] = bytes(row[-3]).hex() if row[-3] is not None else None
        record["prev_hash"], record["hash"] = bytes(row[-2]).hex(), bytes(row[-1]).hex()
        yield record


def record_export(session: Session, actor: Actor, scope: Scope, fmt: str, destination: str, *,
                  alert_id: int | None = None) -> None:
    """Audit an export before it is written (action audit.exported): who took which part of the
    trail, in which format, to where. Every interface that exports calls it (CLI, console)."""
    trail.append(session, actor=actor, action="audit.exported", subject_type="alert" if alert_id is not None else None,
                 subject_id=alert_id, payload={"scope": scope.as_dict(), "format": fmt, "output": destination})


def write_export(session: Session, scope: Scope, fmt: str, out: TextIO, *, key: bytes | None) -> ExportSummary:
    """Write the sealed events in `scope`, up to the head seen now, to `out` as "csv" or "json".

    Streams: memory does not grow with the export. `key` signs the JSON envelope (None: unsigned).
    Raises InvalidInput for an unknown format.
    """
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"unknown export format {fmt!r}", fields={"format": "expected csv or json"})
    _, head = read_head(session)
    rows = _rows(session, scope, head.seq)
    digest, count, first, last = hashlib.sha256(), 0, None, None
    if fmt == "csv":
        writer = csv_cells.writer(out)  # no cell a spreadsheet would evaluate; rows end in CRLF
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow(["" if r[c] is None else r[c] for c in CSV_COLUMNS])
            count, first, last = count + 1, first or int(r["seq"]), int(r["seq"])
        return ExportSummary(count, head, first, last)
    envelope = {"format": EXPORT_FORMAT, "scope": scope.as_dict(),
                "generated_at": chain.format_at(datetime.now(UTC)),
                "head": {"seq": head.seq, "hash": head.hash_hex}}
    out.write(json.dumps(envelope, ensure_ascii=False)[:-1] + ', "events": [\n')
    for r in rows:
        out.write(("," if count else "") + json.dumps(_json_event(r), ensure_ascii=False) + "\n")
        digest.update(f"{r['seq']}:{r['hash']}\n".encode())
        count, first, last = count + 1, first or int(r["seq"]), int(r["seq"])
    signed = {**envelope, "count": count, "events_digest": digest.hexdigest()}
    mac = _mac(key, signed) if key else None
    out.write(f'], "count": {count}, "events_digest": "{digest.hexdigest()}", "mac": {json.dumps(mac)}}}\n')
    return ExportSummary(count, head, first, last)


def _json_event(r: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for name in CSV_COLUMNS:
        value = r[name]
        if name in _INT_FIELDS and value is not None:
            value = int(value)
        if name == "payload":
            event["payload"] = json.loads(value)
            event["payload_text"] = value  # the exact text hashed (PostgreSQL's jsonb rendering)
            continue
        event[name] = value
    return event


def _mac(key: bytes, signed: dict[str, Any]) -> str:
    message = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# --- checking an export ----------------------------------------------------------------------


def verify_export(path: Path, *, engine: Engine | None, key: bytes | None,
                  previous_keys: tuple[bytes, ...] = ()) -> Verdict:
    """Check an export file: every event's hash, the links between consecutive events, and
    (JSON) its signature, count and digest; with `engine`, also that every event is in the trail
    with the same hash and (JSON) that no event of the scope is missing from the file.

    A JSON export embedded in another document is checked the same way: in an HTML page as the
    `<script type="application/json" id="EMBED_ID">` element, or in a JSON document under the key
    "audit_export" (an incident's after-action report carries its trail so: alerting/alerts/report.py).

    The signature may be by `key` or, for an export made before the secret key was rotated, by
    one of `previous_keys`. Raises InvalidInput when the file is not an export. CSV is streamed;
    JSON is read whole.
    """
    keys = (key, *previous_keys) if key is not None else ()
    with path.open(encoding="utf-8", newline="") as fh:
        start = fh.read(1024).lstrip()
        fh.seek(0)
        if start.startswith("<"):
            return _verify_json(io.StringIO(_embedded_in_html(fh.read())), engine=engine, keys=keys)
        if start.startswith("{") and not start.startswith('{"format": "sirena-audit-export'):
            whole = fh.read()
            embedded = _embedded_in_json(whole)
            return _verify_json(io.StringIO(embedded if embedded is not None else whole), engine=engine, keys=keys)
        if start.startswith("{"):
            return _verify_json(fh, engine=engine, keys=keys)
        return _verify_csv(fh, engine=engine)


EMBED_ID = "sirena-audit-export"
_EMBEDDED = re.compile(r'<script type="application/json" id="' + EMBED_ID + r'">(.*?)</script>', re.DOTALL)


def embed_in_html(export_json: str) -> str:
    """A JSON export as the body of a `<script type="application/json">` element: every `<`, `>`
    and `&` escaped the JSON way (the values read back the same), so no text in it ends the element."""
    return export_json.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _embedded_in_html(page: str) -> str:
    found = _EMBEDDED.search(page)
    if found is None:
        raise InvalidInput("not a Sirena audit export: the page holds no embedded export",
                           fields={"export": f"expected a <script id=\"{EMBED_ID}\"> element"})
    return found.group(1)


def _embedded_in_json(document: str) -> str | None:
    try:
        doc = json.loads(document)
    except ValueError:
        return None
    inner = doc.get("audit_export") if isinstance(doc, dict) else None
    return json.dumps(inner, ensure_ascii=False) if isinstance(inner, dict) else None


def _values(event: dict[str, Any], payload_text: str) -> tuple[str | None, ...]:
    out: list[str | None] = []
    for name in chain.FIELDS:
        v = payload_text if name == "payload" else event.get(name)
        out.append(None if v is None else str(v))
    return tuple(out)


class _Checker:
    """Per-event checks shared by both formats; compares with the trail in chunks."""

    def __init__(self, engine: Engine | None) -> None:
        self.verdict = Verdict()
        self.engine = engine
        self.prev: tuple[int, str] | None = None
        self.pending: list[tuple[int, str]] = []
        self.seen: set[int] = set()

    def check(self, event: dict[str, Any], payload_text: str) -> None:
        try:
            seq = int(event["seq"])
            prev_hash, stored = bytes.fromhex(event["prev_hash"]), bytes.fromhex(event["hash"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a Sirena audit export: bad event ({exc})",
                               fields={"export": f"event {self.verdict.count + 1} is malformed"}) from None
        values = _values(event, payload_text)
        stored_content = event.get("content_hash") or None
        content, digest = chain.recompute(values, prev_hash, version=2 if stored_content else 1)
        if digest != stored or (content is not None and content.hex() != stored_content):
            self.verdict.add(Problem(CHANGED_CONTENT, seq, (
                f"event {seq} was changed in the export: its content no longer matches its hash")))
        if self.prev is not None:
            prev_seq, prev_hex = self.prev
            if seq <= prev_seq:
                self.verdict.add(Problem(REORDERED, seq, f"event {seq} comes after event {prev_seq} in the export"))
            elif seq == prev_seq + 1 and prev_hash.hex() != prev_hex:
                self.verdict.add(Problem(BROKEN_LINK, seq, f"event {seq} does not link to event {prev_seq}"))
        self.prev = (seq, stored.hex())
        self.verdict.count += 1
        self.verdict.head = chain.Head(seq, stored)
        self.seen.add(seq)
        if self.engine is not None:
            self.pending.append((seq, stored.hex()))
            if len(self.pending) >= _CHUNK:
                self.flush()

    def flush(self) -> None:
        if not self.pending or self.engine is None:
            return
        stmt = text("SELECT seq, hash FROM audit.events WHERE seq IN :seqs").bindparams(
            bindparam("seqs", expanding=True))
        with self.engine.connect() as conn:
            in_trail = {s: bytes(h).hex() for s, h in conn.execute(stmt, {"seqs": [s for s, _ in self.pending]})}
        for seq, hex_hash in self.pending:
            if in_trail.get(seq) != hex_hash:
                what = "is not in the trail" if seq not in in_trail else "differs from the trail's event"
                self.verdict.add(Problem(NOT_IN_TRAIL, seq, f"event {seq} of the export {what}"))
        self.pending.clear()

    def done(self) -> Verdict:
        self.flush()
        self.verdict.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
        return self.verdict


def _verify_csv(fh: TextIO, *, engine: Engine | None) -> Verdict:
    reader = csv_cells.reader(fh)  # cells as they were before the formula quote
    header = next(reader, None)
    if header is None or tuple(header) not in (CSV_COLUMNS, CSV_COLUMNS_V1):
        raise InvalidInput("not a Sirena audit export: unexpected CSV header",
                           fields={"export": f"expected columns {', '.join(CSV_COLUMNS)}"})
    columns = tuple(header)
    checker = _Checker(engine)
    for cells in reader:
        event: dict[str, Any] = {}
        for name, cell in zip(columns, cells, strict=False):
            event[name] = None if cell == "" and name in chain.NULLABLE else cell
        checker.check(event, event.get("payload") or "")
    return checker.done()


def _verify_json(fh: TextIO, *, engine: Engine | None, keys: tuple[bytes, ...]) -> Verdict:
    try:
        doc = json.load(fh)
        events = doc["events"]
        head_seq = int(doc["head"]["seq"])
        scope = Scope.from_dict(doc.get("scope") or {})
        if doc.get("format") != EXPORT_FORMAT or not isinstance(events, list):
            raise ValueError("unknown format")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"not a Sirena audit export ({exc})", fields={"export": "expected a JSON export"}) from None
    checker = _Checker(engine)
    digest = hashlib.sha256()
    for event in events:
        text_form = event.get("payload_text")
        if not isinstance(text_form, str) or json.loads(text_form) != event.get("payload"):
            seq = event.get("seq")
            checker.verdict.add(Problem(CHANGED_CONTENT, seq if isinstance(seq, int) else None,
                                        f"event {seq}: its shown payload differs from the hashed payload_text"))
            text_form = text_form if isinstance(text_form, str) else ""
        checker.check(event, text_form)
        digest.update(f"{event.get('seq')}:{event.get('hash')}\n".encode())
    signed = {k: doc.get(k) for k in ("format", "scope", "generated_at", "head")}
    signed.update(count=len(events), events_digest=digest.hexdigest())
    if doc.get("count") != len(events) or doc.get("events_digest") != digest.hexdigest():
        checker.verdict.add(Problem(BAD_SIGNATURE, None, "the export's count or digest does not match its events "
                                    "(events removed, added or replaced)"))
    if keys and (not isinstance(doc.get("mac"), str) or
                 not any(hmac.compare_digest(doc["mac"], _mac(k, signed)) for k in keys)):
        checker.verdict.add(Problem(BAD_SIGNATURE, None, "the export's signature does not match (edited or forged)"))
    if engine is not None:
        _check_complete(checker, engine, scope, head_seq)
    return checker.done()


def _check_complete(checker: _Checker, engine: Engine, scope: Scope, head_seq: int) -> None:
    where, params = scope.sql()
    stmt = text(f"SELECT e.seq FROM audit.events e WHERE {where} ORDER BY e.seq").execution_options(
        yield_per=10_000)
    with engine.connect() as conn:
        for (seq,) in conn.execute(stmt, {**params, "head": head_seq}):
            if seq not in checker.seen:
                checker.verdict.add(Problem(MISSING_FROM_EXPORT, seq, (
                    f"event {seq} belongs to the export's scope but is not in the file")))
