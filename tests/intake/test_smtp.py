"""The SMTP intake over real SMTP: allowlist + token, always a draft pending approval, reply mail,
refused and malformed mail kept, size cap. Replies are captured by a second aiosmtpd server."""

from __future__ import annotations

import smtplib
import socket
import time
from dataclasses import replace
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from alerting.base.db import transaction
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import Alert, AlertState, Contact, Group, GroupKind, GroupMember, Operator, Sender, SenderKind
from alerting.base.models.intake import IntakeMessage
from alerting.interfaces.intake import smtp
from alerting.interfaces.intake.mailbox import add_sender
from audit.actor import Actor
from tests.intake.conftest import cap_file, resident_in_the_circle

INTAKE = "alertas@sirena.localhost"
SENDER = "jefe.turno@municipio.cl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Capture:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def wait(self, count: int = 1, timeout_s: float = 10) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return [m[2] for m in self.messages]


@pytest.fixture
def mail(committed_db, redis_db):  # type: ignore[no-untyped-def]
    """Intake server + reply capture on free ports, one allowed sender; yields (config, token, capture)."""
    with transaction() as session:
        session.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True))
        session.add(Operator(username="jefe", password_hash="x", roles=["composer"]))
        session.add(Group(name="bomberos", kind=GroupKind.STATIC, drill_allowed=True, description=""))
        session.flush()
        token = add_sender(session, SENDER, "jefe", Actor.system("test"))
    capture = _Capture()
    relay = Controller(capture, hostname="127.0.0.1", port=_free_port())
    relay.start()
    config = replace(IntakeConfig(), smtp_port=_free_port(), relay_port=relay.port, intake_address=INTAKE,
                     max_message_bytes=200_000)
    server = smtp.start(config, committed_db)
    try:
        yield config, token, capture
    finally:
        server.stop()
        relay.stop()


def _send(config: IntakeConfig, message: EmailMessage, *, envelope_from: str = SENDER,
          to: str = INTAKE) -> None:
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=30) as client:
        client.send_message(message, from_addr=envelope_from, to_addrs=[to])


def _message(subject: str, body: str, *, sender: str = SENDER, message_id: str = "<m1@municipio.cl>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = INTAKE
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    return message


def _alerts() -> list[Alert]:
    with transaction() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def test_a_mail_with_token_groups_and_numbers_becomes_a_draft_pending_approval(mail):
    config, token, capture = mail
    body = ("Modo: real\nPrioridad: alta\nGrupos: bomberos\nPara: +56912345678, 987654321\n\n"
            "Corte de agua hasta las 18:00.")
    _send(config, _message(f"[{token}] Corte de agua", body))
    reply = capture.wait()[0].decode()
    alerts = _alerts()
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.state is AlertState.PENDING_APPROVAL and alert.origin == "email"
    assert alert.texts == {"es": "Corte de agua hasta las 18:00."} and alert.priority.value == "high"
    assert "bomberos" in alert.target["groups"] and len(alert.target["groups"]) == 2
    assert alert.reference in reply and "PENDING APPROVAL" in reply and f"To: {SENDER}" in reply
    from email import message_from_bytes, policy

    body = message_from_bytes(capture.messages[0][2], policy=policy.default).get_content()
    assert "It would reach 1 phone(s) now." in body  # +56912345678 is not a valid Chilean mobile: rejected
    assert "recipients read: 2, imported 1, rejected 1" in body
    assert '"+56912345678": ' in body and "(rejected)" in body  # named, so the sender can fix it
    with transaction() as session:
        assert session.scalar(select(Contact).where(Contact.msisdn == "+56987654321")) is not None
        outcome = session.scalar(select(IntakeMessage.outcome).where(IntakeMessage.alert_id == alert.id))
        assert outcome == "draft_created"


def test_the_same_mail_delivered_twice_makes_one_alert(mail):
    config, token, capture = mail
    message = _message(f"[{token}] Aviso", "Modo: simulacro\nGrupos: bomberos\n\nSimulacro de evacuación 10:00")
    _send(config, message)
    _send(config, message)
    replies = capture.wait(2)
    assert len(_alerts()) == 1 and "Already received" in replies[1].decode()


def test_a_wrong_token_is_refused_replied_kept_and_audited(mail):
    config, _token, capture = mail
    _send(config, _message("[mail_0000000000000000000000000000] Aviso", "Modo: real\nGrupos: bomberos\n\nx"))
    reply = capture.wait()[0].decode()
    assert "did NOT create" in reply and "Subject" in reply
    assert _alerts() == []
    with transaction() as session:
        kept = session.scalar(select(IntakeMessage).where(IntakeMessage.outcome == "refused"))
        assert kept is not None and b"Modo: real" in kept.raw
        from sqlalchemy import text

        assert session.execute(text("SELECT count(*) FROM audit.events WHERE action = 'intake.mail' "
                                    "AND outcome = 'refused'")).scalar_one() == 1


def test_an_unknown_sender_is_refused_at_smtp_kept_and_gets_no_reply(mail):
    config, token, capture = mail
    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(config, _message(f"[{token}] x", "Modo: real\n\nx", sender="intruso@evil.example"),
              envelope_from="intruso@evil.example")
    assert refused.value.smtp_code == 550
    time.sleep(0.3)
    assert capture.messages == []
    with transaction() as session:
        kept = session.scalar(select(IntakeMessage).where(IntakeMessage.outcome == "unknown_sender"))
        assert kept.sender == "intruso@evil.example"


def test_mail_for_another_address_is_refused_at_rcpt(mail):
    config, token, _capture = mail
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        _send(config, _message(f"[{token}] x", "x"), to="otro@sirena.localhost")


def test_a_mail_without_mode_is_refused_naming_the_field_and_kept(mail):
    config, token, capture = mail
    _send(config, _message(f"[{token}] Aviso", "Grupos: bomberos\n\nAlgo pasa"))
    reply = capture.wait()[0].decode()
    assert "mode:" in reply and _alerts() == []


def test_an_attached_cap_file_is_imported_as_cap(mail):
    config, token, capture = mail
    with transaction() as session:
        resident_in_the_circle(session)
    message = _message(f"[{token}] CAP", "Adjunto CAP.")
    message.add_attachment(cap_file("australia-circle.xml"), maintype="application", subtype="cap+xml",
                           filename="alerta.xml")
    _send(config, message)
    reply = capture.wait()[0].decode()
    alerts = _alerts()
    assert len(alerts) == 1 and alerts[0].origin == "cap" and alerts[0].state is AlertState.PENDING_APPROVAL
    assert "CAP drafted" in reply


def test_an_attached_txt_gives_recipients(mail):
    config, token, capture = mail
    message = _message(f"[{token}] Lista", "Modo: real\n\nReunión de brigadas a las 20:00")
    message.add_attachment("+56911111111\n+56922222222\ngrupo:bomberos\n", filename="destinatarios.txt")
    _send(config, message)
    capture.wait()
    alert = _alerts()[0]
    assert "bomberos" in alert.target["groups"]
    with transaction() as session:
        adhoc = next(g for g in alert.target["groups"] if g != "bomberos")
        assert session.scalar(select(Group).where(Group.name == adhoc)) is not None


def test_a_mail_over_the_size_cap_is_refused_by_smtp(mail):
    config, token, _capture = mail
    with pytest.raises(smtplib.SMTPException) as refused:
        _send(config, _message(f"[{token}] big", "Modo: real\n\n" + "x" * 300_000))
    assert "552" in str(refused.value) or getattr(refused.value, "smtp_code", None) == 552


def test_a_mail_can_schedule_a_drill_and_night_drills_need_a_reason(mail):
    config, token, capture = mail
    night = "Modo: simulacro\nGrupos: bomberos\nProgramar: 2031-03-04T03:00-03:00\n\nSimulacro nocturno"
    _send(config, _message(f"[{token}] Noche", night, message_id="<n1@municipio.cl>"))
    assert "quiet hours" in capture.wait(1)[0].decode() and _alerts() == []
    _send(config, _message(f"[{token}] Noche", night.replace("\n\n", "\nMotivo: pedido por bomberos\n\n"),
                           message_id="<n2@municipio.cl>"))
    capture.wait(2)
    alert = _alerts()[0]
    assert alert.scheduled_at.isoformat() == "2031-03-04T06:00:00+00:00"


def test_an_attached_csv_gives_recipients_and_the_reply_names_each_bad_row(mail):
    config, token, capture = mail
    message = _message(f"[{token}] Brigadas", "Modo: real\n\nReunión de brigadas a las 20:00",
                       message_id="<csv1@municipio.cl>")
    # As a spreadsheet exports it: BOM, semicolons, Spanish headers, one number too short.
    sheet = "\ufeffnombre;teléfono;rol\nAna Pérez;+56 9 6123 4567;brigadista\nBeto;123;brigadista\nCami;987654321;\n"
    message.add_attachment(sheet.encode("utf-8"), maintype="text", subtype="csv", filename="brigadistas.csv")
    _send(config, message)
    from email import message_from_bytes, policy

    reply = message_from_bytes(capture.wait()[0], policy=policy.default).get_content()
    alert = _alerts()[0]
    assert alert.state is AlertState.PENDING_APPROVAL and alert.origin == "email"
    assert "recipients read: 3, imported 2, rejected 1" in reply
    assert 'row 3, teléfono "123": too short (rejected)' in reply  # the sender learns which line to fix
    assert "It would reach 2 phone(s) now." in reply
    with transaction() as session:
        adhoc = session.scalar(select(Group).where(Group.name == alert.target["groups"][0]))
        members = session.scalars(select(Contact.msisdn).join(GroupMember, GroupMember.contact_id == Contact.id)
                                  .where(GroupMember.group_id == adhoc.id).order_by(Contact.msisdn)).all()
        assert members == ["+56961234567", "+56987654321"]
        ana = session.scalar(select(Contact).where(Contact.msisdn == "+56961234567"))
        assert ana.name == "Ana Pérez" and ana.attributes == {}  # "rol" would feed dynamic groups
    assert "column(s) rol not applied" in reply


def test_a_mailed_csv_names_recipients_and_cannot_change_the_directory(mail):
    """A composer's mail must not move people between groups, relocate them or rename them: that
    takes contacts:write. The people in the list still get the alert."""
    from geoalchemy2.shape import to_shape

    from alerting.base.models import ContactLocation

    config, token, capture = mail
    with transaction() as session:
        bomberos = session.scalar(select(Group).where(Group.name == "bomberos"))
        known = Contact(msisdn="+56961234567", name="Ana Pérez", language="es", attributes={"rol": "jefa"})
        session.add(known)
        session.flush()
        session.add(GroupMember(group_id=bomberos.id, contact_id=known.id))
        session.add(ContactLocation(contact_id=known.id, label="home", geom="SRID=4326;POINT(-70.65 -33.45)"))
    sheet = ("telefono,nombre,grupo,lat,lon,rol\n"
             "+56961234567,Mallory,policia,-33.0,-71.0,ninguno\n"
             "+56987654321,Beto,bomberos,-33.1,-71.1,brigadista\n")
    message = _message(f"[{token}] Brigadas", "Modo: real\n\nReunión a las 20:00", message_id="<csv2@municipio.cl>")
    message.add_attachment(sheet.encode(), maintype="text", subtype="csv", filename="lista.csv")
    _send(config, message)
    from email import message_from_bytes, policy

    reply = message_from_bytes(capture.wait()[0], policy=policy.default).get_content()
    assert "It would reach 2 phone(s) now." in reply
    assert "1 number(s) already in the directory: sent to, left as they are" in reply
    assert "column(s) grupo, lat, lon, rol not applied" in reply
    with transaction() as session:
        ana = session.scalar(select(Contact).where(Contact.msisdn == "+56961234567"))
        assert (ana.name, ana.attributes) == ("Ana Pérez", {"rol": "jefa"})
        where = session.scalars(select(ContactLocation.geom).where(ContactLocation.contact_id == ana.id)).all()
        assert [(p.x, p.y) for p in map(to_shape, where)] == [(-70.65, -33.45)]
        assert session.scalar(select(Group).where(Group.name == "policia")) is None
        beto = session.scalar(select(Contact).where(Contact.msisdn == "+56987654321"))
        bomberos_ids = set(session.scalars(select(GroupMember.contact_id).join(Group).where(Group.name == "bomberos")))
        assert bomberos_ids == {ana.id}  # Beto was not made a firefighter by a mail
        assert beto.attributes == {} and not session.scalars(
            select(ContactLocation).where(ContactLocation.contact_id == beto.id)).all()
