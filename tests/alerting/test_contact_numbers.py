"""A contact's second and third numbers: the CSV import's columns, the directory services, the rules
that keep each number with one contact."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerting.base.errors import InvalidInput
from alerting.base.models import Contact, ContactNumber
from alerting.base.settings import Settings
from alerting.directory import contact_numbers
from alerting.directory.contact_csv import map_columns
from alerting.directory.contact_records import create_contact, delete_contact, update_contact
from alerting.directory.contacts import find_contact, opt_out
from tests.alerting.test_directory import ACTOR, report_rows, run, write


def numbers(db: Session, first: str) -> list[str]:
    contact = db.scalar(select(Contact).where(Contact.msisdn == first))
    assert contact is not None, first
    return [first, *contact_numbers.more_numbers(db, contact.id)]


@pytest.mark.parametrize("headers,expected", [
    (["Teléfono", "Teléfono 2", "Teléfono 3"], [(2, 1), (3, 2)]),
    (["phone", "phone2", "phone_3"], [(2, 1), (3, 2)]),
    (["celular", "segundo teléfono", "tercer teléfono"], [(2, 1), (3, 2)]),
    (["telefono1", "movil2", "Other phone"], None),  # two columns for the second number
])
def test_second_and_third_number_columns_are_found_in_spanish_and_english(headers, expected) -> None:
    if expected is None:
        with pytest.raises(InvalidInput, match="more than one phone 2 column"):
            map_columns(headers)
        return
    layout = map_columns(headers)
    assert (layout.phone, layout.more_phones, layout.attributes) == (0, expected, [])


def test_import_stores_each_contacts_numbers_in_order_and_reports_each_bad_one(db: Session, settings: Settings,
                                                                                tmp_path: Path) -> None:
    path = write(tmp_path, "nombre,telefono,telefono2,telefono3\n"
                           "Ana,961234501,961234502,961234503\n"  # three good numbers (the second: see row 6)
                           "Beto,961234511,hola,961234513\n"  # a bad second: the third stays third
                           "Cata,961234521,+56 9 6123 4521,\n"  # the same number twice
                           "Dani,961234531,+56 2 2123 4567,+1 202 555 0143\n"  # a landline and a foreign number
                           "Eli,961234541,961234502,\n")  # Ana's second number (row 2)
    report = run(db, settings, path)
    assert (report.rows_read, report.inserted, report.rejected, report.numbers) == (5, 5, 0, 5)
    assert numbers(db, "+56961234501") == ["+56961234501", "+56961234503"]  # its second went to row 6
    assert numbers(db, "+56961234511") == ["+56961234511", "+56961234513"]
    assert numbers(db, "+56961234521") == ["+56961234521"]
    assert numbers(db, "+56961234531") == ["+56961234531", "+56221234567", "+12025550143"]
    assert numbers(db, "+56961234541") == ["+56961234541", "+56961234502"]
    assert db.scalar(select(ContactNumber.position).where(ContactNumber.msisdn == "+56961234513")) == 3
    got = [(r["row"], r["column"], r["value"], r["outcome"], r["reason"]) for r in report_rows(report.rejects_path)]
    assert ("3", "telefono2", "hola", "warning", "not a phone number; this number not imported") in got
    assert ("4", "telefono2", "+56 9 6123 4521", "warning",
            'the same number as column "telefono"; not imported twice') in got
    assert {(r[0], r[1]) for r in got if "SMS may not reach it" in r[4] or "not CL" in r[4]} == \
        {("5", "telefono2"), ("5", "telefono3")}
    assert ("2", "telefono2", "+56961234502", "warning", "is on row 6 too, which keeps it") in got


def test_numbers_another_contact_has_are_left_out_and_a_row_keyed_by_one_is_rejected(db: Session, settings: Settings,
                                                                                      tmp_path: Path) -> None:
    run(db, settings, write(tmp_path, "phone,phone2\n961234601,961234602\n961234611,\n", "before.csv"))
    path = write(tmp_path, "phone,phone2,phone3\n"
                           "961234602,961234699,\n"  # the phone is already someone's second number
                           "961234621,961234611,961234601\n"  # another contact's first number, twice
                           "961234631,961234632,961234621\n")  # row 3's phone
    report = run(db, settings, path)
    assert (report.rejected, report.inserted, report.numbers) == (1, 2, 1)
    assert find_contact(db, "+56961234602").msisdn == "+56961234601"  # still its own
    assert numbers(db, "+56961234621") == ["+56961234621"]
    assert numbers(db, "+56961234631") == ["+56961234631", "+56961234632"]
    got = {(r["row"], r["column"], r["outcome"], r["reason"]) for r in report_rows(report.rejects_path)}
    assert got == {
        ("2", "phone", "rejected", "already number 2 of another contact (…4601); remove it there first"),
        ("3", "phone2", "warning", "is already the first number of another contact; not imported"),
        ("3", "phone3", "warning", "is already the first number of another contact; not imported"),
        ("4", "phone3", "warning", "is the phone of row 3; not imported as a further number"),
    }


def test_a_reimport_keeps_blank_positions_replaces_given_ones_and_moves_a_number(db: Session, settings: Settings,
                                                                                tmp_path: Path) -> None:
    run(db, settings, write(tmp_path, "phone,phone2,phone3\n961234701,961234702,961234703\n", "a.csv"))
    report = run(db, settings, write(tmp_path, "phone,phone2,phone3\n961234701,,961234709\n", "b.csv"))
    assert numbers(db, "+56961234701") == ["+56961234701", "+56961234702", "+56961234709"]
    assert report.numbers == 1
    report = run(db, settings, write(tmp_path, "phone,phone2\n961234701,961234709\n", "c.csv"))
    assert numbers(db, "+56961234701") == ["+56961234701", "+56961234709"]  # moved up from third
    again = run(db, settings, write(tmp_path, "phone,phone2\n961234701,961234709\n", "d.csv"))
    assert (report.numbers, again.numbers, again.unchanged) == (1, 0, 1)


def test_a_dry_run_counts_the_numbers_and_writes_none(db: Session, settings: Settings, tmp_path: Path) -> None:
    report = run(db, settings, write(tmp_path, "phone,phone2\n961234801,961234802\n"), dry_run=True)
    assert report.numbers == 1
    assert db.scalar(select(ContactNumber).where(ContactNumber.msisdn == "+56961234802")) is None


def test_a_mailed_recipient_list_does_not_apply_further_numbers(db: Session, settings: Settings,
                                                                tmp_path: Path) -> None:
    report = run(db, settings, write(tmp_path, "phone,phone2\n961234851,961234852\n"), group="lista",
                 recipients_only=True)
    assert report.ignored_columns == ["phone2"] and numbers(db, "+56961234851") == ["+56961234851"]


def test_the_services_check_each_number_naming_its_field(db: Session) -> None:
    ana = create_contact(db, "961234901", more_numbers=["961234902", "961234903"], region="CL", actor=ACTOR)
    assert numbers(db, "+56961234901") == ["+56961234901", "+56961234902", "+56961234903"]
    cases = [(["961234902", "961234902"], "more_numbers[1]", "the same number twice"),
             (["961234901"], "more_numbers[0]", "the same number twice"),
             (["hola"], "more_numbers[0]", "not a phone number"),
             (["1", "2", "3"], "more_numbers", "at most 2")]
    beto = create_contact(db, "961234911", region="CL", actor=ACTOR)
    cases_beto = [(["961234902"], "more_numbers[0]", "already a number of another contact"),
                  (["961234901"], "more_numbers[0]", "already a number of another contact")]
    for contact, wanted, field, reason in [(ana, *c) for c in cases] + [(beto, *c) for c in cases_beto]:
        with pytest.raises(InvalidInput) as err:
            update_contact(db, contact.id, {"more_numbers": wanted}, actor=ACTOR, region="CL")
        assert reason in err.value.details["fields"][field], (wanted, err.value.details)
    with pytest.raises(InvalidInput) as err:
        create_contact(db, "961234903", region="CL", actor=ACTOR)  # someone's third number
    assert err.value.details["fields"] == {"msisdn": "already number 3 of another contact"}
    update_contact(db, ana.id, {"more_numbers": ["961234903"]}, actor=ACTOR, region="CL")
    assert numbers(db, "+56961234901") == ["+56961234901", "+56961234903"]
    update_contact(db, beto.id, {"more_numbers": ["961234902"]}, actor=ACTOR, region="CL")  # free now
    events = db.execute(text("SELECT payload FROM audit.events WHERE action = 'contact.numbers_changed' "
                             "ORDER BY seq NULLS LAST, id")).scalars().all()
    assert events[-1] == {"before": [], "after": ["…4902"]}  # last 4 digits only


def test_a_number_is_one_contacts_even_written_around_the_services(db: Session) -> None:
    ana = create_contact(db, "961235001", region="CL", actor=ACTOR)
    beto = create_contact(db, "961235011", region="CL", actor=ACTOR)
    with pytest.raises(IntegrityError, match="already the first number of another contact"), db.begin_nested():
        db.execute(text("INSERT INTO contact_numbers (contact_id, position, msisdn) VALUES (:c, 2, :m)"),
                   {"c": beto.id, "m": ana.msisdn})


def test_any_number_finds_the_contact_to_opt_out_and_deleting_it_removes_its_numbers(db: Session) -> None:
    ana = create_contact(db, "961235101", more_numbers=["961235102"], region="CL", actor=ACTOR)
    assert opt_out(db, "+56 9 6123 5102", "pidió la baja por teléfono", ACTOR, region="CL").id == ana.id
    delete_contact(db, ana.id, actor=ACTOR)
    assert db.scalar(select(ContactNumber).where(ContactNumber.msisdn == "+56961235102")) is None
