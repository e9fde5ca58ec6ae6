"""Reading an intake e-mail: who sent it, the secret token in the subject, the text and the recipients.

The shape an operator writes (Spanish or English keys, any case), then a blank line, then the text:

    Subject: [TOKEN] Corte de agua Zona Norte
    Modo: simulacro            (mode: live | exercise | test; required, never assumed)
    Prioridad: alta            (priority: flash | high | normal | low; default normal)
    Grupos: bomberos, defensa-civil
    Para: +56912345678, +56987654321
    Programar: 2026-12-07T10:00-03:00   (optional; a test or drill at night also needs Motivo: <reason>)

    Corte de agua hasta las 18:00. Responda ACK {codigo}.

Recipients may also come in an attached .csv (a contacts CSV with a phone column, imported into a
group for this mail) or .txt (one number or `grupo:NAME` per line); an attached .xml is a CAP 1.2
alert and is imported as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr

from alerting.base.errors import InvalidInput

TOKEN = re.compile(r"\[([A-Za-z0-9_\-]{20,80})\]")
KEYS = {
    "mode": "mode", "modo": "mode",
    "priority": "priority", "prioridad": "priority",
    "groups": "groups", "group": "groups", "grupos": "groups", "grupo": "groups",
    "to": "numbers", "para": "numbers", "numbers": "numbers", "numeros": "numbers", "números": "numbers",
    "language": "language", "idioma": "language",
    "title": "title", "titulo": "title", "título": "title",
    "schedule": "schedule", "programar": "schedule", "at": "schedule", "hora": "schedule",
    "override": "override", "motivo": "override",
}
MODES = {"live": "live", "real": "live", "exercise": "exercise", "simulacro": "exercise", "ejercicio": "exercise",
         "test": "test", "prueba": "test"}
PRIORITIES = {"flash": "flash", "urgente": "flash", "high": "high", "alta": "high", "normal": "normal",
              "low": "low", "baja": "low"}
MAX_TEXT_CHARS = 2000


@dataclass
class MailRequest:
    sender: str  # the From: address, lower case
    subject: str
    message_id: str
    token: str | None
    mode: str | None = None
    priority: str = "normal"
    language: str = "es"
    title: str = ""
    scheduled_at: datetime | None = None  # "Programar: 2026-12-07T10:00-03:00" (offset required)
    quiet_override_reason: str | None = None  # "Motivo: ..." lets a test or drill be scheduled at night
    text: str = ""
    numbers: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    contacts_csv: bytes | None = None
    cap_xml: bytes | None = None


def sender_of(raw: bytes) -> tuple[str, str]:
    """(From address, Subject) of a message, for logging even when the rest cannot be read."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        return parseaddr(str(message.get("From", "")))[1].lower(), str(message.get("Subject", ""))[:500]
    except Exception:
        return "", ""


def _body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        if message.get_body(preferencelist=("html",)) is not None:
            raise InvalidInput("the mail has only an HTML body; send plain text",
                               fields={"body": "no text/plain part"})
        return ""
    return str(part.get_content())


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in re.split(r"[,;\n]", value) if v.strip()]


def parse_mail(raw: bytes) -> MailRequest:
    """Read the parts of an intake mail. Raises InvalidInput naming what is wrong."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:
        raise InvalidInput(f"the message cannot be read as e-mail: {exc}", fields={"message": "malformed"}) from None
    if message.defects:
        raise InvalidInput(f"malformed e-mail: {message.defects[0].__class__.__name__}",
                           fields={"message": "malformed"})
    sender = parseaddr(str(message.get("From", "")))[1].lower()
    subject = str(message.get("Subject", "")).strip()
    if not sender:
        raise InvalidInput("the mail has no From address", fields={"From": "missing"})
    found = TOKEN.search(subject)
    request = MailRequest(sender=sender, subject=subject, message_id=str(message.get("Message-ID", "")).strip(),
                          token=found.group(1) if found else None)
    request.title = TOKEN.sub("", subject).strip()[:200]
    _read_body(request, _body_text(message))
    for part in message.iter_attachments():
        name = (part.get_filename() or "").lower()
        payload = part.get_payload(decode=True) or b""  # bytes; None for a multipart part
        if not isinstance(payload, bytes):
            raise TypeError(f"decoded payload of an attachment is a {type(payload).__name__}, not bytes")
        if name.endswith(".xml") or part.get_content_type() in {"application/cap+xml", "application/xml", "text/xml"}:
            request.cap_xml = payload
        elif name.endswith(".csv") or part.get_content_type() == "text/csv":
            request.contacts_csv = payload
        elif name.endswith(".txt") or part.get_content_type() == "text/plain":
            _read_recipient_lines(request, payload.decode("utf-8", errors="replace"))
        else:
            raise InvalidInput(f'attachment "{part.get_filename()}": only .csv, .txt and CAP .xml are read',
                               fields={"attachment": f"{part.get_filename()}: unsupported type"})
    return request


def _read_body(request: MailRequest, body: str) -> None:
    lines = body.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines) and lines[index].strip():
        key, sep, value = lines[index].partition(":")
        name = KEYS.get(key.strip().lower())
        if not sep or name is None:
            break  # the text starts here (no header block)
        _set(request, name, value.strip())
        index += 1
    text = "\n".join(lines[index:]).strip()
    signature = text.find("\n-- \n")
    request.text = (text[:signature] if signature >= 0 else text).strip()
    if len(request.text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"text: longer than {MAX_TEXT_CHARS} characters", fields={"text": "too long"})


def _set(request: MailRequest, name: str, value: str) -> None:
    if name == "mode":
        if value.lower() not in MODES:
            raise InvalidInput(f'mode: "{value}" is not live, exercise or test', fields={"mode": "unknown mode"})
        request.mode = MODES[value.lower()]
    elif name == "priority":
        if value.lower() not in PRIORITIES:
            raise InvalidInput(f'priority: "{value}" is not flash, high, normal or low',
                               fields={"priority": "unknown priority"})
        request.priority = PRIORITIES[value.lower()]
    elif name == "groups":
        request.groups += _split_list(value)
    elif name == "numbers":
        _read_recipient_lines(request, value.replace(",", "\n").replace(";", "\n"))
    elif name == "language":
        request.language = value.lower()[:2]
    elif name == "title":
        request.title = value[:200]
    elif name == "schedule":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise InvalidInput(f'scheduled_at: "{value}" is not a date and time with its UTC offset, such as '
                               "2026-12-07T10:00-03:00", fields={"scheduled_at": "needs ISO 8601 with an offset"})
        request.scheduled_at = moment
    elif name == "override":
        request.quiet_override_reason = value[:2000] or None


def _read_recipient_lines(request: MailRequest, text: str) -> None:
    for line in text.splitlines():
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        lowered = item.lower()
        if lowered.startswith(("grupo:", "group:")):
            request.groups.append(item.split(":", 1)[1].strip())
        else:
            request.numbers.append(item)
