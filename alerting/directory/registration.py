"""Self-registration by SMS with double opt-in: every decision, made once.

A number texts `ALTA`/`JOIN`, optionally with a keyword an admin published (`ALTA CENTRO`), to a
short code or a shared code's keyword (broadcast/self_registration.py reads the words). Each
request is stored in `registrations`, whatever becomes of it, and audited:

- registration off: REFUSED, never answered;
- more than the policy's `per_hour` requests from the number in the last hour: LIMITED, never
  answered (a handset in a loop, or someone making us text a stranger, gets one or two SMS, not a flood);
- a keyword nobody published: REFUSED, answered with the published ones;
- a number that is a contact already: EXISTING, subscribed to what the keyword names, opted
  back in if it had opted out, answered politely;
- otherwise PENDING until `confirm_within_s` (an earlier pending request of the number is
  REPLACED), answered with the confirmation question.

A pending number's SI/YES in time makes it a contact (ACTIVE, verified: it answered from that
phone), subscribed to the keyword's zone (`zone_subscriptions`, reached by targeting: geo/reach.py)
or static group; NO or STOP withdraws it (WITHDRAWN); after the time it is EXPIRED, by the
scheduler's pass (`expire_due`) or when it answers late. A pending number is not a contact: no
alert, group or criterion reaches it.

Answers are returned, not sent: the caller sends them as follow-ups, and only ever to the number
that texted. One request at a time per number (an advisory lock): two jobs reading two texts of
the same number never make two pending requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from alerting.base.db import utcnow
from alerting.base.models import Contact, Group, Registration, RegistrationKeyword, RegistrationState, Zone
from alerting.base.phones import mask_msisdn
from alerting.directory import contacts as directory
from alerting.directory import registration_texts as texts
from alerting.directory.registration_keywords import Policy, published_keywords
from audit import trail
from audit.actor import Actor

SYSTEM = Actor.system("registration")
S = RegistrationState
REQUEST, ANSWER = "registration_request", "registration_answer"  # the follow-up kinds of the answers


@dataclass(frozen=True)
class Request:
    """What a number texted: `[shared_keyword] word [target]`."""

    msisdn: str  # E.164
    word: str  # folded: alta, join…
    language: str
    target: str | None  # folded keyword after the word
    sender_name: str  # the short code, or the shared code's sender, it reached
    shared_keyword: str | None = None
    inbound_id: int | None = None


@dataclass(frozen=True)
class Answer:
    """An SMS to send back to the number that texted."""

    registration_id: int
    msisdn: str
    sender_name: str
    text: str
    kind: str  # REQUEST or ANSWER
    contact_id: int | None = None


def _lock_number(session: Session, msisdn: str) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('sirena.registration:' || :n))"), {"n": msisdn})


def _audit(session: Session, row: Registration, action: str, *, outcome: str = "done", **payload: object) -> None:
    trail.append(session, actor=SYSTEM, action=action, subject_type="registration", subject_id=row.id,
                 outcome=outcome, reason=row.reason if outcome == "refused" else None,
                 payload={"number": mask_msisdn(row.msisdn), "word": row.word, "keyword": row.keyword,
                          "sender": row.sender_name, "inbound_id": row.inbound_id, **payload})


def recent_requests(session: Session, msisdn: str, now: datetime) -> int:
    """Registration requests stored for `msisdn` in the hour before `now`."""
    return int(session.scalar(select(func.count()).select_from(Registration).where(
        Registration.msisdn == msisdn, Registration.requested_at > now - timedelta(hours=1))) or 0)


def keyword_target(session: Session, target: str) -> tuple[str | None, int | None] | None:
    """(zone name, group id) a published keyword names, or None when it is not published or its
    zone was retired since."""
    found = session.execute(select(RegistrationKeyword.zone_name, RegistrationKeyword.group_id)
                            .where(RegistrationKeyword.keyword == target)).first()
    if found is None:
        return None
    zone_name, group_id = found
    if zone_name is not None and session.scalar(select(Zone.id).where(Zone.name == zone_name, Zone.is_current)) is None:
        return None
    return zone_name, group_id


def request_registration(session: Session, request: Request, policy: Policy, *,
                         now: datetime | None = None) -> tuple[Registration, Answer | None]:
    """Store and decide one request (see the module's rules); return it and the answer to send, if any."""
    now = now or utcnow()
    _lock_number(session, request.msisdn)
    row = Registration(msisdn=request.msisdn, word=request.word, language=request.language, keyword=request.target,
                       sender_name=request.sender_name, shared_keyword=request.shared_keyword,
                       inbound_id=request.inbound_id, requested_at=now, state=S.REFUSED)
    if not policy.enabled:
        return _refuse(session, row, "registration is off", answer=None)
    if recent_requests(session, request.msisdn, now) >= policy.per_hour:
        row.state, row.reason = S.LIMITED, f"more than {policy.per_hour} requests in an hour"
        session.add(row)
        session.flush()
        _audit(session, row, "registration.rate_limited", outcome="refused")
        return row, None
    if request.target is not None:
        target = keyword_target(session, request.target)
        if target is None:
            published = published_keywords(session)
            return _refuse(session, row, f'keyword "{request.target.upper()}" is not published', answer=(
                texts.unknown_keyword(row.language, row.word, request.target, published, row.shared_keyword)))
        row.zone_name, row.group_id = target
    contact = session.execute(select(Contact.id, Contact.opted_out_at).where(Contact.msisdn == request.msisdn)).first()
    if contact is not None:
        return _already(session, row, contact.id, opted_out=contact.opted_out_at is not None, now=now)
    replaced = list(session.scalars(
        update(Registration).where(Registration.msisdn == request.msisdn, Registration.state == S.PENDING)
        .values(state=S.REPLACED, decided_at=now, reason="a newer request took its place")
        .returning(Registration.id)))
    session.flush()
    row.state, row.expires_at = S.PENDING, now + timedelta(seconds=policy.confirm_within_s)
    session.add(row)
    session.flush()
    _audit(session, row, "registration.requested", zone=row.zone_name, group_id=row.group_id,
           language=row.language, expires_at=row.expires_at, replaced=replaced)
    return row, Answer(row.id, row.msisdn, row.sender_name, texts.confirmation_request(
        row.language, row.keyword, policy.confirm_within_s, row.shared_keyword), REQUEST)


def _refuse(session: Session, row: Registration, reason: str, *,
            answer: str | None) -> tuple[Registration, Answer | None]:
    row.state, row.reason, row.decided_at = S.REFUSED, reason, row.requested_at
    session.add(row)
    session.flush()
    _audit(session, row, "registration.refused", outcome="refused", answered=answer is not None)
    return row, None if answer is None else Answer(row.id, row.msisdn, row.sender_name, answer, ANSWER)


def _already(session: Session, row: Registration, contact_id: int, *, opted_out: bool,
             now: datetime) -> tuple[Registration, Answer]:
    row.state, row.contact_id, row.decided_at = S.EXISTING, contact_id, now
    row.reason = "already a contact"
    session.add(row)
    session.flush()
    subscribed = subscribe(session, row, contact_id)
    if opted_out:  # they asked to be registered: that is asking to be sent to again
        directory.opt_in(session, row.msisdn, SYSTEM)
    _audit(session, row, "registration.already_registered", contact_id=contact_id, subscribed=subscribed,
           opted_back_in=opted_out)
    return row, Answer(row.id, row.msisdn, row.sender_name,
                       texts.already_registered(row.language, row.keyword, row.shared_keyword), ANSWER, contact_id)


def subscribe(session: Session, row: Registration, contact_id: int) -> bool:
    """Subscribe the contact to the zone or group the registration's keyword named; True if it was
    new. A zone subscription is by name (it holds across the zone's versions)."""
    if row.zone_name is not None:
        added = session.execute(text("""
            INSERT INTO zone_subscriptions (zone_name, contact_id, registration_id) VALUES (:z, :c, :r)
            ON CONFLICT (zone_name, contact_id) DO NOTHING RETURNING contact_id"""),
            {"z": row.zone_name, "c": contact_id, "r": row.id}).scalar()
        return added is not None
    if row.group_id is not None:
        group = session.get(Group, row.group_id)
        if group is not None:
            return directory.add_members(session, group, [row.msisdn], actor=SYSTEM) > 0
    return False


def any_pending(session: Session) -> bool:
    """Whether any request waits for confirmation: asked for every batch of replies, one probe of
    the pending requests' partial index (nearly always false: then nothing else is looked up)."""
    return bool(session.scalar(text("SELECT EXISTS (SELECT 1 FROM registrations WHERE state = 'pending')")))


def pending_numbers(session: Session, msisdns: list[str]) -> set[str]:
    """Which of `msisdns` have a request waiting for confirmation (expired or not), in one array look-up."""
    if not msisdns:
        return set()
    return set(session.scalars(text(
        "SELECT msisdn FROM registrations WHERE state = 'pending' AND msisdn = ANY(CAST(:n AS varchar[]))"),
        {"n": msisdns}))


def answer_pending(session: Session, msisdn: str, answer: str, *, inbound_id: int | None = None,
                   now: datetime | None = None) -> tuple[Registration, Answer | None] | None:
    """A pending number answered `answer` ("yes", "no" or "stop"): confirm, decline or withdraw
    its request, or expire it when it came too late. None when the number has no pending request."""
    now = now or utcnow()
    _lock_number(session, msisdn)
    row = session.scalar(select(Registration).where(Registration.msisdn == msisdn, Registration.state == S.PENDING)
                         .with_for_update())
    if row is None:
        return None
    row.decided_at = now
    if row.expires_at is not None and row.expires_at <= now:
        row.state, row.reason = S.EXPIRED, "not confirmed in time"
        session.flush()
        _audit(session, row, "registration.expired", late_answer=answer, answer_inbound_id=inbound_id)
        return row, (Answer(row.id, msisdn, row.sender_name, texts.expired(row.language, row.word, row.shared_keyword),
                            ANSWER) if answer == "yes" else None)
    if answer != "yes":
        row.state, row.reason = S.WITHDRAWN, f"answered {answer.upper()}"
        session.flush()
        _audit(session, row, "registration.withdrawn", answer=answer, answer_inbound_id=inbound_id)
        said = texts.declined if answer == "no" else texts.withdrawn
        return row, Answer(row.id, msisdn, row.sender_name, said(row.language, row.word, row.shared_keyword), ANSWER)
    contact_id = _make_contact(session, row, now)
    row.state, row.contact_id, row.reason = S.ACTIVE, contact_id, None
    session.flush()
    subscribed = subscribe(session, row, contact_id)
    _audit(session, row, "registration.confirmed", contact_id=contact_id, zone=row.zone_name, group_id=row.group_id,
           subscribed=subscribed, answer_inbound_id=inbound_id)
    return row, Answer(row.id, msisdn, row.sender_name, texts.welcome(row.language, row.keyword, row.shared_keyword),
                       ANSWER, contact_id)


def _make_contact(session: Session, row: Registration, now: datetime) -> int:
    """The contact for a confirmed number: new (no name, no location, verified: it answered from
    that phone), or the one an import made meanwhile."""
    created = session.execute(text("""
        INSERT INTO contacts (msisdn, name, language, attributes, verification_state, verified_at)
        VALUES (:n, '', :lang, CAST(:attrs AS jsonb), 'verified', :now)
        ON CONFLICT (msisdn) DO NOTHING RETURNING id"""),
        {"n": row.msisdn, "lang": row.language, "attrs": '{"source": "sms"}', "now": now}).scalar()
    if created is None:
        return int(session.scalar(select(Contact.id).where(Contact.msisdn == row.msisdn)))  # type: ignore[arg-type]
    trail.append(session, actor=SYSTEM, action="contact.created", subject_type="contact", subject_id=created,
                 payload={"msisdn": row.msisdn, "language": row.language, "source": "sms",
                          "registration_id": row.id})
    return int(created)


def expire_due(session: Session, now: datetime | None = None) -> int:
    """Expire every pending request past its time, in one statement; audited as one
    "registration.expired" event. Returns how many. Idempotent (the scheduler's pass)."""
    now = now or utcnow()
    ids = list(session.scalars(
        update(Registration).where(Registration.state == S.PENDING, Registration.expires_at <= now)
        .values(state=S.EXPIRED, decided_at=now, reason="not confirmed in time").returning(Registration.id)))
    if ids:
        trail.append(session, actor=SYSTEM, action="registration.expired", subject_type="registration",
                     subject_id=ids[0] if len(ids) == 1 else None, payload={"registrations": sorted(ids)})
    return len(ids)
