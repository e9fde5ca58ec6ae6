"""A capped sender's daily parts, shared by every gateway process through PostgreSQL.

A long number may send `daily_cap` parts (submit_sm PDUs) per UTC day. Before a slice goes to the
pool, the gateway reserves what the slice needs (`reserve`: one row-locked statement, committed
at once, so other processes see it); the pool spends the allowance part by part; what was not
spent is given back (`give_back`). A process killed between the two keeps its reservation for
the day: the cap is never exceeded, at worst under-used. A part counts when it is handed to a
bind, so a message a carrier then refuses still counts, as it does for the carrier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from alerting.base.db import transaction

log = logging.getLogger(__name__)

_RESERVE = text("""
INSERT INTO sender_usage AS u (sender, day, parts, last_grant)
VALUES (:sender, (now() AT TIME ZONE 'UTC')::date, least(:want, :cap), least(:want, :cap))
ON CONFLICT (sender, day) DO UPDATE
   SET parts = u.parts + least(:want, greatest(:cap - u.parts, 0)),
       last_grant = least(:want, greatest(:cap - u.parts, 0)), updated_at = now()
RETURNING day, last_grant
""")


@dataclass
class Reservation:
    """Parts reserved for `sender` on `day`; `left` is what the pool has not spent yet."""

    sender: str
    day: date | None
    granted: int
    left: int
    error: str | None = None  # why nothing could be reserved (the database was unreachable)


def reserve(sender: str, want: int, cap: int) -> Reservation:
    """Reserve up to `want` of today's parts for `sender` (fewer, or none, once `cap` is reached)."""
    try:
        with transaction() as session:  # one statement: the row's lock serializes every gateway
            day, granted = session.execute(_RESERVE, {"sender": sender, "want": want, "cap": cap}).one()
    except (OperationalError, InterfaceError) as exc:
        why = f"the daily allowance of {sender} could not be reserved: {str(exc).splitlines()[0]}"
        log.warning("%s", why)
        return Reservation(sender, None, 0, 0, why)
    return Reservation(sender, day, int(granted), int(granted))


def give_back(reservation: Reservation) -> None:
    """Return the parts the pool did not spend (best effort: kept if the database is unreachable)."""
    if reservation.day is None or reservation.left <= 0:
        return
    try:
        with transaction() as session:
            session.execute(text("UPDATE sender_usage SET parts = greatest(parts - :n, 0), updated_at = now() "
                                 "WHERE sender = :sender AND day = :day"),
                            {"n": reservation.left, "sender": reservation.sender, "day": reservation.day})
    except (OperationalError, InterfaceError) as exc:
        log.warning("%s: %d unspent parts kept for today (database unreachable: %s)", reservation.sender,
                    reservation.left, str(exc).splitlines()[0])
    reservation.left = 0


def used_today(session: Session, sender: str) -> int:
    """Parts counted (or reserved by a slice in flight) for `sender` today, UTC, by every gateway."""
    return int(session.execute(text("SELECT parts FROM sender_usage WHERE sender = :sender "
                                    "AND day = (now() AT TIME ZONE 'UTC')::date"), {"sender": sender}).scalar() or 0)
