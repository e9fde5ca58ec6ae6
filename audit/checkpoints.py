"""Checkpoints: the chain's head (count and hash) written outside the database, signed.

A superuser can delete the last events and nothing inside the database would show it: the chain
that is left is still valid. A checkpoint kept outside (a file under Settings.audit_checkpoint_dir,
and a log line on the `sirena.audit.checkpoint` logger, which can be routed to syslog) records
"the trail had N events ending in hash H"; `verify` then demands that the chain still holds event N
with hash H. Each line is signed with an HMAC key derived from the secret key, so a checkpoint
cannot be forged or edited without it. After a rotation of the secret key, lines signed with the
old one still verify while its file is listed in SIRENA_SECRET_KEY_PREVIOUS_FILES.

One file per database (`<database>.checkpoints.jsonl`), one JSON object per line, appended.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from alerting.base.settings import Settings
from audit.chain import GENESIS, Head
from audit.seal import seal_committed

log = logging.getLogger("sirena.audit.checkpoint")

_KEY_LABEL = b"sirena/audit-checkpoint/v1"
_HEAD_SQL = text("SELECT current_database(), h.seq, h.hash FROM (SELECT 1) one LEFT JOIN LATERAL ("
                 "SELECT seq, hash FROM audit.events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1) h ON true")


@dataclass(frozen=True)
class Checkpoint:
    database: str
    seq: int
    hash_hex: str
    written_at: str

    def body(self) -> dict[str, object]:
        return {"v": 1, "database": self.database, "seq": self.seq, "hash": self.hash_hex,
                "written_at": self.written_at}


@dataclass(frozen=True)
class BadLine:
    """A checkpoint line that is malformed or whose signature does not match."""

    line_no: int
    reason: str


def signing_key(settings: Settings) -> bytes:
    """The checkpoint HMAC key: derived from the secret key (it signs new lines and exports)."""
    return _derive(settings.secret_key().reveal())


def previous_signing_keys(settings: Settings) -> tuple[bytes, ...]:
    """The keys derived from SIRENA_SECRET_KEY_PREVIOUS_FILES: they verify lines and exports signed
    before the secret key was rotated, and never sign anything."""
    return tuple(_derive(p.reveal()) for p in settings.secret_key().previous)


def _derive(secret: str) -> bytes:
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def checkpoint_file(settings: Settings, database: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in database)
    return settings.audit_checkpoint_dir / f"{safe}.checkpoints.jsonl"


def read_head(conn: Connection | Session) -> tuple[str, Head]:
    """(database name, head of the sealed chain) as `conn` sees it; an empty chain's head is
    (0, GENESIS). Events not sealed yet are not in it."""
    database, seq, head_hash = conn.execute(_HEAD_SQL).one()
    return database, Head(int(seq or 0), bytes(head_hash) if head_hash is not None else GENESIS)


def write_checkpoint(engine: Engine, settings: Settings) -> Checkpoint:
    """Seal every committed event, then record the chain's head outside the database now; returns
    the checkpoint. Raises OSError if the file cannot be written and ConfigError if the secret
    key is missing."""
    key = signing_key(settings)  # fail before anything else if there is no key
    seal_committed(engine)
    with engine.connect() as conn:
        database, head = read_head(conn)
    cp = _checkpoint(database, head)
    _append_line(settings, key, cp)
    return cp


def checkpoint_after_commit(session: Session, settings: Settings) -> None:
    """After `session` commits (nothing if it rolls back): seal, and write a checkpoint of the head,
    so it names the events this session committed unless another sealer was busy at that moment
    (the next checkpoint covers them then). Never raises into the committed action: a failure is
    logged. Raises ConfigError now if the secret key is missing."""
    key = signing_key(settings)
    if session.info.get("audit_checkpoint_after_commit"):
        return
    session.info["audit_checkpoint_after_commit"] = True

    def _write(s: Session) -> None:
        s.info.pop("audit_checkpoint_after_commit", None)
        bind = s.get_bind()
        engine: Engine = bind.engine if isinstance(bind, Connection) else bind
        try:
            seal_committed(engine, wait=False)
            with engine.connect() as conn:
                database, head = read_head(conn)
            _append_line(settings, key, _checkpoint(database, head))
        except Exception:
            # The action has committed; losing one checkpoint weakens tail detection until the
            # next one, it must not turn a completed alert into an error.
            log.exception("could not write an audit checkpoint after commit")

    event.listen(session, "after_commit", _write, once=True)
    event.listen(session, "after_rollback", lambda s: s.info.pop("audit_checkpoint_after_commit", None), once=True)


def _checkpoint(database: str, head: Head) -> Checkpoint:
    return Checkpoint(database, head.seq, head.hash_hex, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _mac(key: bytes, body: dict[str, object]) -> str:
    message = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _append_line(settings: Settings, key: bytes, cp: Checkpoint) -> None:
    path = checkpoint_file(settings, cp.database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = cp.body()
    line = json.dumps({**body, "mac": _mac(key, body)}, ensure_ascii=False) + "\n"
    # O_APPEND: concurrent writers (workers finishing alerts together) never interleave a line.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("audit checkpoint %s", line.strip())


def checkpoint_if_due(engine: Engine, settings: Settings, *, every_s: float = 300.0) -> Checkpoint | None:
    """The periodic checkpoint: write one if the head moved since the last and that one is at least
    `every_s` old (or there is none). Seals first. Cheap enough to call on every scheduler tick;
    returns the new checkpoint, or None when none was due."""
    seal_committed(engine)
    with engine.connect() as conn:
        database, head = read_head(conn)
    last = _last_line(checkpoint_file(settings, database))
    if last is not None:
        try:
            seq = int(str(last["seq"]))
            written = datetime.fromisoformat(str(last["written_at"]).replace("Z", "+00:00"))
        except (KeyError, TypeError, ValueError):
            seq, written = -1, datetime.min.replace(tzinfo=UTC)
        if seq == head.seq or (datetime.now(UTC) - written).total_seconds() < every_s:
            return None
    cp = _checkpoint(database, head)
    _append_line(settings, signing_key(settings), cp)
    return cp


def _last_line(path: Path) -> dict[str, object] | None:
    """The last checkpoint line of `path`, read from the end (the file grows for years)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [ln for ln in fh.read().splitlines() if ln.strip()]
    except FileNotFoundError:
        return None
    try:
        return json.loads(lines[-1]) if lines else None
    except ValueError:
        return None


def read_checkpoints(settings: Settings, database: str) -> tuple[list[Checkpoint], list[BadLine]]:
    """Every checkpoint recorded for `database`, and the lines that fail their signature.

    A line signed with the current key or one of the previous keys (SIRENA_SECRET_KEY_PREVIOUS_FILES,
    lines written before a rotation) is good. No file means no checkpoints (and no key is needed).
    Raises ConfigError if there is a file but no secret key to check it with.
    """
    path = checkpoint_file(settings, database)
    if not path.exists():
        return [], []
    keys = (signing_key(settings), *previous_signing_keys(settings))
    good: list[Checkpoint] = []
    bad: list[BadLine] = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                cp = Checkpoint(str(data["database"]), int(data["seq"]), str(data["hash"]), str(data["written_at"]))
                mac = str(data["mac"])
            except (ValueError, KeyError, TypeError) as exc:
                bad.append(BadLine(line_no, f"malformed checkpoint line ({exc})"))
                continue
            if not any(hmac.compare_digest(mac, _mac(key, cp.body())) for key in keys):
                bad.append(BadLine(line_no, "checkpoint signature does not match (edited or forged)"))
            elif cp.database != database:
                bad.append(BadLine(line_no, f"checkpoint is for database {cp.database}, not {database}"))
            else:
                good.append(cp)
    return good, bad
