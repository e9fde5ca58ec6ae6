"""Inbound texts that are a self-registration's business, taken before the replies are read.

`broadcast.replies.process_batch` hands every mobile-originated row here first; the rows taken
are stored as registrations (alerting/directory/registration.py decides what each becomes) and
never as replies; every other row is read as a reply, exactly as before:

- `[KEYWORD] ALTA|JOIN [CENTRO]` (`Vocabulary.read_registration`) sent to a short code, or to a
  shared code with its keyword first. From a number that is not a contact: a registration
  request. From a contact: only while registration is on and when it is not a plain opt-in, i.e.
  a JOIN-type word, or a START word (ALTA) followed by a published keyword; `ALTA` alone (or
  with anything else) stays the contact's opt-in, as it always was.
- SI/YES (any ACK word), NO, or STOP/BAJA from a number with a pending request that is not a
  contact: its confirmation, refusal or withdrawal (an expired one is marked so).

Rows are handled in the order they arrived, so `ALTA` then `SI` in one batch confirm. The answers
go out as follow-ups (broadcast/followups.py: claimed, recorded, retried like every follow-up),
only ever to the number that texted, from the code it texted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base.models import ReplyMeaning
from alerting.base.phones import source_msisdn
from alerting.base.sms_text.vocabulary import RegistrationText, Vocabulary
from alerting.directory import registration
from alerting.directory.registration import Answer, Request
from alerting.directory.registration_keywords import load_policy
from broadcast.followups import FollowupDraft, create_followups

# What a pending number's answer does, by the meaning the vocabulary reads in it.
ANSWERS = {ReplyMeaning.ACK: "yes", ReplyMeaning.NO: "no", ReplyMeaning.STOP: "stop"}


@dataclass(frozen=True)
class _Sender:
    name: str
    kind: str  # short | shared
    keyword: str | None


def _two_way_senders(session: Session) -> dict[str, list[_Sender]]:
    """address → the active short codes and shared codes there (a long number is not a registration channel)."""
    out: dict[str, list[_Sender]] = {}
    for name, kind, address, keyword in session.execute(text(
            "SELECT name, kind, address, keyword FROM senders WHERE active AND kind IN ('short', 'shared') "
            "ORDER BY name")).all():
        out.setdefault(address.lstrip("+"), []).append(_Sender(name, kind, keyword))
    return out


def _sender_for(senders: list[_Sender], keyword: str | None) -> str | None:
    if keyword is not None:
        return next((s.name for s in senders if s.kind == "shared" and s.keyword == keyword), None)
    return next((s.name for s in senders if s.kind == "short"), None)


def take_registrations(session: Session, rows: Sequence[Any], vocabulary: Vocabulary) -> dict[int, str]:
    """Handle the registration requests and pending answers among inbound MO `rows`; return
    {inbound id: outcome} for the rows taken (the caller reads the others as replies)."""
    senders = _two_way_senders(session)
    asked: dict[int, tuple[str, RegistrationText, str]] = {}  # inbound id → (number, request, sender)
    others: dict[int, tuple[Any, list[str]]] = {}  # inbound id → (row, shared keywords there)
    for row in rows:
        there = senders.get(row.destination_addr.lstrip("+"))
        if not there:
            continue
        keywords = [s.keyword for s in there if s.kind == "shared" and s.keyword]
        request = vocabulary.read_registration(row.text or "", keywords=keywords)
        sender = _sender_for(there, request.keyword) if request is not None else None
        if request is not None and sender is not None:
            asked[row.id] = (source_msisdn(row.source_addr), request, sender)
        else:
            others[row.id] = (row, keywords)
    candidates: dict[int, tuple[str, list[str]]] = {}
    if others and (asked or registration.any_pending(session)):  # else every other row is a plain reply
        numbers = {i: source_msisdn(row.source_addr) for i, (row, _) in others.items()}
        requesters = {m for m, _, _ in asked.values()}
        pending = registration.pending_numbers(session, sorted(set(numbers.values()) - requesters))
        candidates = {i: (numbers[i], keywords) for i, (_, keywords) in others.items()
                      if numbers[i] in pending or numbers[i] in requesters}
    if not asked and not candidates:
        return {}
    contacts = _contacts(session, sorted({m for m, _, _ in asked.values()} | {m for m, _ in candidates.values()}))
    policy = load_policy(session)
    taken: dict[int, str] = {}
    answers: list[Answer] = []
    for row in sorted((r for r in rows if r.id in asked or r.id in candidates), key=lambda r: r.id):
        if row.id in asked:
            msisdn, request, sender = asked[row.id]
            if msisdn in contacts and not _contact_registers(session, policy.enabled, request, vocabulary):
                continue
            done, answer = registration.request_registration(session, Request(
                msisdn, request.word, request.language, request.target, sender, request.keyword, row.id), policy)
        else:
            msisdn, keywords = candidates[row.id]
            reading = vocabulary.read(row.text or "", keywords=keywords)
            if msisdn in contacts or reading.meaning not in ANSWERS or (keywords and reading.keyword is None):
                continue  # a contact's SI is an ACK to its alert; HELP and free text are replies
            handled = registration.answer_pending(session, msisdn, ANSWERS[reading.meaning], inbound_id=row.id)
            if handled is None:
                continue
            done, answer = handled
        taken[row.id] = f"registration_{done.state.value}"
        if answer is not None:
            answers.append(answer)
    create_followups(session, [FollowupDraft(a.msisdn, a.kind, a.sender_name, a.text, contact_id=a.contact_id)
                               for a in answers], created_by="registration", queue="high")
    return taken


def _contacts(session: Session, msisdns: list[str]) -> set[str]:
    if not msisdns:
        return set()
    return set(session.execute(text("SELECT msisdn FROM contacts WHERE msisdn = ANY(:n)"), {"n": msisdns}).scalars())


def _contact_registers(session: Session, enabled: bool, request: RegistrationText, vocabulary: Vocabulary) -> bool:
    """Whether a contact's registration text is a registration (else it is left to the replies: an opt-in)."""
    if not enabled:
        return False
    if vocabulary.exact_meaning(request.word) is not ReplyMeaning.START:
        return True  # JOIN, REGISTRO…: no other meaning, answered as a registration
    return request.target is not None and registration.keyword_target(session, request.target) is not None
