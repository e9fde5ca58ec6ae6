"""Fixtures for the intake tests: the real CAP files in cap_files/, an importer and its config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from geoalchemy2.elements import WKTElement
from sqlalchemy.orm import Session

from alerting.base.intake_config import IntakeConfig
from alerting.base.models import Contact, ContactLocation
from tests.factories import actor_for

CAP_DIR = Path(__file__).resolve().parent / "cap_files"  # real CAP messages; their sources in SOURCES.md


def cap_file(name: str) -> bytes:
    return (CAP_DIR / name).read_bytes()


CIRCLE_CENTRE = (-35.3888, 147.0598)  # australia-circle.xml: <circle>-35.3888,147.0598 25.0</circle>


def resident_in_the_circle(session: Session, msisdn: str = "+61412345678") -> Contact:
    """A contact living at the centre of australia-circle.xml's circle: its live alert reaches someone."""
    lat, lon = CIRCLE_CENTRE
    contact = Contact(msisdn=msisdn, name="Vecina de Tumut", language="en", attributes={})
    session.add(contact)
    session.flush()
    session.add(ContactLocation(contact_id=contact.id, label="home", geom=WKTElement(f"POINT({lon} {lat})", srid=4326)))
    session.flush()
    return contact


def exercise_cap() -> bytes:
    """Our own Exercise message: no real one exists (cap_files/SOURCES.md), so the Australian circle alert
    with its <status> changed, as SOURCES.md suggests."""
    data = cap_file("australia-circle.xml").replace(b"<cap:status>Actual</cap:status>",
                                                    b"<cap:status>Exercise</cap:status>")
    return data.replace(b"tag:www.rfs.nsw.gov.au2011-10-06:40184", b"sirena-exercise-0001")


def embedded_cert_pem(data: bytes) -> str:
    """The X509Certificate a signed document carries, as PEM (tests trust it explicitly)."""
    found = re.search(rb"<(?:\w+:)?X509Certificate>([^<]+)<", data)
    assert found is not None
    return "-----BEGIN CERTIFICATE-----\n" + found.group(1).decode().strip() + "\n-----END CERTIFICATE-----\n"


@pytest.fixture
def composer(factories):  # type: ignore[no-untyped-def]
    factories.SenderFactory(name="SIRENA-SC")
    return actor_for(factories.OperatorFactory(roles=["composer"]), interface="cap")


@pytest.fixture
def config() -> IntakeConfig:
    return IntakeConfig()

