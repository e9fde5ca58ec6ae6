"""Fixtures for the intake tests: the real CAP files in shared/cap/, an importer and its config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alerting.intake.config import IntakeConfig
from tests.factories import actor_for

CAP_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "cap"


def cap_file(name: str) -> bytes:
    return (CAP_DIR / name).read_bytes()


def exercise_cap() -> bytes:
    """Our own Exercise message: no real one exists (shared/cap/SOURCES.md), so the Australian circle alert
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

