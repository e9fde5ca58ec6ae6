"""`sirena intake smtp`: the e-mail intake service (aiosmtpd), and the reply mail it sends.

Mail is accepted only for the configured intake address (other recipients: 550 at RCPT), up to
the size cap (aiosmtpd answers 552 beyond it). Each message is handled by mailbox.accept_mail in a
worker thread (the database calls are blocking); the reply goes out through the configured relay.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from aiosmtpd.controller import Controller

from alerting.base.intake_config import IntakeConfig
from alerting.base.settings import Settings
from alerting.interfaces.intake.mailbox import MailOutcome, accept_mail

log = logging.getLogger("sirena.intake.smtp")


def send_reply(outcome: MailOutcome, config: IntakeConfig) -> bool:
    """Send the reply mail through the relay; False (logged) when the relay refuses or is down."""
    if outcome.reply_to is None:
        return False
    message = EmailMessage()
    message["From"] = config.reply_from
    message["To"] = outcome.reply_to
    message["Subject"] = outcome.reply_subject or "Sirena"
    message["Message-ID"] = make_msgid(domain=config.reply_from.split("@")[-1])
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834: autoresponders must not answer it
    message.set_content("\n".join(outcome.reply_lines) + "\n")
    try:
        with smtplib.SMTP(config.relay_host, config.relay_port, timeout=10) as relay:
            relay.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("reply to %s not sent (alert_id=%s): %s", outcome.reply_to, outcome.alert_id, exc)
        return False
    return True


class IntakeHandler:
    """aiosmtpd handler: RCPT checks the address, DATA authenticates and composes (never sends SMS)."""

    def __init__(self, config: IntakeConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.strip().lower() != self.config.intake_address:
            return "550 5.1.1 this server accepts alerts only for its intake address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        outcome = await asyncio.to_thread(self._process, bytes(raw), envelope.mail_from or "")
        return outcome.smtp_reply

    def _process(self, raw: bytes, mail_from: str) -> MailOutcome:
        try:
            outcome = accept_mail(raw, mail_from, config=self.config, settings=self.settings)
        except Exception:
            log.exception("intake failed on a mail from %s", mail_from)
            return MailOutcome("error", "451 4.3.0 temporary failure; try again later")
        log.info("intake mail from=%s outcome=%s alert_id=%s", mail_from, outcome.outcome, outcome.alert_id)
        send_reply(outcome, self.config)
        return outcome


def start(config: IntakeConfig, settings: Settings) -> Controller:
    """Start the SMTP server in a background thread; `.stop()` it when done."""
    controller = Controller(IntakeHandler(config, settings), hostname=config.smtp_host, port=config.smtp_port,
                            data_size_limit=config.max_message_bytes, decode_data=False)
    controller.start()
    return controller
