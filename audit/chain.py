"""The hash chain's canonical serializations, computed in Python byte for byte as in SQL.

The database hashes each event (`audit.append_event`, `audit.seal_events`); the verifier and the
export checker recompute the same bytes here from the stored columns, so neither trusts a
function that a privileged user could redefine.

Version 2 (migration 0011_audit_seal, every event appended since): the content is hashed at
insert, the chain position when the event is sealed:

    content_hash = SHA-256("sirena-audit-v2\\n" + "\\t".join(copy_field(v) for v in CONTENT_FIELDS))
    copy_field(None) = "\\N"   copy_field(text) = text with backslash, BS, FF, LF, CR, TAB, VT
                                as \\\\ \\b \\f \\n \\r \\t \\v (UTF-8; the time as below)
    hash = SHA-256(prev_hash || content_hash || seq as 8 bytes big-endian)

(copy_field is PostgreSQL's COPY text format, so the verifier can hash what COPY sends.)

Version 1 (migration 0002_audit, events written before 0011; content_hash is NULL):

    "sirena-audit-v1\\n" + "\\n".join(field(v) for v in FIELDS)
    field(None) = "~"        field(text) = f"{len(text)}:{text}"   (length in characters)
    hash = SHA-256(prev_hash || UTF-8(canonical)),  prev_hash of event 1 = 32 zero bytes

Times are `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, never timestamptz::text (which follows the
session's TimeZone). The payload is PostgreSQL's jsonb::text rendering, carried verbatim in exports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

VERSION_TAG = "sirena-audit-v1"
GENESIS = bytes(32)

# Column order of the canonical form (and of every SELECT that feeds `event_hash`).
FIELDS = (
    "seq",
    "at",
    "actor_kind",
    "actor_name",
    "actor_operator_id",
    "actor_token_id",
    "action",
    "subject_type",
    "subject_id",
    "payload",
    "origin_address",
    "origin_user_agent",
    "origin_interface",
    "outcome",
    "reason",
)

# Version 2 hashes the content without the position: the seq is known only when sealed.
CONTENT_FIELDS = FIELDS[1:]
VERSION_TAG_V2 = b"sirena-audit-v2\n"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                               "\t": "\\t", "\v": "\\v"})

# Fields that may be NULL. append_event stores NULL, never '', in them, so an empty CSV cell
# in one of these columns means NULL without ambiguity.
NULLABLE = frozenset({
    "actor_operator_id", "actor_token_id", "subject_type", "subject_id", "origin_address",
    "origin_user_agent", "origin_interface", "reason",
})

# The SELECT list giving FIELDS as text exactly as hashed, then content_hash (NULL: version 1),
# prev_hash and hash.
SELECT_CANONICAL_COLUMNS = """seq::text AS seq,
  to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at,
  actor_kind, actor_name, actor_operator_id::text AS actor_operator_id,
  actor_token_id::text AS actor_token_id, action, subject_type, subject_id, payload::text AS payload,
  origin_address, origin_user_agent, origin_interface, outcome, reason, content_hash, prev_hash, hash"""
# The same for sqlalchemy.text(), which would read ":MI" inside the format as a bind parameter.
SELECT_CANONICAL_COLUMNS_TEXT = SELECT_CANONICAL_COLUMNS.replace(":MI:SS", r"\:MI\:SS")


def format_at(at: datetime) -> str:
    """A timestamp in the canonical form; naive datetimes are refused (they have no instant)."""
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no instant; give a timezone-aware one")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(values: Sequence[str | None]) -> bytes:
    """The canonical bytes of one event from its FIELDS values, each already text or None."""
    if len(values) != len(FIELDS):
        raise ValueError(f"expected {len(FIELDS)} fields, got {len(values)}")
    parts = [VERSION_TAG]
    for v in values:
        parts.append("~" if v is None else f"{len(v)}:{v}")
    return "\n".join(parts).encode("utf-8")


def event_hash(prev_hash: bytes, values: Sequence[str | None]) -> bytes:
    """Version 1: SHA-256 over the previous hash and this event's canonical bytes."""
    return hashlib.sha256(bytes(prev_hash) + canonical(values)).digest()


def copy_field(value: str | None) -> str:
    """One field of the version 2 form: PostgreSQL's COPY text rendering of a text value."""
    return "\\N" if value is None else value.translate(_COPY_ESCAPES)


def content_bytes(content: Sequence[str | None]) -> bytes:
    """The version 2 canonical bytes of an event's CONTENT_FIELDS values (text or None)."""
    if len(content) != len(CONTENT_FIELDS):
        raise ValueError(f"expected {len(CONTENT_FIELDS)} fields, got {len(content)}")
    return VERSION_TAG_V2 + "\t".join(copy_field(v) for v in content).encode("utf-8")


def content_hash(content: Sequence[str | None]) -> bytes:
    """Version 2: SHA-256 of the content alone, as `audit.append_event` stores it at insert."""
    return hashlib.sha256(content_bytes(content)).digest()


def link_hash(prev_hash: bytes, content: bytes, seq: int) -> bytes:
    """Version 2: the event's hash in the chain, from its predecessor's, its content hash and seq."""
    return hashlib.sha256(bytes(prev_hash) + bytes(content) + seq.to_bytes(8, "big")).digest()


def recompute(values: Sequence[str | None], prev_hash: bytes, *, version: int) -> tuple[bytes | None, bytes]:
    """(content hash, hash) of a sealed event from its FIELDS values and its stored prev_hash;
    the content hash is None for version 1, which has none."""
    if version == 1:
        return None, event_hash(prev_hash, values)
    inner = content_hash(values[1:])
    return inner, link_hash(prev_hash, inner, int(values[0] or 0))


@dataclass(frozen=True)
class Head:
    """Where the chain ends: how many events and the last one's hash (GENESIS when empty)."""

    seq: int
    hash: bytes

    @property
    def hash_hex(self) -> str:
        return self.hash.hex()
