"""Operators bounded to an area, through e-mail intake and CAP intake (file, HTTP, e-mail attachment)."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from sqlalchemy import select, text

from alerting.base.db import transaction
from alerting.base.errors import Refused
from alerting.base.models import Alert, AlertState, Group, GroupKind, Operator, Sender, SenderKind
from alerting.base.models.intake import CapMessage, IntakeMessage
from alerting.directory import areas
from alerting.interfaces.intake.cap_import import import_cap
from audit.actor import Actor
from geo.zones import import_geojson
from tests.api.conftest import make_app, make_token  # noqa: F401  (the API token fixture)
from tests.conftest import cli_env, run_sirena
from tests.intake.conftest import CAP_DIR, cap_file, resident_in_the_circle
from tests.intake.test_smtp import _message, _send, mail  # noqa: F401  (the SMTP intake fixture)

SYSTEM = Actor.system("test")
# Around the circle of australia-circle.xml (centre -35.3888, 147.0598, radius 25 km), and a town far from it.
RIVERINA = [[[146.5, -35.9], [147.6, -35.9], [147.6, -34.9], [146.5, -34.9], [146.5, -35.9]]]
TUMUT = [[[148.1, -35.4], [148.3, -35.4], [148.3, -35.2], [148.1, -35.2], [148.1, -35.4]]]


def _zone(session, name: str, coordinates: list) -> None:  # type: ignore[no-untyped-def]
    import_geojson(session, {"type": "Feature", "properties": {"name": name},
                             "geometry": {"type": "Polygon", "coordinates": coordinates}}, actor=SYSTEM)


def _reply_body(capture) -> str:  # type: ignore[no-untyped-def]
    return message_from_bytes(capture.messages[-1][2], policy=policy.default).get_content()


def test_a_bounded_sender_mails_only_inside_their_area(mail):  # noqa: F811
    config, token, capture = mail
    with transaction() as session:
        session.add(Group(name="otros", kind=GroupKind.STATIC, drill_allowed=True, description=""))
        jefe = session.scalar(select(Operator.id).where(Operator.username == "jefe"))
        session.flush()
        areas.set_area(session, jefe, [], ["bomberos"], SYSTEM)  # type: ignore[arg-type]
    _send(config, _message(f"[{token}] Aviso", "Modo: simulacro\nGrupos: otros\n\nSimulacro 10:00",
                           message_id="<out@municipio.cl>"))
    capture.wait(1)
    body = _reply_body(capture)
    assert "did NOT create" in body and "outside your area: groups otros" in body
    assert "target.groups: not assigned to you: otros" in body
    _send(config, _message(f"[{token}] Aviso", "Modo: simulacro\nGrupos: bomberos\nPara: 987654321\n\nSimulacro",
                           message_id="<numbers@municipio.cl>"))
    capture.wait(2)
    assert "outside your area: groups correo-" in _reply_body(capture)  # a mailed list reaches anyone
    _send(config, _message(f"[{token}] Aviso", "Modo: simulacro\nGrupos: bomberos\n\nSimulacro 10:00",
                           message_id="<in@municipio.cl>"))
    capture.wait(3)
    assert "PENDING APPROVAL" in _reply_body(capture)
    with transaction() as session:
        alerts = list(session.scalars(select(Alert)))
        assert [a.target["groups"] for a in alerts] == [["bomberos"]]
        kept = list(session.scalars(select(IntakeMessage.outcome).order_by(IntakeMessage.id)))
        assert kept == ["refused", "refused", "draft_created"]
        refused = session.execute(text("SELECT reason FROM audit.events WHERE action = 'intake.mail' "
                                       "AND outcome = 'refused' ORDER BY id")).scalars().all()
        assert len(refused) == 2 and all(r.startswith("outside your area") for r in refused)
        assert session.scalar(text("SELECT count(*) FROM contacts WHERE msisdn = '+56987654321'")) == 0


@pytest.fixture
def bounded_cap(db, composer):  # type: ignore[no-untyped-def]
    """Riverina (around the circle) and Tumut (far from it) as zones; a resident inside the circle."""
    _zone(db, "Riverina", RIVERINA)
    _zone(db, "Tumut", TUMUT)
    resident_in_the_circle(db)
    return composer


def test_a_cap_polygon_inside_the_operators_zones_is_drafted_and_one_outside_refused(db, bounded_cap, config):
    areas.set_area(db, bounded_cap.operator_id, ["Tumut"], [], SYSTEM)
    with pytest.raises(Refused) as caught, db.begin_nested():  # the refused import's work rolls back
        import_cap(db, cap_file("australia-circle.xml"), actor=bounded_cap, config=config)
    assert caught.value.message.startswith("outside your area: zones CAP ")
    areas.set_area(db, bounded_cap.operator_id, ["Riverina"], [], SYSTEM)
    result = import_cap(db, cap_file("australia-circle.xml"), actor=bounded_cap, config=config)
    assert result.action == "drafted" and db.get(Alert, result.alert_id).state is AlertState.PENDING_APPROVAL


def test_cap_over_http_from_a_bounded_operator_is_refused_audited_and_kept(
        db, settings, redis_db, factories, make_token):  # noqa: F811  (the fixture imported above)
    factories.SenderFactory(name="SIRENA-SC")
    _zone(db, "Tumut", TUMUT)
    resident_in_the_circle(db)
    who = make_token(("composer",))
    areas.set_area(db, who.operator_id, ["Tumut"], [], SYSTEM)
    client = make_app(settings).test_client()
    r = client.post("/api/v1/cap", data=cap_file("australia-circle.xml"),
                    headers={**who.headers, "Content-Type": "application/cap+xml"})
    assert r.status_code == 403 and r.get_json()["detail"].startswith("outside your area: zones CAP ")
    assert {e["field"] for e in r.get_json()["errors"]} == {"target.zones"}
    assert db.scalar(select(CapMessage.id)) is None  # nothing imported: a second try is not a "duplicate"
    kept = db.scalar(select(IntakeMessage).where(IntakeMessage.channel == "cap-http"))
    assert kept is not None and kept.outcome == "refused"
    refused = db.execute(text("SELECT action FROM audit.events WHERE outcome = 'refused'")).scalars().all()
    assert refused == ["api.api.import_cap_document"]


def test_cap_from_the_command_line_is_held_to_the_importers_area(committed_db, tmp_path):
    with transaction() as session:
        session.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True))
        session.add(Operator(username="regional", password_hash="x", roles=["composer"]))
        _zone(session, "Tumut", TUMUT)
        session.flush()
        regional = session.scalar(select(Operator.id).where(Operator.username == "regional"))
        areas.set_area(session, regional, ["Tumut"], [], SYSTEM)  # type: ignore[arg-type]
    done = run_sirena(cli_env(committed_db, tmp_path), "cap", "import", str(CAP_DIR / "australia-circle.xml"),
                      "--as", "regional")
    assert done.returncode == 5 and "outside your area: zones CAP " in done.stderr
    with transaction() as session:
        assert session.scalar(select(Alert.id)) is None
        assert session.scalar(text("SELECT count(*) FROM audit.events WHERE action = 'cli.cap.import' "
                                   "AND outcome = 'refused'")) == 1
