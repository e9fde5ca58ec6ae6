"""The hash chain's canonical serialization, computed in Python byte for byte as in SQL.

`audit.append_event` (migration 0002_audit) hashes each event in the database; the verifier and
the export checker recompute the same bytes here from the stored columns, so neither trusts a
function that a privileged user could redefine. Version 1 of the form:

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

# Fields that may be NULL. append_event stores NULL, never '', in them, so an empty CSV cell
# in one of these columns means NULL without ambiguity.
NULLABLE = frozenset({
    "actor_operator_id", "actor_token_id", "subject_type", "subject_id", "origin_address",
    "origin_user_agent", "origin_interface", "reason",
})

# The SELECT list giving FIELDS as text exactly as hashed, then prev_hash and hash.
SELECT_CANONICAL_COLUMNS = """seq::text AS seq,
  to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at,
  actor_kind, actor_name, actor_operator_id::text AS actor_operator_id,
  actor_token_id::text AS actor_token_id, action, subject_type, subject_id, payload::text AS payload,
  origin_address, origin_user_agent, origin_interface, outcome, reason, prev_hash, hash"""
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
    """SHA-256 over the previous hash and this event's canonical bytes."""
    return hashlib.sha256(bytes(prev_hash) + canonical(values)).digest()


@dataclass(frozen=True)
class Head:
    """Where the chain ends: how many events and the last one's hash (GENESIS when empty)."""

    seq: int
    hash: bytes

    @property
    def hash_hex(self) -> str:
        return self.hash.hex()
