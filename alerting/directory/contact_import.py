"""Contact import: a CSV streamed into TEMP staging tables with COPY, then merged with set statements.

All in the caller's transaction:
 1. `open_contacts_csv` refuses what is not a contacts CSV; `RowChecker` checks each row in Python.
 2. Good rows go by COPY, in batches, into three TEMP tables (contacts, locations, group names);
    issues go to the rejects CSV under `Settings.data_dir/imports/` as they are found.
 3. A number found on several rows: the last row wins, earlier ones leave staging and are reported.
    Group names from all of its rows are kept (memberships add up).
 4. A contact's second and third numbers (`telefono2`, `phone3`…) that another contact has, or
    another row of the file, are dropped with a warning naming the column; a row whose phone is
    already another contact's second or third number is rejected.
 5. Merge: missing static groups created; ONE `INSERT … ON CONFLICT (msisdn) DO UPDATE` into
    contacts; ONE statement replacing the locations with the same label; ONE for the further
    numbers at their positions (a blank cell keeps what the directory has); ONE INSERT of memberships.
 6. A ContactImport row and the audit event "contacts.imported".
The import never touches opt-out state: a re-import cannot re-subscribe someone who opted out.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerting.base import csv_cells
from alerting.base.db import rowcount
from alerting.base.errors import InvalidInput
from alerting.base.models import ContactImport, Group, GroupKind
from alerting.base.phones import mask_msisdn
from alerting.base.settings import Settings
from alerting.directory import permissions
from alerting.directory.contact_csv import CsvFile, open_contacts_csv
from alerting.directory.contact_rows import CheckedChunk, Issue, RowChecker, checked_chunks
from audit import trail
from audit.actor import Actor

MAX_BYTES = 2 * 1024**3
MAX_ROWS = 10_000_000
MAX_NEW_GROUPS = 1000
BATCH_ROWS = 25_000
WORK_MEM = "256MB"
DEFAULT_LANGUAGE = "es"
REPORT_COLUMNS = ("row", "column", "value", "reason", "outcome")

# progress(phase, done, total): phase "read" counts bytes of the file (total None for a stream of
# unknown size); "merge" is called once when reading is over and the set statements start.
Progress = Callable[[str, int, int | None], None]


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do). Counts are rows of the file or contacts."""

    filename: str
    dry_run: bool
    delimiter: str = ","
    group: str | None = None
    rows_read: int = 0
    rejected: int = 0  # rows not imported: no usable phone number
    warnings: int = 0  # values dropped or doubtful (non-mobile number); the row was imported
    duplicates: int = 0  # rows superseded by a later row with the same number
    contacts: int = 0  # distinct numbers imported
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    locations: int = 0  # locations written (new or moved); a dry run: locations in the file
    numbers: int = 0  # second and third numbers written (new or moved); a dry run: those in the file
    memberships: int = 0  # new group memberships
    groups_created: list[str] = field(default_factory=list)
    # recipients_only: columns of the file that were not applied, and numbers already in the
    # directory that were left as they are.
    ignored_columns: list[str] = field(default_factory=list)
    left_as_is: int = 0
    rejects_path: str | None = None  # the report of rejects, warnings and duplicates; None if none
    import_id: int | None = None
    seconds: float = 0.0
    phases_s: dict[str, float] = field(default_factory=dict)  # where the time went: read, dedupe, merge…

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_contacts(
    session: Session,
    source: str | Path | IO[bytes],
    *,
    settings: Settings,
    group: str | None = None,
    dry_run: bool = False,
    actor: Actor,
    progress: Progress | None = None,
    max_rows: int = MAX_ROWS,
    max_bytes: int = MAX_BYTES,
    recipients_only: bool = False,
) -> ImportReport:
    """Import contacts from a CSV path or binary stream; every good row, every bad row reported.

    `group` adds every imported contact to that static group (created if missing). With `dry_run`
    the file is checked and staged and the report written, but nothing in the directory changes,
    no ContactImport row and no audit event are written. Raises InvalidInput(fields={"file": ...})
    for a file that is not a contacts CSV or is over `max_bytes`/`max_rows` (nothing is imported),
    and InvalidInput(fields={"group": ...}) when `group` names a dynamic group.

    `recipients_only` (a list mailed with an alert, by someone who may not edit the directory):
    the file only names recipients. New numbers are added (with their name and language) and put
    in `group`; numbers already in the directory are left as they are; the file's group, location
    and attribute columns are not applied (`report.ignored_columns` names them).
    """
    if recipients_only and group is None:
        raise ValueError("recipients_only needs the group the recipients go in")
    # A mailed list of recipients is part of composing an alert; changing the directory is not.
    permissions.require(actor, "alerts.compose" if recipients_only else "contacts.write", "import contacts")
    started = time.monotonic()
    dynamic = frozenset(session.scalars(select(Group.name).where(Group.kind == GroupKind.DYNAMIC)))
    if group is not None:
        group = " ".join(group.split())
        if group in dynamic:
            raise InvalidInput(f'group: "{group}" is a dynamic group; its members come from its criterion',
                               fields={"group": "is a dynamic group"})
        if not group or len(group) > 100:
            raise InvalidInput("group: a group name has 1 to 100 characters", fields={"group": "1 to 100 characters"})
    csv_file, handle = open_contacts_csv(source, max_bytes)
    report = ImportReport(filename=str(source) if isinstance(source, str | Path) else csv_file.name,
                          dry_run=dry_run, delimiter=csv_file.delimiter, group=group)
    if recipients_only:
        report.ignored_columns = _directory_columns(csv_file.layout)
    rejects = _RejectsFile(settings.data_dir / "imports", csv_file.name)
    try:
        session.flush()
        stage = _Staging(session)
        lap = _Laps(report)
        try:
            _read(csv_file, RowChecker(csv_file.layout, settings.default_region, dynamic), stage, rejects,
                  report, max_rows, progress)
        finally:
            if handle is not None:
                handle.close()
        report.phases_s["copy"] = round(stage.copy_s, 3)
        lap("read")
        if progress:
            progress("merge", 0, None)
        report.duplicates = stage.drop_duplicates(rejects, csv_file.layout.headers[csv_file.layout.phone])
        lap("duplicates")
        if csv_file.layout.more_phones and not recipients_only:
            stage.drop_number_clashes(rejects, report, csv_file.layout)
            lap("numbers_checked")
        report.contacts = report.rows_read - report.rejected - report.duplicates
        rejects.close(report)
        if dry_run:
            _estimate(session, stage, report)
        else:
            if recipients_only:
                _add_recipients(session, stage, report, lap)
            else:
                _merge(session, stage, report, lap)
            _record(session, report, actor, started)
            lap("record")
        stage.drop()
    except BaseException:
        rejects.discard()  # nothing was imported: a report of it would mislead
        raise
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _record(session: Session, report: ImportReport, actor: Actor, started: float) -> None:
    """The ContactImport row and the audit event, in the import's transaction."""
    record = ContactImport(filename=report.filename[:1000], rows_read=report.rows_read, inserted=report.inserted,
                           updated=report.updated, rejected=report.rejected, duplicates=report.duplicates,
                           rejects_path=report.rejects_path, group_id=_group_id(session, report.group))
    session.add(record)
    session.flush()
    report.import_id = record.id
    report.seconds = round(time.monotonic() - started, 3)
    trail.append(session, actor=actor, action="contacts.imported", subject_type="contact_import",
                 subject_id=record.id, payload=_audit_payload(report))


def _read(csv_file: CsvFile, checker: RowChecker, stage: _Staging, rejects: _RejectsFile,
          report: ImportReport, max_rows: int, progress: Progress | None) -> None:
    """Check the rows (in worker processes for a big file) and stage the good ones by COPY."""
    for chunk in checked_chunks(csv_file, checker, max_rows=max_rows):
        report.rows_read += chunk.rows
        for issue in chunk.issues:
            rejects.write(issue, report)
        stage.add(chunk)
        if stage.pending >= BATCH_ROWS:
            stage.flush()
            if progress:
                progress("read", csv_file.bytes_read, csv_file.size)
    stage.flush()
    if progress:
        progress("read", csv_file.bytes_read, csv_file.size)


class _Staging:
    """TEMP tables filled by COPY. Dropped at commit in any case, and explicitly when done."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cursor = session.connection().connection.cursor()
        # The grouping of duplicates and the joins of a million staged rows with contacts hash in
        # memory instead of spilling to disk in batches (default 4 MB); for this transaction only.
        self.cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        token = secrets.token_hex(4)
        self.contacts, self.locations = f"import_contacts_{token}", f"import_locations_{token}"
        self.groups, self.dups = f"import_groups_{token}", f"import_duplicates_{token}"
        self.numbers = f"import_numbers_{token}"
        self.cursor.execute(
            f"CREATE TEMP TABLE {self.contacts} (row_no integer NOT NULL, msisdn text NOT NULL, name text,"
            " language text, attributes jsonb) ON COMMIT DROP;"
            f"CREATE TEMP TABLE {self.locations} (row_no integer NOT NULL, msisdn text NOT NULL, label text NOT NULL,"
            " lon double precision NOT NULL, lat double precision NOT NULL) ON COMMIT DROP;"
            f"CREATE TEMP TABLE {self.groups} (msisdn text NOT NULL, name text NOT NULL) ON COMMIT DROP;"
            f"CREATE TEMP TABLE {self.numbers} (row_no integer NOT NULL, msisdn text NOT NULL,"
            " position smallint NOT NULL, number text NOT NULL) ON COMMIT DROP;"
            f"CREATE TEMP TABLE {self.dups} (row_no integer NOT NULL, msisdn text NOT NULL,"
            " kept_row integer NOT NULL) ON COMMIT DROP"
        )
        self._buffers = [io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()]
        self.pending = 0
        self.copy_s = 0.0

    def add(self, chunk: CheckedChunk) -> None:
        for buffer, data in zip(self._buffers, (*chunk[:3], chunk.numbers), strict=True):
            buffer.write(data)
        self.pending += chunk.good

    def flush(self) -> None:
        started = time.monotonic()
        for table, columns, buffer in zip(
            (self.contacts, self.locations, self.groups, self.numbers),
            ("row_no, msisdn, name, language, attributes", "row_no, msisdn, label, lon, lat", "msisdn, name",
             "row_no, msisdn, position, number"),
            self._buffers, strict=True,
        ):
            if buffer.tell():
                buffer.seek(0)
                self.cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
                buffer.seek(0)
                buffer.truncate()
        self.pending = 0
        self.copy_s += time.monotonic() - started

    def drop_duplicates(self, rejects: _RejectsFile, phone_header: str) -> int:
        """Keep the last row of each number; report the others. Returns how many rows were dropped."""
        cur = self.cursor
        cur.execute(
            f"WITH kept AS (SELECT msisdn, max(row_no) AS row_no FROM {self.contacts}"
            "  GROUP BY msisdn HAVING count(*) > 1),"
            f" gone AS (DELETE FROM {self.contacts} s USING kept k"
            "  WHERE s.msisdn = k.msisdn AND s.row_no < k.row_no RETURNING s.row_no, s.msisdn, k.row_no)"
            f" INSERT INTO {self.dups} SELECT * FROM gone"
        )
        count = cur.rowcount
        if count:
            cur.execute(f"DELETE FROM {self.locations} l USING {self.dups} d WHERE l.row_no = d.row_no")
            cur.execute(f"DELETE FROM {self.numbers} n USING {self.dups} d WHERE n.row_no = d.row_no")
            # psycopg2 (untyped) named cursor: server-side, read itersize rows at a time
            named: Any = self.session.connection().connection.cursor(name=f"{self.dups}_read")
            named.itersize = 10_000
            named.execute(f"SELECT row_no, msisdn, kept_row FROM {self.dups} ORDER BY row_no")
            for row_no, msisdn, kept in named:
                rejects.write(Issue(row_no, phone_header, msisdn,
                                    f"same number as row {kept}, which is kept (the last row wins)", "duplicate"))
            named.close()
        cur.execute(f"ANALYZE {self.contacts}; ANALYZE {self.locations}; ANALYZE {self.groups}; "
                    f"ANALYZE {self.numbers}")
        return count

    def drop_number_clashes(self, rejects: _RejectsFile, report: ImportReport, layout: Any) -> None:
        """Keep each number with one contact (alerting.directory.contact_numbers), against the
        directory as it is and the rest of the file; every row or number left out is reported.

        A row whose phone is another contact's second or third number is rejected (its contact
        cannot be keyed by a number someone else has). A second or third number is dropped, with a
        warning naming its column, when it is the phone of a row of the file or of another contact
        in the directory, another contact's further number, or a further number of a later row
        too (the last row keeps it, as for phones).
        """
        cur, headers = self.cursor, layout.headers
        columns = {position: headers[i] for position, i in layout.more_phones}
        cur.execute(
            f"DELETE FROM {self.contacts} s USING contact_numbers n JOIN contacts o ON o.id = n.contact_id"
            " WHERE n.msisdn = s.msisdn RETURNING s.row_no, s.msisdn, n.position, o.msisdn")
        for row_no, msisdn, position, owner in sorted(cur.fetchall()):
            rejects.write(Issue(row_no, headers[layout.phone], msisdn,
                                f"already number {position} of another contact ({mask_msisdn(owner)}); "
                                "remove it there first", "rejected"), report)
        # What no kept row has any more: its locations, groups and numbers.
        cur.execute(f"DELETE FROM {self.locations} l WHERE NOT EXISTS (SELECT 1 FROM {self.contacts} s"
                    " WHERE s.row_no = l.row_no)")
        cur.execute(f"DELETE FROM {self.groups} g WHERE NOT EXISTS (SELECT 1 FROM {self.contacts} s"
                    " WHERE s.msisdn = g.msisdn)")
        cur.execute(f"DELETE FROM {self.numbers} n WHERE NOT EXISTS (SELECT 1 FROM {self.contacts} s"
                    " WHERE s.row_no = n.row_no)")
        # Each a join (hashed for a big file: a look-up per staged number would scan the unindexed
        # staging tables once per row); each number matches at most one row: phones are unique in
        # staging (after drop_duplicates) and in the directory, further numbers in the directory.
        clashes = (
            (f"{self.contacts} s WHERE s.msisdn = n.number", "'is the phone of row ' || s.row_no || "
             "'; not imported as a further number'"),
            ("contacts o WHERE o.msisdn = n.number AND o.msisdn <> n.msisdn",
             "'is already the first number of another contact; not imported'"),
            ("contact_numbers o JOIN contacts c ON c.id = o.contact_id WHERE o.msisdn = n.number"
             " AND c.msisdn <> n.msisdn", "'is already number ' || o.position || ' of another contact; "
             "remove it there first'"),
            (f"(SELECT number, max(row_no) AS row_no FROM {self.numbers} GROUP BY number HAVING count(*) > 1) k"
             " WHERE k.number = n.number AND n.row_no < k.row_no",
             "'is on row ' || k.row_no || ' too, which keeps it'"),
        )
        for using, reason in clashes:
            cur.execute(f"DELETE FROM {self.numbers} n USING {using}"
                        f" RETURNING n.row_no, n.position, n.number, {reason}")
            for row_no, position, number, why in sorted(cur.fetchall()):
                rejects.write(Issue(row_no, columns[position], number, why, "warning"), report)
        cur.execute(f"ANALYZE {self.contacts}; ANALYZE {self.numbers}")

    def drop(self) -> None:
        self.cursor.execute(f"DROP TABLE {self.contacts}, {self.locations}, {self.groups}, {self.dups}, "
                            f"{self.numbers}")
        self.cursor.close()


def _merge(session: Session, stage: _Staging, report: ImportReport, lap: _Laps) -> None:
    """The set statements: groups, contacts, locations, memberships. No per-row statement."""
    new_groups = _new_group_count(session, stage, report.group)
    if new_groups > MAX_NEW_GROUPS:
        raise InvalidInput(f"group: the file names {new_groups:,} groups that do not exist; an import creates "
                           f"at most {MAX_NEW_GROUPS:,}", fields={"group": f"{new_groups:,} new groups"})
    report.groups_created = sorted(session.scalars(text(
        "INSERT INTO groups (name, kind, description, drill_allowed)"
        f" SELECT n.name, 'static', 'created by a contact import', false FROM ({_group_names(stage)}) n"
        " WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.name = n.name)"
        " ON CONFLICT (name) DO NOTHING RETURNING name"), {"extra": report.group}))
    lap("groups")
    # The LEFT JOIN keeps what the directory has where the file leaves a name or language blank.
    # Rows that would not change are not rewritten (no dead tuples, no index churn on re-import).
    inserted, updated = session.execute(text(
        "WITH up AS ("
        " INSERT INTO contacts AS c (msisdn, name, language, attributes)"
        " SELECT s.msisdn, COALESCE(s.name, o.name, ''), COALESCE(s.language, o.language, :language),"
        "        COALESCE(s.attributes, '{}'::jsonb)"
        f" FROM {stage.contacts} s LEFT JOIN contacts o ON o.msisdn = s.msisdn"
        " ON CONFLICT (msisdn) DO UPDATE"
        "  SET name = EXCLUDED.name, language = EXCLUDED.language,"
        "      attributes = c.attributes || EXCLUDED.attributes, updated_at = now()"
        "  WHERE (c.name, c.language, c.attributes)"
        "        IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.language, c.attributes || EXCLUDED.attributes)"
        " RETURNING xmax = 0 AS inserted)"
        " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
    ), {"language": DEFAULT_LANGUAGE}).one()
    report.inserted, report.updated = int(inserted), int(updated)
    report.unchanged = report.contacts - report.inserted - report.updated
    lap("contacts")
    # A location replaces the contact's location with the same label; other labels stay. One that
    # is already there, same point, is left alone (a re-import rewrites nothing, no GiST churn).
    report.locations = rowcount(session.execute(text(
        "WITH new AS ("
        " SELECT c.id AS contact_id, l.label, ST_SetSRID(ST_MakePoint(l.lon, l.lat), 4326) AS geom"
        f" FROM {stage.locations} l JOIN contacts c ON c.msisdn = l.msisdn"  # only the kept rows' are left
        " WHERE NOT EXISTS (SELECT 1 FROM contact_locations o WHERE o.contact_id = c.id AND o.label = l.label"
        "                   AND ST_X(o.geom) = l.lon AND ST_Y(o.geom) = l.lat)),"
        " gone AS (DELETE FROM contact_locations cl USING new"
        "  WHERE cl.contact_id = new.contact_id AND cl.label = new.label)"
        " INSERT INTO contact_locations (contact_id, label, geom) SELECT contact_id, label, geom FROM new"
    )))
    lap("locations")
    report.numbers = _merge_numbers(session, stage)
    lap("numbers")
    report.memberships = rowcount(session.execute(text(
        "INSERT INTO group_members (group_id, contact_id)"
        " SELECT DISTINCT g.id, c.id FROM ("
        f"  SELECT msisdn, name FROM {stage.groups}"
        f"  UNION ALL SELECT msisdn, CAST(:extra AS text) FROM {stage.contacts} WHERE CAST(:extra AS text) IS NOT NULL"
        " ) m JOIN groups g ON g.name = m.name AND g.kind = 'static' JOIN contacts c ON c.msisdn = m.msisdn"
        " ON CONFLICT DO NOTHING"
    ), {"extra": report.group}))
    lap("memberships")


def _merge_numbers(session: Session, stage: _Staging) -> int:
    """The rows' second and third numbers, each at its position (a blank cell kept what the
    directory has: it is not staged). A number the contact already has at another position moves.
    Two statements (a DELETE in a CTE may run after the INSERT it should make room for). Returns
    how many were written (new or moved); one already in place is left alone."""
    wanted = (f"SELECT c.id AS contact_id, n.position, n.number FROM {stage.numbers} n"
              " JOIN contacts c ON c.msisdn = n.msisdn")
    session.execute(text(
        f"DELETE FROM contact_numbers o USING ({wanted}) w WHERE o.contact_id = w.contact_id"
        " AND ((o.position = w.position AND o.msisdn <> w.number)"
        "      OR (o.msisdn = w.number AND o.position <> w.position))"))
    return int(session.execute(text(
        "INSERT INTO contact_numbers (contact_id, position, msisdn)"
        f" SELECT w.contact_id, w.position, w.number FROM ({wanted}) w"
        " WHERE NOT EXISTS (SELECT 1 FROM contact_numbers o WHERE o.contact_id = w.contact_id"
        "                   AND o.position = w.position AND o.msisdn = w.number)"
    )).rowcount or 0)  # type: ignore[attr-defined]


def _directory_columns(layout: Any) -> list[str]:
    """The headers of the columns that would change groups, locations or attributes (which
    dynamic groups select on)."""
    indexes = {i for i in (layout.group, layout.label) if i is not None}
    indexes |= {i for _position, i in layout.more_phones}
    for _label, lat, lon in layout.locations:
        indexes |= {lat, lon}
    indexes |= {i for _name, i in layout.attributes}
    return [layout.headers[i] for i in sorted(indexes)]


def _add_recipients(session: Session, stage: _Staging, report: ImportReport, lap: _Laps) -> None:
    """recipients_only: new numbers inserted, every number of the file put in report.group."""
    session.execute(text(
        "INSERT INTO groups (name, kind, description, drill_allowed)"
        " VALUES (:g, 'static', 'created by a contact import', false) ON CONFLICT (name) DO NOTHING"
    ), {"g": report.group})
    report.inserted = rowcount(session.execute(text(
        "INSERT INTO contacts (msisdn, name, language, attributes)"
        " SELECT s.msisdn, COALESCE(s.name, ''), COALESCE(s.language, :language), '{}'::jsonb"
        f" FROM {stage.contacts} s ON CONFLICT (msisdn) DO NOTHING"
    ), {"language": DEFAULT_LANGUAGE}))
    report.left_as_is = report.contacts - report.inserted
    report.unchanged = report.left_as_is
    lap("contacts")
    report.memberships = rowcount(session.execute(text(
        "INSERT INTO group_members (group_id, contact_id)"
        f" SELECT g.id, c.id FROM {stage.contacts} s JOIN contacts c ON c.msisdn = s.msisdn"
        " JOIN groups g ON g.name = :g AND g.kind = 'static'"
        " ON CONFLICT DO NOTHING"
    ), {"g": report.group}))
    lap("memberships")


def _estimate(session: Session, stage: _Staging, report: ImportReport) -> None:
    """A dry run's counts: what the merge would insert, update and create, read-only."""
    new, existing = session.execute(text(
        "SELECT count(*) FILTER (WHERE c.id IS NULL), count(c.id)"
        f" FROM {stage.contacts} s LEFT JOIN contacts c ON c.msisdn = s.msisdn"
    )).one()
    report.inserted, report.updated = int(new), int(existing)  # "updated" here: already in the directory
    report.locations = int(session.execute(text(f"SELECT count(*) FROM {stage.locations}")).scalar_one())
    report.numbers = int(session.execute(text(f"SELECT count(*) FROM {stage.numbers}")).scalar_one())
    report.groups_created = sorted(session.scalars(text(
        f"SELECT n.name FROM ({_group_names(stage)}) n"
        " WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.name = n.name) ORDER BY 1 LIMIT :cap"
    ), {"extra": report.group, "cap": MAX_NEW_GROUPS + 1}))
    report.memberships = int(session.execute(text(
        f"SELECT count(*) FROM (SELECT DISTINCT msisdn, name FROM {stage.groups}) m"
    )).scalar_one()) + (report.contacts if report.group else 0)


class _Laps:
    """Seconds spent in each phase, into report.phases_s (the bench prints them)."""

    def __init__(self, report: ImportReport) -> None:
        self.report, self.last = report, time.monotonic()

    def __call__(self, phase: str) -> None:
        now = time.monotonic()
        self.report.phases_s[phase] = round(now - self.last, 3)
        self.last = now


def _group_names(stage: _Staging) -> str:
    return (f"SELECT DISTINCT name FROM {stage.groups}"
            " UNION SELECT CAST(:extra AS text) WHERE CAST(:extra AS text) IS NOT NULL")


def _new_group_count(session: Session, stage: _Staging, extra: str | None) -> int:
    return int(session.execute(text(
        f"SELECT count(*) FROM ({_group_names(stage)}) n"
        " WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.name = n.name)"
    ), {"extra": extra}).scalar_one())


def _group_id(session: Session, name: str | None) -> int | None:
    return None if name is None else session.scalar(select(Group.id).where(Group.name == name))


def _audit_payload(report: ImportReport) -> dict[str, Any]:
    payload = report.as_dict()
    payload["groups_created"] = payload["groups_created"][:50]  # the full list is in the groups table
    return payload


class _RejectsFile:
    """The rejects report (CSV), opened on the first issue, readable by its owner only."""

    def __init__(self, folder: Path, source_name: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(source_name).stem)[:40] or "import"
        self.path = folder / f"{stamp}-{stem}-{secrets.token_hex(3)}-rejects.csv"
        self._file: IO[str] | None = None
        self._writer: Any = None

    def write(self, issue: Issue, report: ImportReport | None = None) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # phone numbers: personal data
            self._file = open(fd, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
            self._writer = csv_cells.writer(self._file)  # opened in a spreadsheet: no formula cells
            self._writer.writerow(REPORT_COLUMNS)
        self._writer.writerow(issue)
        if report is not None:
            if issue.outcome == "rejected":
                report.rejected += 1
            elif issue.outcome == "warning":
                report.warnings += 1

    def close(self, report: ImportReport) -> None:
        if self._file is not None:
            self._file.close()
            report.rejects_path = str(self.path)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self.path.unlink(missing_ok=True)


def read_rejects(path: str | None, limit: int = 100) -> list[dict[str, str]]:
    """The first `limit` lines of an import's rejects report (row, column, value, reason, outcome)."""
    if not path:
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = []
        for i, row in enumerate(csv_cells.dict_reader(handle)):
            if i >= limit:
                break
            rows.append(row)
        return rows
