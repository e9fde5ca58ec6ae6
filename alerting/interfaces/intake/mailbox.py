"""Alerts by e-mail: who may send, and what a received mail becomes (always a draft pending approval).

Authentication: the From address must be on the allowlist (intake_senders), the envelope sender
must be the same address, and the subject must carry that sender's secret token, compared by its
SHA-256. Not DKIM: DKIM proves that a domain's mail server signed the message, not which person
wrote it (anyone with a mailbox at the domain, or a phished one, passes); internal relays and list
servers often break it; checking it needs DNS at intake time, which an operations centre cut off
from the internet may not have. A per-person token is revocable alone and works offline. Its
weakness (it travels in the mail) is bounded: a mail only ever makes a draft that a second operator
must approve, a redelivered mail (same Message-ID) makes nothing new, and every refusal is audited.

Unknown senders get no reply (that would be backscatter to forged addresses): the SMTP transaction
is refused and the mail kept for review. Everything else gets a reply saying what was created or why not.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.alerts import drafts, lifecycle
from alerting.base.db import transaction
from alerting.base.errors import InvalidInput, Refused, SirenaError
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import AlertMode, AlertState, Operator, Priority
from alerting.base.models.intake import IntakeSender
from alerting.base.settings import Settings
from alerting.directory import contacts as directory
from alerting.directory.accounts import actor_of, get_operator
from alerting.directory.contact_import import read_rejects
from alerting.interfaces.intake.cap_import import import_cap
from alerting.interfaces.intake.mail import MailRequest, parse_mail, sender_of
from alerting.interfaces.intake.review import keep_for_review, record
from audit import trail
from audit.actor import Actor
from audit.trail import audit_refusal

CHANNEL = "smtp"
ATTACHED_CSV = "correo-adjunto.csv"
PROBLEMS_SHOWN = 50


@dataclass
class MailOutcome:
    outcome: str  # draft_created / duplicate / refused / malformed / unknown_sender
    smtp_reply: str  # what the SMTP server answers to DATA
    reply_to: str | None = None  # where the reply mail goes (None: no reply)
    reply_subject: str = ""
    reply_lines: list[str] = field(default_factory=list)
    alert_id: int | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_sender(session: Session, address: str, username: str, actor: Actor) -> str:
    """Allow `address` to send alerts as operator `username`; return its new secret token (shown once)."""
    address = address.strip().lower()
    if "@" not in address or len(address) > 254 or any(c.isspace() for c in address):
        raise InvalidInput(f'address: "{address}" is not an e-mail address', fields={"address": "invalid"})
    operator = get_operator(session, username)
    token = "mail_" + secrets.token_urlsafe(24)
    row = session.scalar(select(IntakeSender).where(IntakeSender.address == address).with_for_update())
    if row is None:
        row = IntakeSender(address=address, token_sha256=_digest(token), operator_id=operator.id, active=True)
        session.add(row)
    else:
        row.token_sha256, row.operator_id, row.active = _digest(token), operator.id, True
    session.flush()
    trail.append(session, actor=actor, action="intake.sender_allowed", subject_type="intake_sender",
                 subject_id=row.id, payload={"address": address, "operator": username})
    return token


def _actor(operator: Operator, address: str) -> Actor:
    return actor_of(operator, interface="email", address=address)


def accept_mail(raw: bytes, envelope_from: str, *, config: IntakeConfig, settings: Settings) -> MailOutcome:
    """Authenticate a received mail and turn it into an alert pending approval, or refuse it (kept).

    Opens its own transactions (it is an entry point, like a job).
    """
    sender, subject = sender_of(raw)
    reply_subject = f"Re: {subject}"[:200]
    with transaction() as session:
        allowed = session.execute(select(IntakeSender, Operator).join(Operator, Operator.id == IntakeSender.operator_id)
                                  .where(IntakeSender.address == sender, IntakeSender.active)).first()
    if allowed is None or envelope_from.strip().lower() != sender:
        why = (f"sender {sender or '(none)'} is not on the allowlist" if allowed is None
               else f"envelope sender {envelope_from} differs from From: {sender}")
        keep_for_review(CHANNEL, sender=sender or envelope_from, subject=subject, raw=raw, outcome="unknown_sender",
                        reason=why)
        audit_refusal(Actor(kind="email", name=sender or envelope_from, interface="email"), "intake.mail",
                      reason=why)
        return MailOutcome("unknown_sender", "550 5.7.1 sender not allowed to send alerts")
    intake_sender, operator = allowed
    actor = _actor(operator, sender)
    try:
        request = parse_mail(raw)
        if request.token is None or not hmac.compare_digest(_digest(request.token), intake_sender.token_sha256):
            raise Refused("the subject does not carry this sender's token ([TOKEN] in the subject)",
                          fields={"Subject": "missing or wrong token"})
        with transaction() as session:
            lines, alert_id, outcome = _create(session, request, actor, config, settings)
            record(session, CHANNEL, sender=sender, subject=subject, raw=raw, outcome=outcome, alert_id=alert_id)
        return MailOutcome(outcome, "250 2.0.0 accepted; a reply follows", sender, reply_subject, lines, alert_id)
    except SirenaError as exc:
        kind = "malformed" if isinstance(exc, InvalidInput) and "message" in _fields(exc) else "refused"
        keep_for_review(CHANNEL, sender=sender, subject=subject, raw=raw, outcome=kind, reason=exc.message)
        if kind == "refused":
            audit_refusal(actor, "intake.mail", reason=exc.message)
        lines = ["Sirena did NOT create an alert from your mail.", "", f"Reason: {exc.message}"]
        lines += [f"  {k}: {v}" for k, v in _fields(exc).items()]
        lines += ["", "The mail is kept for review by an administrator."]
        return MailOutcome(kind, "250 2.0.0 received; a reply follows", sender, reply_subject, lines)


def _fields(exc: SirenaError) -> dict[str, str]:
    found = exc.details.get("fields")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _create(session: Session, request: MailRequest, actor: Actor, config: IntakeConfig,
            settings: Settings) -> tuple[list[str], int | None, str]:
    if request.cap_xml is not None:
        result = import_cap(session, request.cap_xml, actor=actor, config=config)
        lines = [f"CAP {result.action}: {result.reference} ({result.mode}, {result.state})"]
        lines += [f"warning: {w}" for w in result.warnings]
        return lines, result.alert_id, "duplicate" if result.action == "duplicate" else "draft_created"
    problems = {}
    if request.mode is None:
        problems["mode"] = "say Modo: live, exercise or test (never assumed)"
    if not request.text:
        problems["text"] = "the mail has no text after the header lines"
    if not (request.groups or request.numbers or request.contacts_csv):
        problems["recipients"] = "name groups (Grupos:) or numbers (Para:), or attach a CSV/TXT"
    if len(request.numbers) > config.max_recipients:
        problems["recipients"] = f"more than {config.max_recipients} numbers; attach a CSV or use the console"
    if problems or request.mode is None:  # a missing mode is among the problems
        raise InvalidInput("the mail does not say enough to compose an alert", fields=problems)
    lines = []
    groups = list(dict.fromkeys(request.groups))
    if request.numbers or request.contacts_csv:
        adhoc = f"correo-{hashlib.sha256((request.message_id or request.subject).encode()).hexdigest()[:10]}"
        for source in _csv_sources(request):
            # Recipients only: a mailed list must not change the directory (groups, locations,
            # attributes, people already in it); that takes `contacts:write` in the console or API.
            report = directory.import_contacts(session, source, settings=settings, group=adhoc, actor=actor,
                                               recipients_only=True)
            lines.append(f"recipients read: {report.rows_read}, imported {report.contacts}, "
                         f"rejected {report.rejected}")
            if report.left_as_is:
                lines.append(f"  {report.left_as_is} number(s) already in the directory: sent to, left as they are")
            if report.ignored_columns:
                lines.append(f"  column(s) {', '.join(report.ignored_columns)} not applied: a mailed list only "
                             "names recipients; groups, locations and attributes are changed in the console or API")
            lines += _problem_lines(report, attached=source.name == ATTACHED_CSV)
        groups.append(adhoc)
    language = request.language if request.language in {"es", "en"} else "es"
    draft = drafts.AlertDraft(texts={language: request.text}, mode=AlertMode(request.mode),
                                 sender_name=config.sms_sender, priority=Priority(request.priority),
                                 title=request.title, target={"groups": groups}, origin="email",
                                 scheduled_at=request.scheduled_at,
                                 idempotency_key=f"email:{request.message_id}" if request.message_id else None)
    alert = lifecycle.compose(session, draft, actor, quiet_override_reason=request.quiet_override_reason)
    if alert.state is not AlertState.DRAFT or alert.submitted_at is not None:
        return [f"Already received: alert {alert.reference} ({alert.state.value})."], alert.id, "duplicate"
    lifecycle.submit(session, alert.id, actor)
    lines = [f"Alert {alert.reference} created from your mail: {alert.mode.value.upper()}, "
             f"priority {alert.priority.value}, to groups {', '.join(groups)}.",
             f"It would reach {alert.submitted_recipients or 0} phone(s) now.",
             "It is PENDING APPROVAL: nothing is sent until a different operator approves it.", "", *lines]
    return lines, alert.id, "draft_created"


def _problem_lines(report: directory.ImportReport, *, attached: bool) -> list[str]:
    """Each rejected, doubtful or repeated recipient, so the sender knows which line to fix.

    Rows of an attached CSV are numbered as a spreadsheet shows them (header = row 1); numbers
    from the mail body are named by themselves.
    """
    problems = read_rejects(report.rejects_path, PROBLEMS_SHOWN + 1)
    lines = [(f"  row {p['row']}, {p['column']} " if attached else "  ") + f"\"{p['value']}\": {p['reason']} "
             f"({p['outcome']})" for p in problems[:PROBLEMS_SHOWN]]
    if len(problems) > PROBLEMS_SHOWN:
        lines.append(f"  … and more: {report.rejected} rejected and {report.warnings} doubtful in all")
    return lines


def _csv_sources(request: MailRequest) -> list[io.BytesIO]:
    sources = []
    if request.numbers:
        body = io.BytesIO(("telefono\n" + "\n".join(request.numbers) + "\n").encode())
        body.name = "correo-numeros.csv"
        sources.append(body)
    if request.contacts_csv:
        attached = io.BytesIO(request.contacts_csv)
        attached.name = ATTACHED_CSV
        sources.append(attached)
    return sources
