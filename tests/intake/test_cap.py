"""CAP 1.2 in and out, on the five real CAP files in cap_files/ plus our own Exercise file."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from alerting.base.errors import InvalidInput
from alerting.base.models import Alert, AlertKind, AlertMode, AlertState, Priority
from alerting.base.models.intake import CapMessage
from alerting.base.models.zones import Zone
from alerting.interfaces.intake import cap
from alerting.interfaces.intake.cap_export import export_alert
from alerting.interfaces.intake.cap_import import import_cap
from tests.intake.conftest import cap_file, embedded_cert_pem, exercise_cap, resident_in_the_circle

REAL = ["australia-circle.xml", "canada-update-en-fr-polygon.xml", "ipaws-cancel.xml",
        "oasis-amber-alert-en-es.xml", "pagasa-test-polygon.xml"]


@pytest.mark.parametrize("name", REAL)
def test_every_real_cap_file_parses_and_validates(name):
    doc, _ = cap.load(cap_file(name))
    assert doc.identifier and doc.sender and doc.sent


def test_circles_become_zones_and_a_live_alert_pending_approval(db, composer, config):
    resident_in_the_circle(db)
    result = import_cap(db, cap_file("australia-circle.xml"), actor=composer, config=config)
    alert = db.get(Alert, result.alert_id)
    assert result.action == "drafted" and alert.state is AlertState.PENDING_APPROVAL
    assert alert.mode is AlertMode.LIVE and alert.origin == "cap" and alert.priority is Priority.LOW
    assert alert.target["zones"] == result.zones and len(result.zones) == 1
    assert alert.target["zone_versions"] == {result.zones[0]: 1}  # pinned at submission
    assert db.scalar(select(Zone).where(Zone.name == result.zones[0], Zone.is_current)).source == "cap"
    assert "a second info in en-AU (Fire) was not used" in result.warnings
    assert set(alert.texts) == {"en"}


def test_a_live_alert_whose_area_holds_nobody_is_kept_as_a_draft_saying_why(db, composer, config):
    result = import_cap(db, cap_file("australia-circle.xml"), actor=composer, config=config)
    alert = db.get(Alert, result.alert_id)
    assert result.action == "drafted" and alert.state is AlertState.DRAFT and alert.mode is AlertMode.LIVE
    assert any(w.startswith("left as a draft: target: reaches nobody") for w in result.warnings), result.warnings
    assert alert.target["zones"] == result.zones  # the zone is there for an operator to widen or re-aim


def test_each_language_becomes_a_text_and_geocode_only_areas_leave_a_draft(db, composer, config):
    result = import_cap(db, cap_file("oasis-amber-alert-en-es.xml"), actor=composer, config=config)
    alert = db.get(Alert, result.alert_id)
    assert set(alert.texts) == {"en", "es"} and alert.state is AlertState.DRAFT
    assert any("only geocodes" in w for w in result.warnings)
    assert any("left as a draft" in w for w in result.warnings)


def test_a_test_message_never_becomes_live_and_reaches_drill_groups_only(db, composer, config, factories):
    factories.GroupFactory(name="simulacro-bomberos", drill_allowed=True)
    result = import_cap(db, cap_file("pagasa-test-polygon.xml"), actor=composer, config=config)
    alert = db.get(Alert, result.alert_id)
    assert alert.mode is AlertMode.TEST and alert.target == {"groups": ["simulacro-bomberos"]}
    assert result.zones == [] and any("areas ignored" in w for w in result.warnings)


def test_our_exercise_file_becomes_an_exercise_never_live(db, composer, config, factories):
    factories.GroupFactory(name="brigadas", drill_allowed=True)
    result = import_cap(db, exercise_cap(), actor=composer, config=config)
    assert result.mode == "exercise" and db.get(Alert, result.alert_id).mode is AlertMode.EXERCISE


def test_a_test_message_without_drill_groups_is_refused(db, composer, config):
    with pytest.raises(InvalidInput) as refused:
        import_cap(db, cap_file("pagasa-test-polygon.xml"), actor=composer, config=config)
    assert "target.groups" in refused.value.details["fields"]


def test_an_update_of_an_alert_sirena_never_had_is_refused_naming_the_reference(db, composer, config):
    with pytest.raises(InvalidInput) as refused:
        import_cap(db, cap_file("canada-update-en-fr-polygon.xml"), actor=composer, config=config)
    assert "2.49.0.1.124.a3f342a4.2012" in refused.value.message


def _known(db, factories, sender: str, identifier: str, sent: str) -> Alert:  # type: ignore[no-untyped-def]
    original = factories.AlertFactory(state=AlertState.SENDING, texts={"en": "storm"})
    db.add(CapMessage(sender=sender, identifier=identifier, sent=sent, msg_type="Alert", status="Actual",
                      direction="in", alert_id=original.id))
    db.flush()
    return original


def test_an_update_becomes_a_correction_of_the_referenced_alert(db, composer, config, factories):
    original = _known(db, factories, "cap@ec.gc.ca", "2.49.0.1.124.60f31a3a.2012", "2012-05-02T21:55:21-00:00")
    result = import_cap(db, cap_file("canada-update-en-fr-polygon.xml"), actor=composer, config=config)
    alert = db.get(Alert, result.alert_id)
    assert result.action == "correction_drafted" and alert.kind is AlertKind.CORRECTION
    assert alert.corrects_alert_id == original.id and alert.priority is Priority.HIGH
    assert "info in fr-CA skipped: Sirena sends es and en" in result.warnings


def test_a_signed_ipaws_cancel_verifies_against_a_trusted_cert_and_cancels(db, composer, config, factories,
                                                                           tmp_path):
    data = cap_file("ipaws-cancel.xml")
    (tmp_path / "ipaws.pem").write_text(embedded_cert_pem(data))
    original = _known(db, factories, "AtHoc", "1017033100951096-517189320160225203219800",
                      "2016-02-25T12:32:19-08:00")
    trusted = replace(config, cap_trusted_certs=(tmp_path / "ipaws.pem",))
    result = import_cap(db, data, actor=composer, config=trusted)
    alert = db.get(Alert, result.alert_id)
    assert result.action == "cancel_drafted" and alert.kind is AlertKind.CANCEL
    assert alert.corrects_alert_id == original.id and alert.priority is Priority.FLASH
    assert "IPAWSOPEN" in (result.signed_by or "")
    assert original.reference in alert.texts["en"]


def test_a_tampered_signed_message_is_refused(db, composer, config, factories, tmp_path):
    data = cap_file("ipaws-cancel.xml")
    (tmp_path / "ipaws.pem").write_text(embedded_cert_pem(data))
    _known(db, factories, "AtHoc", "1017033100951096-517189320160225203219800", "2016-02-25T12:32:19-08:00")
    tampered = data.replace(b"<scope>Public</scope>", b"<scope>Private</scope><addresses>x</addresses>", 1)
    with pytest.raises(InvalidInput) as refused:
        import_cap(db, tampered, actor=composer, config=replace(config, cap_trusted_certs=(tmp_path / "ipaws.pem",)))
    assert "Signature" in refused.value.details["fields"]


def test_unsigned_cap_is_refused_when_signatures_are_required(db, composer, config, tmp_path):
    (tmp_path / "ipaws.pem").write_text(embedded_cert_pem(cap_file("ipaws-cancel.xml")))
    strict = replace(config, cap_trusted_certs=(tmp_path / "ipaws.pem",), cap_require_signature=True)
    with pytest.raises(InvalidInput, match="unsigned"):
        import_cap(db, cap_file("australia-circle.xml"), actor=composer, config=strict)


def test_the_same_message_twice_is_one_alert(db, composer, config):
    first = import_cap(db, cap_file("australia-circle.xml"), actor=composer, config=config)
    second = import_cap(db, cap_file("australia-circle.xml"), actor=composer, config=config)
    assert second.action == "duplicate" and second.alert_id == first.alert_id


@pytest.mark.parametrize("hostile", [
    b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>',
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&lol2;</alert>',
    b'<?xml version="1.0"?><!DOCTYPE alert SYSTEM "http://127.0.0.1:1/evil.dtd"><alert/>',
])
def test_dtds_and_entities_are_refused_before_anything_reads_them(hostile):
    with pytest.raises(InvalidInput, match="DTD or entities"):
        cap.load(hostile)


def test_a_schema_violation_names_the_element(db):
    data = cap_file("australia-circle.xml").replace(b"2011-10-05T23:04:00+10:00</cap:sent>",
                                                    b"2011-10-05T13:04:00Z</cap:sent>")
    with pytest.raises(InvalidInput) as refused:
        cap.load(data)
    assert "sent" in refused.value.message


def test_export_is_schema_valid_and_round_trips(db, composer, config):
    imported = import_cap(db, cap_file("australia-circle.xml"), actor=composer, config=config)
    alert = db.get(Alert, imported.alert_id)
    data = export_alert(db, alert.id, config)
    doc, _ = cap.load(data)  # validates against CAP-v1.2.xsd
    assert (doc.identifier, doc.sender, doc.status, doc.msg_type) == (alert.reference, config.cap_sender_id,
                                                                      "Actual", "Alert")
    assert doc.infos[0].description == alert.texts["en"] and doc.infos[0].language == "en"
    polygon = doc.infos[0].areas[0].polygons[0].split()
    assert polygon[0] == polygon[-1] and len(polygon) > 60  # the circle, as a closed ring
    assert export_alert(db, alert.id, config) == data  # <sent> fixed at the first export
    again = import_cap(db, data, actor=composer, config=config)  # our own message coming back
    assert again.action == "duplicate" and again.alert_id == alert.id


def test_an_exercise_exports_as_exercise_and_a_cancel_references_the_original(db, composer, config, factories):
    drill = factories.AlertFactory(mode=AlertMode.EXERCISE, texts={"es": "Simulacro de evacuación"})
    cancel = factories.AlertFactory(kind=AlertKind.CANCEL, corrects_alert_id=drill.id, mode=AlertMode.EXERCISE,
                                    texts={"es": "Simulacro cancelado"})
    doc, _ = cap.load(export_alert(db, drill.id, config))
    assert doc.status == "Exercise"
    cancelled, _ = cap.load(export_alert(db, cancel.id, config))
    assert cancelled.msg_type == "Cancel" and cancelled.references == [(config.cap_sender_id, drill.reference,
                                                                        doc.sent)]
