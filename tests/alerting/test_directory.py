"""The directory on real PostgreSQL+PostGIS: phone numbers, CSV import, groups, opt-out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from alerting.base import csv_cells
from alerting.base.errors import InvalidInput, NotFound
from alerting.base.models import Contact, ContactImport, ContactLocation, Group, GroupKind, GroupMember
from alerting.base.settings import Settings
from alerting.directory import contact_import, contact_rows
from alerting.directory.contact_records import delete_contact
from alerting.directory.contacts import (
    add_members,
    create_group,
    find_contact,
    get_group_by_name,
    import_contacts,
    list_groups,
    member_counts,
    normalize_msisdn,
    opt_in,
    opt_out,
)
from audit.actor import Actor

ACTOR = Actor(kind="system", name="test-directory", interface="cli")


def write(tmp_path: Path, body: str | bytes, name: str = "contactos.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(body.encode("utf-8") if isinstance(body, str) else body)
    return path


def run(db: Session, settings: Settings, path: Path | io.BytesIO, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("group", None)
    kw.setdefault("dry_run", False)
    return import_contacts(db, path, settings=settings, actor=ACTOR, **kw)


def report_rows(path: str | None) -> list[dict[str, str]]:
    """The rejects report's rows as Sirena reads them back (a cell a spreadsheet would evaluate is
    written after a quote, alerting/base/csv_cells.py; test_contacts_cli checks the raw file)."""
    assert path is not None
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv_cells.dict_reader(fh))


def contact(db: Session, msisdn: str) -> Contact:
    found = db.scalar(select(Contact).where(Contact.msisdn == msisdn))
    assert found is not None, msisdn
    db.refresh(found)
    return found


def points(db: Session, msisdn: str) -> dict[str, tuple[float, float]]:
    rows = db.execute(
        select(ContactLocation.label, func.ST_X(ContactLocation.geom), func.ST_Y(ContactLocation.geom),
               func.ST_SRID(ContactLocation.geom))
        .join(Contact, Contact.id == ContactLocation.contact_id).where(Contact.msisdn == msisdn)
    ).all()
    assert all(srid == 4326 for *_, srid in rows)
    return {label: (round(x, 6), round(y, 6)) for label, x, y, _ in rows}


def members(db: Session, group: str) -> set[str]:
    return set(db.scalars(
        select(Contact.msisdn).join(GroupMember, GroupMember.contact_id == Contact.id)
        .join(Group, Group.id == GroupMember.group_id).where(Group.name == group)))


# --- phone numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["+56 9 6123 4567", "961234567", "(9) 6123-4567", "56961234567", "+56961234567"])
def test_normalize_msisdn_gives_e164_for_usual_chilean_spellings(raw: str) -> None:
    assert normalize_msisdn(raw, "CL") == "+56961234567"


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "missing"), ("123", "too short"), ("hola", "not a phone number"),
    ("5.69612E+10", "scientific notation"), ("+56 9 1234 5678", "not a valid number in CL"),
])
def test_normalize_msisdn_refuses_bad_numbers_naming_the_phone_field(raw: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        normalize_msisdn(raw, "CL")
    assert reason in err.value.details["fields"]["phone"]


def test_normalize_msisdn_without_region_needs_a_country_code() -> None:
    assert normalize_msisdn("+44 7911 123456", None) == "+447911123456"
    with pytest.raises(InvalidInput, match="country code"):
        normalize_msisdn("961234567", None)


# --- CSV import ---------------------------------------------------------------------------------

def test_import_imports_good_rows_and_reports_each_bad_number(db: Session, settings: Settings,
                                                             tmp_path: Path) -> None:
    path = write(tmp_path, "name,phone\nAna,+56961234567\nBeto,123\nCata,961234568\nDani,\nEli,hola\n")
    report = run(db, settings, path)
    assert (report.rows_read, report.contacts, report.inserted, report.rejected) == (5, 2, 2, 3)
    assert contact(db, "+56961234567").name == "Ana"
    assert contact(db, "+56961234568").name == "Cata"
    rows = report_rows(report.rejects_path)
    assert [(r["row"], r["column"], r["value"], r["outcome"]) for r in rows] == [
        ("3", "phone", "123", "rejected"), ("5", "phone", "", "rejected"), ("6", "phone", "hola", "rejected")]
    assert rows[0]["reason"] == "too short" and rows[1]["reason"] == "missing"
    assert Path(report.rejects_path).parent == settings.data_dir / "imports"
    record = db.get(ContactImport, report.import_id)
    assert (record.rows_read, record.inserted, record.rejected, record.rejects_path) == (5, 2, 3, report.rejects_path)


def test_duplicate_numbers_in_one_file_are_merged_last_row_wins_and_reported(db: Session, settings: Settings,
                                                                          tmp_path: Path) -> None:
    path = write(tmp_path, "nombre,telefono,grupo,lat,lon\n"
                           "Primero,961234567,brigadas,-33.40,-70.60\n"
                           "Otro,961234568,,,\n"
                           "Segundo,+56 9 6123 4567,salud,-33.50,-70.70\n")
    report = run(db, settings, path)
    assert (report.rows_read, report.duplicates, report.contacts, report.inserted) == (3, 1, 2, 2)
    assert db.scalar(select(func.count()).select_from(Contact).where(Contact.msisdn == "+56961234567")) == 1
    assert contact(db, "+56961234567").name == "Segundo"
    assert points(db, "+56961234567") == {"home": (-70.70, -33.50)}
    assert "+56961234567" in members(db, "brigadas") and "+56961234567" in members(db, "salud")
    [dup] = report_rows(report.rejects_path)
    assert (dup["row"], dup["value"], dup["outcome"]) == ("2", "+56961234567", "duplicate")
    assert "row 4" in dup["reason"]


def test_bom_semicolons_spanish_headers_and_decimal_commas_are_understood(db: Session, settings: Settings,
                                                                         tmp_path: Path) -> None:
    body = "\ufeffNombre;Teléfono;Idioma;Latitud;Longitud;Comuna\nJosé Pérez;9 6123 4567;inglés;-33,45;-70,66;Ñuñoa\n"
    report = run(db, settings, write(tmp_path, body))
    assert (report.delimiter, report.inserted, report.rejected, report.warnings) == (";", 1, 0, 0)
    found = contact(db, "+56961234567")
    assert (found.name, found.language, found.attributes) == ("José Pérez", "en", {"comuna": "Ñuñoa"})
    assert points(db, "+56961234567") == {"home": (-70.66, -33.45)}
    assert report.rejects_path is None


def test_other_columns_become_jsonb_attributes_queryable_with_containment(db: Session, settings: Settings,
                                                                         tmp_path: Path) -> None:
    path = write(tmp_path, "celular,Rol,Distrito,Unidad Nº\n961234567,brigadista,Centro,5\n961234568,,Norte,\n"
                           '961234569,"dice ""jefe"" \\ ñ\t\u2028 fin",,\n')
    run(db, settings, path)
    assert contact(db, "+56961234567").attributes == {"rol": "brigadista", "distrito": "Centro", "unidad_no": "5"}
    assert contact(db, "+56961234568").attributes == {"distrito": "Norte"}  # blank cells are not attributes
    assert contact(db, "+56961234569").attributes == {"rol": 'dice "jefe" \\ ñ\t\u2028 fin'}
    hits = db.scalars(text("SELECT msisdn FROM contacts WHERE attributes @> CAST(:q AS jsonb)"),
                      {"q": '{"rol": "brigadista"}'}).all()
    assert hits == ["+56961234567"]
    assert db.scalar(text("SELECT jsonb_typeof(attributes) FROM contacts WHERE msisdn = '+56961234567'")) == "object"


def test_locations_are_points_labelled_home_work_or_by_the_label_column(db: Session, settings: Settings,
                                                                       tmp_path: Path) -> None:
    path = write(tmp_path, "telefono,lat,lon,etiqueta,lat_trabajo,lon_trabajo\n"
                           "961234567,-33.45,-70.66,,-33.42,-70.61\n"
                           "961234568,-33.50,-70.70,cuartel,,\n"
                           "961234569,-95,-70.70,,,\n")
    report = run(db, settings, path)
    assert points(db, "+56961234567") == {"home": (-70.66, -33.45), "work": (-70.61, -33.42)}
    assert points(db, "+56961234568") == {"station": (-70.70, -33.50)}
    assert points(db, "+56961234569") == {}  # a bad latitude drops the location, not the contact
    assert report.locations == 3 and report.warnings == 1
    [warning] = report_rows(report.rejects_path)
    assert (warning["row"], warning["column"], warning["value"], warning["outcome"]) == ("4", "lat", "-95", "warning")


def test_group_column_creates_missing_static_groups_and_adds_members(db: Session, settings: Settings,
                                                                    tmp_path: Path) -> None:
    create_group(db, "salud", actor=ACTOR)
    create_group(db, "vecinos centro", kind=GroupKind.DYNAMIC, criterion={"attr": "distrito", "eq": "Centro"},
                 actor=ACTOR)
    path = write(tmp_path, "telefono,grupo\n961234567,brigadas|salud\n961234568,vecinos centro\n961234569,\n")
    report = run(db, settings, path, group="importados")
    assert report.groups_created == ["brigadas", "importados"]
    assert get_group_by_name(db, "brigadas").kind is GroupKind.STATIC
    assert members(db, "brigadas") == {"+56961234567"}
    assert members(db, "salud") == {"+56961234567"}
    assert members(db, "vecinos centro") == set()  # dynamic: members come from its criterion
    assert members(db, "importados") == {"+56961234567", "+56961234568", "+56961234569"}
    assert report.memberships == 5
    assert [r["value"] for r in report_rows(report.rejects_path)] == ["vecinos centro"]


def test_import_into_a_dynamic_group_is_refused(db: Session, settings: Settings, tmp_path: Path) -> None:
    create_group(db, "dinamico", kind="dynamic", criterion={"attr": "x", "exists": True}, actor=ACTOR)
    with pytest.raises(InvalidInput) as err:
        run(db, settings, write(tmp_path, "telefono\n961234567\n"), group="dinamico")
    assert "group" in err.value.details["fields"]


def test_dry_run_reports_but_writes_nothing(db: Session, settings: Settings, tmp_path: Path) -> None:
    path = write(tmp_path, "telefono,grupo,lat,lon\n961234567,nuevo,-33.4,-70.6\n123,,,\n")
    before = db.scalar(select(func.count()).select_from(ContactImport))
    report = run(db, settings, path, dry_run=True)
    assert (report.dry_run, report.inserted, report.rejected, report.locations) == (True, 1, 1, 1)
    assert report.groups_created == ["nuevo"] and report.import_id is None
    assert db.scalar(select(func.count()).select_from(Contact)) == 0
    assert db.scalar(select(func.count()).select_from(Group)) == 0
    assert db.scalar(select(func.count()).select_from(ContactLocation)) == 0
    assert db.scalar(select(func.count()).select_from(ContactImport)) == before
    assert len(report_rows(report.rejects_path)) == 1


def test_reimport_updates_contacts_instead_of_duplicating_them(db: Session, settings: Settings,
                                                               tmp_path: Path) -> None:
    first = write(tmp_path, "nombre,telefono,idioma,rol,lat,lon,lat_trabajo,lon_trabajo\n"
                            "Ana,961234567,en,brigadista,-33.4,-70.6,-33.3,-70.5\n"
                            "Beto,961234568,,,,,,\n", "uno.csv")
    run(db, settings, first)
    opt_out(db, "+56961234568", "pidió no recibir", ACTOR)
    second = write(tmp_path, "telefono,nombre,distrito,lat,lon\n961234567,Ana María,Centro,-33.41,-70.61\n"
                             "961234568,Beto,,,\n", "dos.csv")
    report = run(db, settings, second)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 1)
    assert db.scalar(select(func.count()).select_from(Contact)) == 2
    ana = contact(db, "+56961234567")
    assert ana.name == "Ana María" and ana.language == "en"  # no language column: kept
    assert ana.attributes == {"rol": "brigadista", "distrito": "Centro"}
    assert points(db, "+56961234567") == {"home": (-70.61, -33.41), "work": (-70.5, -33.3)}
    assert contact(db, "+56961234568").opted_out_at is not None  # an import never re-subscribes
    again = run(db, settings, second)
    assert (again.inserted, again.updated, again.unchanged, again.locations) == (0, 0, 2, 0)
    assert points(db, "+56961234567") == {"home": (-70.61, -33.41), "work": (-70.5, -33.3)}


def test_non_mobile_number_is_imported_with_a_warning(db: Session, settings: Settings, tmp_path: Path) -> None:
    report = run(db, settings, write(tmp_path, "telefono\n600123456\n"))
    assert (report.inserted, report.warnings, report.rejected) == (1, 1, 0)
    [row] = report_rows(report.rejects_path)
    assert row["outcome"] == "warning" and "not a mobile number" in row["reason"]


def test_landlines_and_foreign_numbers_are_imported_each_with_its_warning(db: Session, settings: Settings,
                                                                         tmp_path: Path) -> None:
    rows = ["telefono", "961234567",  # a Chilean mobile: nothing to say
            "+56 2 2123 4567",  # a Santiago landline: phonenumbers cannot tell it from a mobile in CL
            "+1 202 555 0143",  # a US number
            "+54 11 4321 5678",  # an Argentine landline
            "+54 9 11 5555 0000"]  # an Argentine mobile
    report = run(db, settings, write(tmp_path, "\n".join(rows) + "\n"))
    assert (report.inserted, report.rejected, report.warnings) == (5, 0, 5)  # one per doubt
    warned = {(r["row"], r["reason"]) for r in report_rows(report.rejects_path)}
    assert warned == {
        ("3", "a landline by its number (mobile numbers in CL start with 9); SMS may not reach it"),
        ("4", "a number of US, not CL: your carriers may not reach it, or only at international rates"),
        ("5", "not a mobile number (fixed line); SMS may not reach it"),
        ("5", "a number of AR, not CL: your carriers may not reach it, or only at international rates"),
        ("6", "a number of AR, not CL: your carriers may not reach it, or only at international rates"),
    }
    for number in ("+56221234567", "+12025550143", "+541143215678", "+5491155550000"):
        assert contact(db, number) is not None  # imported all the same: the operator decides


def test_a_row_with_more_values_than_columns_is_rejected(db: Session, settings: Settings, tmp_path: Path) -> None:
    report = run(db, settings, write(tmp_path, "nombre,telefono\nPérez, Juan,961234567\nAna,961234568\n"))
    assert (report.inserted, report.rejected) == (1, 1)
    assert "3 values but 2 columns" in report_rows(report.rejects_path)[0]["reason"]


@pytest.mark.parametrize(("body", "reason"), [
    (b"", "empty"),
    (b"\xef\xbb\xbf\n\n", "empty"),
    (b"\x00\x01\x02binary\x00" * 50, "binary"),
    (b"PK\x03\x04" + b"\x00" * 100, "Excel"),
    ("nombre,telefono\nJosé,961234567\n".encode("latin-1"), "not UTF-8"),
    (b"nombre,direccion\nAna,Calle 1\n", "no phone column"),
    (b"telefono,celular\n1,2\n", "more than one phone column"),
    (b"telefono,lat\n961234567,-33\n", "no matching longitude"),
])
def test_a_file_that_is_not_a_contacts_csv_is_refused_saying_why(db: Session, settings: Settings, tmp_path: Path,
                                                                body: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        run(db, settings, write(tmp_path, body))
    assert reason in err.value.details["fields"]["file"]
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_row_and_size_caps_refuse_the_whole_file(db: Session, settings: Settings, tmp_path: Path) -> None:
    path = write(tmp_path, "telefono\n123\n961234568\n961234569\n", "tope-de-filas.csv")
    with pytest.raises(InvalidInput, match="rows an import accepts"):
        run(db, settings, path, max_rows=2)
    assert not list((settings.data_dir / "imports").glob("*tope-de-filas*"))  # no report of a refused import
    with pytest.raises(InvalidInput, match="bytes"):
        run(db, settings, path, max_bytes=10)


def test_bad_bytes_after_the_first_64_kb_reject_only_their_rows(db: Session, settings: Settings,
                                                                tmp_path: Path) -> None:
    padding = "".join(f"9612{i:05d}\n" for i in range(8000)).encode()  # ~80 KB of good rows first
    report = run(db, settings, write(tmp_path, b"telefono,nombre\n" + padding.replace(b"\n", b",ok\n")
                                     + b"961299998,Jos\xe9\n961299999,Ana\x00\n"))
    assert (report.inserted, report.rejected) == (8000, 2)
    reasons = {r["reason"] for r in report_rows(report.rejects_path)}
    assert reasons == {"not valid UTF-8 text; save the file as CSV UTF-8"}


def test_a_binary_stream_is_imported_like_a_file(db: Session, settings: Settings) -> None:
    report = run(db, settings, io.BytesIO("teléfono\n961234567\n".encode()))
    assert report.inserted == 1 and report.filename == "upload.csv"


@pytest.mark.parametrize("parallel", [False, True], ids=["in-process", "worker-processes"])
def test_every_chunk_and_batch_reaches_the_directory(db: Session, settings: Settings, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, parallel: bool) -> None:
    monkeypatch.setattr(contact_rows, "CHUNK_ROWS", 7)
    monkeypatch.setattr(contact_import, "BATCH_ROWS", 20)
    monkeypatch.setattr(contact_rows, "PARALLEL_MIN_BYTES", 0 if parallel else 10**12)
    rows = "".join(f"9612{i:05d},{-33 - i / 1000},-70.6,g{i % 3}\n" for i in range(50))
    report = run(db, settings, write(tmp_path, "telefono,lat,lon,grupo\n" + rows + "123,,,\n"))
    assert (report.rows_read, report.inserted, report.locations, report.memberships) == (51, 50, 50, 50)
    assert db.scalar(select(func.count()).select_from(ContactLocation)) == 50
    assert [r["row"] for r in report_rows(report.rejects_path)] == ["52"]


def test_import_is_recorded_in_the_audit_trail(db: Session, settings: Settings, tmp_path: Path) -> None:
    report = run(db, settings, write(tmp_path, "telefono\n961234567\n"))
    payload = db.scalar(text("SELECT payload FROM audit.events WHERE action = 'contacts.imported'"
                             " AND subject_id = :id"), {"id": str(report.import_id)})
    assert payload["inserted"] == 1 and payload["filename"].endswith("contactos.csv")


# --- groups, look-up, opt-out -------------------------------------------------------------------

def test_create_group_validates_name_kind_and_criterion(db: Session) -> None:
    create_group(db, "brigadas", actor=ACTOR)
    with pytest.raises(InvalidInput, match="already exists"):
        create_group(db, " brigadas ", actor=ACTOR)
    with pytest.raises(InvalidInput) as err:
        create_group(db, "x", kind="dynamic", actor=ACTOR)
    assert err.value.details["fields"] == {"criterion": "required"}
    with pytest.raises(InvalidInput) as err:
        create_group(db, "x", kind="dynamic", criterion={"attr": "rol", "in": "no-es-lista"}, actor=ACTOR)
    assert "criterion.in" in err.value.details["fields"]
    with pytest.raises(InvalidInput):
        create_group(db, "x", kind="weird", actor=ACTOR)
    with pytest.raises(InvalidInput):
        create_group(db, "", actor=ACTOR)
    assert [g.name for g in list_groups(db)] == ["brigadas"]


def test_add_members_adds_by_number_once_and_refuses_unknown_numbers(db: Session, settings: Settings,
                                                                    tmp_path: Path) -> None:
    run(db, settings, write(tmp_path, "telefono\n961234567\n961234568\n"))
    group = create_group(db, "salud", actor=ACTOR)
    assert add_members(db, "salud", ["+56 9 6123 4567", "961234568"], region="CL", actor=ACTOR) == 2
    assert add_members(db, group, ["+56961234567"]) == 0
    assert member_counts(db)[group.id] == 2
    with pytest.raises(NotFound, match=r"\+56961234569"):
        add_members(db, group, ["+56961234569"])
    with pytest.raises(NotFound):
        get_group_by_name(db, "no-existe")


def test_deleting_contacts_removes_their_locations_and_memberships(db: Session, settings: Settings,
                                                                   tmp_path: Path) -> None:
    run(db, settings, write(tmp_path, "telefono,grupo,lat,lon,lat_trabajo,lon_trabajo\n"
                                      "961234567,salud,-33.4,-70.6,-33.5,-70.7\n961234568,salud,-33.4,-70.6,,\n"
                                      "961234569,salud,-33.4,-70.6,,\n"))
    delete_contact(db, contact(db, "+56961234567").id, actor=ACTOR)
    db.execute(text("DELETE FROM contacts WHERE msisdn = '+56961234568'"))
    assert members(db, "salud") == {"+56961234569"}
    assert db.scalar(select(func.count()).select_from(ContactLocation)) == 1
    assert db.scalar(select(func.count()).select_from(GroupMember)) == 1


def test_opt_out_and_opt_in_are_idempotent_and_audited(db: Session, settings: Settings, tmp_path: Path) -> None:
    run(db, settings, write(tmp_path, "telefono\n961234567\n"))
    first = opt_out(db, "9 6123 4567", "STOP por SMS", ACTOR, region="CL")
    again = opt_out(db, "+56961234567", "otra razón", ACTOR)
    assert again.opted_out_at == first.opted_out_at and again.opted_out_reason == "STOP por SMS"
    assert opt_in(db, "+56961234567", ACTOR).opted_out_at is None
    actions = db.scalars(text("SELECT action FROM audit.events WHERE subject_type = 'contact' ORDER BY id")).all()
    assert actions == ["contact.opted_out", "contact.opted_in"]
    with pytest.raises(NotFound):
        opt_out(db, "+56961234599", "x", ACTOR)
    assert find_contact(db, "+56961234599") is None
