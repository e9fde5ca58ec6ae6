"""The senders an operator picks from (mirrored from the carriers file by `sirena setup` and every
gateway worker): which one is the default, what a shared code's keyword is, how to name them.

A shared short code routes a reply to us only when it starts with the keyword, so wherever a
sender is picked or refused the keyword is said: the console's compose form, the API's and the
CLI's errors (`describe_senders`), the text the phones get (alerting/base/sms_text/rendering.py).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.base.models import Sender, SenderKind


def sender_keyword(session: Session, name: str) -> str | None:
    """The keyword replies to sender `name` start with: a shared short code's, else None."""
    return session.scalar(select(Sender.keyword).where(Sender.name == name, Sender.kind == SenderKind.SHARED))


def default_sender(session: Session) -> Sender | None:
    """The sender the console offers first: the carriers file's `default_sender` (a dedicated,
    two-way code), else the first active short code, then long number, by name; None if none."""
    active = list(session.scalars(select(Sender).where(Sender.active).order_by(Sender.name)))
    marked = [s for s in active if s.is_default]
    if marked:
        return marked[0]
    for kind in (SenderKind.SHORT, SenderKind.LONG):
        found = [s for s in active if s.kind is kind]
        if found:
            return found[0]
    return None


def default_sender_name(session: Session) -> str | None:
    """default_sender()'s name: what a message that belongs to no alert goes from (a HELP notice)."""
    sender = default_sender(session)
    return sender.name if sender is not None else None


def describe_sender(sender: Sender) -> str:
    """One sender as an operator needs to know it: `BOMBEROS (shared code 5555: replies must start
    with BOMBEROS)`, `SIRENA-SC (short code 4242)`."""
    if sender.kind is SenderKind.SHARED:
        return f"{sender.name} (shared code {sender.address}: replies must start with {sender.keyword})"
    what = {SenderKind.SHORT: "short code", SenderKind.LONG: "long number",
            SenderKind.ALPHANUMERIC: "name, no replies"}[sender.kind]
    return f"{sender.name} ({what} {sender.address})"


def describe_senders(session: Session) -> str:
    """Every active sender, default first, for an error that refuses a sender name."""
    default = default_sender(session)
    active = sorted(session.scalars(select(Sender).where(Sender.active)),
                    key=lambda s: (default is None or s.id != default.id, s.name))
    return "; ".join(describe_sender(s) + (" [default]" if default is not None and s.id == default.id else "")
                     for s in active) or "none (run sirena setup)"
