"""The local study database on disk: a SQLite index of patients, studies, series and instances.

One folder holds everything: ``studies.sqlite`` (WAL mode, so the study browser can
read while an import or a PACS retrieve writes), ``storage/`` with the files copied into
the database, and ``thumbnails/`` with one PNG per series. Files indexed in place stay
where they are and are never deleted by the database.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` lists the SQL
that takes a database from each version to the next, and opening a database applies the
missing steps in one transaction. A database written by a newer medviewer is refused.

A :class:`StudyStore` is one connection and must stay on the thread that opened it;
other threads open their own (SQLite handles the locking, ``busy_timeout`` waits).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from medviewer.core.errors import MedviewerError
from medviewer.io.study_headers import IndexedInstance

DATABASE_FILE = "studies.sqlite"
STORAGE_FOLDER = "storage"
THUMBNAIL_FOLDER = "thumbnails"

#: SQL taking the schema from version ``n`` to ``n + 1`` is ``MIGRATIONS[n]`` (version 0: an empty file).
MIGRATIONS: list[str] = [
    # 1: patients, studies, series, instances and where each instance's file is
    """
    CREATE TABLE patients (
        id INTEGER PRIMARY KEY,
        patient_id TEXT NOT NULL DEFAULT '',
        patient_name TEXT NOT NULL DEFAULT '',
        birth_date TEXT NOT NULL DEFAULT '',
        UNIQUE (patient_id, patient_name, birth_date)
    );
    CREATE TABLE studies (
        id INTEGER PRIMARY KEY,
        study_uid TEXT NOT NULL UNIQUE,
        patient_ref INTEGER NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
        study_date TEXT NOT NULL DEFAULT '',
        study_time TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        accession TEXT NOT NULL DEFAULT '',
        added_at REAL NOT NULL
    );
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        series_uid TEXT NOT NULL UNIQUE,
        study_ref INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        modality TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        number INTEGER,
        body_part TEXT NOT NULL DEFAULT '',
        instance_count INTEGER NOT NULL DEFAULT 0,
        stored_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE instances (
        id INTEGER PRIMARY KEY,
        sop_uid TEXT NOT NULL UNIQUE,
        series_ref INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
        sop_class_uid TEXT NOT NULL DEFAULT '',
        instance_number INTEGER,
        path TEXT NOT NULL,
        in_storage INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX studies_patient ON studies(patient_ref);
    CREATE INDEX series_study ON series(study_ref);
    CREATE INDEX instances_series ON instances(series_ref);
    """,
    # 2: the estimated body region (filled by a later classifier) and background thumbnails;
    #    indexes for the browser's searches
    """
    ALTER TABLE series ADD COLUMN body_region TEXT;
    ALTER TABLE series ADD COLUMN thumbnail TEXT;
    CREATE INDEX studies_date ON studies(study_date);
    CREATE INDEX patients_name ON patients(patient_name COLLATE NOCASE);
    CREATE INDEX patients_id ON patients(patient_id COLLATE NOCASE);
    CREATE INDEX series_modality ON series(modality);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StudyDatabaseError(MedviewerError):
    """The study database cannot be opened or changed (damaged, newer version, not found...)."""


@dataclass
class SeriesRecord:
    """One series as the study browser lists it."""

    series_uid: str
    study_uid: str
    modality: str
    description: str
    number: int | None
    body_part: str
    instance_count: int
    stored_count: int
    #: our estimated body region (None until something estimated it)
    body_region: str | None = None
    #: the PNG file of the middle slice; None before it is made, '' when none can be made
    thumbnail: str | None = None

    def to_dict(self) -> dict:
        """DICOM keywords where there is one (the same keys as ``medviewer pacs find --json``)."""
        return {
            "SeriesInstanceUID": self.series_uid,
            "Modality": self.modality,
            "SeriesDescription": self.description,
            "SeriesNumber": self.number,
            "BodyPartExamined": self.body_part,
            "NumberOfSeriesRelatedInstances": self.instance_count,
            "body_region": self.body_region,
            "storage": _storage_kind(self.stored_count, self.instance_count),
            "thumbnail": self.thumbnail or None,
        }


@dataclass
class StudyRecord:
    """One study with its patient, as the study browser lists it."""

    study_uid: str
    patient_name: str
    patient_id: str
    birth_date: str
    study_date: str
    study_time: str
    description: str
    accession: str
    modalities: tuple[str, ...]
    series_count: int
    instance_count: int
    stored_count: int
    body_parts: tuple[str, ...]
    added_at: float
    series: list[SeriesRecord] = field(default_factory=list)

    @property
    def storage(self) -> str:
        """"copied" (the database's own storage), "in place" or "mixed"."""
        return _storage_kind(self.stored_count, self.instance_count)

    def to_dict(self) -> dict:
        """DICOM keywords where there is one, plus ``storage`` and the ``series`` list."""
        return {
            "StudyInstanceUID": self.study_uid,
            "PatientName": self.patient_name,
            "PatientID": self.patient_id,
            "PatientBirthDate": self.birth_date,
            "StudyDate": self.study_date,
            "StudyTime": self.study_time,
            "StudyDescription": self.description,
            "AccessionNumber": self.accession,
            "ModalitiesInStudy": list(self.modalities),
            "BodyPartExamined": list(self.body_parts),
            "NumberOfStudyRelatedSeries": self.series_count,
            "NumberOfStudyRelatedInstances": self.instance_count,
            "storage": self.storage,
            "series": [series.to_dict() for series in self.series],
        }


def _storage_kind(stored: int, total: int) -> str:
    if stored == 0:
        return "in place"
    return "copied" if stored == total else "mixed"


@dataclass
class StudyQuery:
    """Search fields of the study browser; empty fields match everything.

    ``patient_name`` / ``patient_id`` / ``description`` match case-insensitively as a
    substring, or as a DICOM wildcard pattern when they hold ``*`` or ``?``
    (``DOE^J*``). Dates are ``YYYYMMDD``, both ends included.
    """

    patient_name: str = ""
    patient_id: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    description: str = ""
    #: one of :data:`SORT_KEYS`
    sort: str = "study_date"
    descending: bool = True
    limit: int | None = None


#: Sort keys of :class:`StudyQuery` and the SQL each sorts by (ties: patient, then UID).
SORT_KEYS = {
    "study_date": "s.study_date || s.study_time",
    "patient_name": "p.patient_name COLLATE NOCASE",
    "patient_id": "p.patient_id COLLATE NOCASE",
    "description": "s.description COLLATE NOCASE",
    "modality": "modalities",
    "accession": "s.accession",
    "series_count": "series_count",
    "instance_count": "instance_count",
    "added": "s.added_at",
}

_DATE = re.compile(r"^\d{8}$")


def _fold(text: str | None) -> str:
    return (text or "").casefold()


def _like_pattern(text: str) -> str:
    """A LIKE pattern (escape ``\\``) for a substring or a DICOM wildcard pattern."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if "*" in text or "?" in text:
        return escaped.replace("*", "%").replace("?", "_")
    return f"%{escaped}%"


@dataclass
class InstanceFile:
    """Where one instance's file is, and whether the database owns it."""

    sop_uid: str
    series_uid: str
    path: Path
    in_storage: bool
    instance_number: int | None


@dataclass
class Removal:
    """What ``StudyStore.remove`` took out of the database."""

    uid: str
    level: str  # "study" or "series"
    instances: int
    #: files of the database's own storage, to delete once the removal is committed
    owned_files: list[Path]
    #: files indexed in place: left where they are
    kept_files: list[Path]
    thumbnails: list[Path]


class StudyStore:
    """A connection to the study database in ``folder`` (created on first use)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DATABASE_FILE
        self.storage = self.folder / STORAGE_FOLDER
        self.thumbnails = self.folder / THUMBNAIL_FOLDER
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are begun and ended explicitly (see transaction()).
            self.connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise StudyDatabaseError(f"cannot open the study database ({error})", self.path) from error
        try:
            # Unicode case folding for searches (SQLite's LIKE folds ASCII letters only: JÖRG vs jörg).
            self.connection.create_function("fold", 1, _fold, deterministic=True)
            self.connection.execute("PRAGMA foreign_keys = ON")
            self.connection.execute("PRAGMA busy_timeout = 30000")
            mode = self._use_write_ahead_log()
            if str(mode).lower() != "wal":
                raise StudyDatabaseError(f"the study database cannot use write-ahead logging (journal mode {mode})", self.path)
            self.connection.execute("PRAGMA synchronous = NORMAL")  # durable at each WAL checkpoint; safe with WAL
            self._migrate()
        except sqlite3.DatabaseError as error:
            self.connection.close()
            raise StudyDatabaseError(f"the study database is damaged or not a SQLite file ({error})", self.path) from error
        except BaseException:
            self.connection.close()
            raise

    def _use_write_ahead_log(self) -> str:
        """Switch to WAL (stored in the file, so done once); the switch does not wait on a busy
        database the way other statements do, so a connection opening at the same moment is retried."""
        for attempt in range(100):
            try:
                mode = self.connection.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() == "wal":
                    return mode
                return self.connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == 99:
                    raise
                time.sleep(0.05)
        return ""

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "StudyStore":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @property
    def version(self) -> int:
        return int(self.connection.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.version
        if version > SCHEMA_VERSION:
            raise StudyDatabaseError(
                f"the study database has schema version {version}, newer than this medviewer's {SCHEMA_VERSION}; "
                "update medviewer", self.path)
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            version = self.version  # again, under the lock: another connection may have migrated meanwhile
            for step in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[step]):
                    self.connection.execute(statement)
            self.connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so two writers queue instead of failing later)."""
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    # ------------------------------------------------------------------ writing
    def known_sop_uids(self, sop_uids: Sequence[str]) -> set[str]:
        """Which of ``sop_uids`` the database already holds."""
        known: set[str] = set()
        uids = list(sop_uids)
        for start in range(0, len(uids), 500):  # SQLite limits the number of parameters
            chunk = uids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(row[0] for row in self.connection.execute(f"SELECT sop_uid FROM instances WHERE sop_uid IN ({marks})", chunk))
        return known

    def add_instances(self, instances: Sequence[IndexedInstance], in_storage: Sequence[bool]) -> int:
        """Insert instances (call inside :meth:`transaction`); those already known are skipped. Returns how many were added.

        ``instance.path`` is the file's final place; files in the database's storage are
        recorded relative to it, so the database folder can be moved.
        """
        db = self.connection
        patients: dict[tuple[str, str, str], int] = {}
        studies: dict[str, int] = {}
        series: dict[str, int] = {}
        counts: dict[int, list[int]] = {}
        added = 0
        now = time.time()
        for instance, owned in zip(instances, in_storage):
            series_id = series.get(instance.series_uid)
            if series_id is None:
                study_id = studies.get(instance.study_uid)
                if study_id is None:
                    key = (instance.patient_id, instance.patient_name, instance.birth_date)
                    patient_id = patients.get(key)
                    if patient_id is None:
                        db.execute("INSERT OR IGNORE INTO patients (patient_id, patient_name, birth_date) VALUES (?, ?, ?)", key)
                        patient_id = patients[key] = db.execute(
                            "SELECT id FROM patients WHERE patient_id = ? AND patient_name = ? AND birth_date = ?", key).fetchone()[0]
                    db.execute(
                        "INSERT OR IGNORE INTO studies (study_uid, patient_ref, study_date, study_time, description, accession, added_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (instance.study_uid, patient_id, instance.study_date, instance.study_time,
                         instance.study_description, instance.accession, now))
                    study_id = studies[instance.study_uid] = db.execute(
                        "SELECT id FROM studies WHERE study_uid = ?", (instance.study_uid,)).fetchone()[0]
                db.execute(
                    "INSERT OR IGNORE INTO series (series_uid, study_ref, modality, description, number, body_part)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (instance.series_uid, study_id, instance.modality, instance.series_description,
                     instance.series_number, instance.body_part))
                series_id = series[instance.series_uid] = db.execute(
                    "SELECT id FROM series WHERE series_uid = ?", (instance.series_uid,)).fetchone()[0]
            path = self._recorded_path(Path(instance.path), owned)
            cursor = db.execute(
                "INSERT OR IGNORE INTO instances (sop_uid, series_ref, sop_class_uid, instance_number, path, in_storage, size_bytes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (instance.sop_uid, series_id, instance.sop_class_uid, instance.instance_number, path, int(owned),
                 instance.size_bytes))
            if cursor.rowcount == 1:
                added += 1
                count = counts.setdefault(series_id, [0, 0])
                count[0] += 1
                count[1] += int(owned)
        db.executemany(
            "UPDATE series SET instance_count = instance_count + ?, stored_count = stored_count + ? WHERE id = ?",
            [(total, owned, series_id) for series_id, (total, owned) in counts.items()])
        return added

    def _recorded_path(self, path: Path, owned: bool) -> str:
        if owned:
            return path.relative_to(self.storage).as_posix()
        return os.fspath(path.absolute())

    def _file_path(self, recorded: str, owned: int) -> Path:
        return self.storage / recorded if owned else Path(recorded)

    def set_thumbnail(self, series_uid: str, file_name: str) -> None:
        """Record the series' thumbnail file (relative to ``thumbnails/``; '' when none can be made)."""
        with self.transaction():
            self.connection.execute("UPDATE series SET thumbnail = ? WHERE series_uid = ?", (file_name, series_uid))

    def set_body_region(self, series_uid: str, region: str | None) -> None:
        """Record an estimated body region for a series (None clears it)."""
        with self.transaction():
            self.connection.execute("UPDATE series SET body_region = ? WHERE series_uid = ?", (region, series_uid))

    def remove(self, uid: str) -> Removal:
        """Take a study or a series (by UID) out of the index, in one transaction.

        Studies and patients left without series are removed too. The files are not
        touched here: the caller deletes ``owned_files`` once this returned (so a failed
        removal never loses a file the index still points to).
        """
        uid = uid.strip()
        db = self.connection
        with self.transaction():
            study = db.execute("SELECT id, patient_ref FROM studies WHERE study_uid = ?", (uid,)).fetchone()
            if study is not None:
                level, series_ids = "study", [row[0] for row in db.execute("SELECT id FROM series WHERE study_ref = ?", (study[0],))]
            else:
                row = db.execute("SELECT id, study_ref FROM series WHERE series_uid = ?", (uid,)).fetchone()
                if row is None:
                    raise StudyDatabaseError(f"no study or series with UID {uid} in the study database", self.path)
                level, series_ids = "series", [row[0]]
                study = db.execute("SELECT id, patient_ref FROM studies WHERE id = ?", (row[1],)).fetchone()
            owned, kept, thumbnails, count = [], [], [], 0
            for series_id in series_ids:
                for recorded, in_storage in db.execute("SELECT path, in_storage FROM instances WHERE series_ref = ?", (series_id,)):
                    (owned if in_storage else kept).append(self._file_path(recorded, in_storage))
                    count += 1
                thumbnail = db.execute("SELECT thumbnail FROM series WHERE id = ?", (series_id,)).fetchone()[0]
                if thumbnail:
                    thumbnails.append(self.thumbnails / thumbnail)
                db.execute("DELETE FROM series WHERE id = ?", (series_id,))  # cascades to its instances
            if not db.execute("SELECT 1 FROM series WHERE study_ref = ? LIMIT 1", (study[0],)).fetchone():
                db.execute("DELETE FROM studies WHERE id = ?", (study[0],))
            if not db.execute("SELECT 1 FROM studies WHERE patient_ref = ? LIMIT 1", (study[1],)).fetchone():
                db.execute("DELETE FROM patients WHERE id = ?", (study[1],))
        return Removal(uid, level, count, owned, kept, thumbnails)

    # ------------------------------------------------------------------ reading
    def search(self, query: StudyQuery | None = None, with_series: bool = False) -> list[StudyRecord]:
        """Studies matching ``query``, sorted as it asks."""
        query = query or StudyQuery()
        where, parameters = [], []
        for column, text in (("p.patient_name", query.patient_name), ("p.patient_id", query.patient_id)):
            if text.strip():
                where.append(f"fold({column}) LIKE ? ESCAPE '\\'")
                parameters.append(_like_pattern(_fold(text.strip())))
        for bound, text, operator in (("from", query.date_from, ">="), ("to", query.date_to, "<=")):
            text = text.strip().replace("-", "")
            if text:
                if not _DATE.match(text):
                    raise StudyDatabaseError(f"the study date '{bound}' must be YYYYMMDD, not '{text}'")
                where.append(f"s.study_date {operator} ?")
                parameters.append(text)
        if query.modality.strip():
            where.append("EXISTS (SELECT 1 FROM series m WHERE m.study_ref = s.id AND m.modality = ?)")
            parameters.append(query.modality.strip().upper())
        if query.description.strip():
            pattern = _like_pattern(_fold(query.description.strip()))
            where.append("(fold(s.description) LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM series d WHERE d.study_ref = s.id"
                         " AND fold(d.description) LIKE ? ESCAPE '\\'))")
            parameters.extend([pattern, pattern])
        if query.sort not in SORT_KEYS:
            raise StudyDatabaseError(f"cannot sort by '{query.sort}'; choose one of {', '.join(SORT_KEYS)}")
        direction = "DESC" if query.descending else "ASC"
        order = f"{SORT_KEYS[query.sort]} {direction}, p.patient_name COLLATE NOCASE, s.study_uid"
        studies = self._select(where, parameters, order, query.limit)
        if with_series:
            by_uid = {study.study_uid: study for study in studies}
            uids = list(by_uid)
            for start in range(0, len(uids), 500):  # one query per 500 studies, not one per study
                chunk = uids[start:start + 500]
                for record in self._series_where(f"s.study_uid IN ({','.join('?' * len(chunk))})", chunk):
                    by_uid[record.study_uid].series.append(record)
        return studies

    def study(self, study_uid: str) -> StudyRecord | None:
        """One study with its series, or None."""
        found = self._select(["s.study_uid = ?"], [study_uid.strip()], "s.study_uid", None)
        if not found:
            return None
        found[0].series = self.series_of(found[0].study_uid)
        return found[0]

    def _select(self, where: list[str], parameters: list, order: str, limit: int | None) -> list[StudyRecord]:
        sql = (
            "SELECT s.study_uid, p.patient_name, p.patient_id, p.birth_date, s.study_date, s.study_time, s.description,"
            " s.accession, s.added_at,"
            " (SELECT GROUP_CONCAT(DISTINCT modality) FROM series WHERE study_ref = s.id) AS modalities,"
            " (SELECT GROUP_CONCAT(DISTINCT body_part) FROM series WHERE study_ref = s.id AND body_part != '') AS body_parts,"
            " (SELECT COUNT(*) FROM series WHERE study_ref = s.id) AS series_count,"
            " (SELECT TOTAL(instance_count) FROM series WHERE study_ref = s.id) AS instance_count,"
            " (SELECT TOTAL(stored_count) FROM series WHERE study_ref = s.id) AS stored_count"
            " FROM studies s JOIN patients p ON p.id = s.patient_ref"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY {order}"
            + (f" LIMIT {int(limit)}" if limit else "")
        )
        studies = []
        for row in self.connection.execute(sql, parameters):
            (uid, name, patient_id, birth, date, time_of_day, description, accession, added, modalities, parts,
             series_count, instances, stored) = row
            studies.append(StudyRecord(
                uid, name, patient_id, birth, date, time_of_day, description, accession,
                tuple(sorted(filter(None, (modalities or "").split(",")))), int(series_count), int(instances), int(stored),
                tuple(sorted(filter(None, (parts or "").split(",")))), float(added)))
        return studies

    def series_of(self, study_uid: str) -> list[SeriesRecord]:
        """The series of a study, by series number."""
        return self._series_where("s.study_uid = ?", [study_uid])

    def series_missing_thumbnails(self) -> list[SeriesRecord]:
        """Series whose thumbnail was not made yet."""
        return self._series_where("se.thumbnail IS NULL", [])

    def _series_where(self, condition: str, parameters: list) -> list[SeriesRecord]:
        rows = self.connection.execute(
            "SELECT se.series_uid, s.study_uid, se.modality, se.description, se.number, se.body_part, se.instance_count,"
            " se.stored_count, se.body_region, se.thumbnail FROM series se JOIN studies s ON s.id = se.study_ref"
            f" WHERE {condition} ORDER BY s.id, se.number IS NULL, se.number, se.series_uid", parameters)
        return [SeriesRecord(*row) for row in rows]

    def instance_files(self, uid: str) -> list[InstanceFile]:
        """The files of a study or a series (by UID), in series then instance-number order."""
        rows = self.connection.execute(
            "SELECT i.sop_uid, se.series_uid, i.path, i.in_storage, i.instance_number FROM instances i"
            " JOIN series se ON se.id = i.series_ref JOIN studies s ON s.id = se.study_ref"
            " WHERE s.study_uid = ? OR se.series_uid = ?"
            " ORDER BY se.number IS NULL, se.number, se.series_uid, i.instance_number IS NULL, i.instance_number, i.sop_uid",
            (uid, uid))
        return [InstanceFile(sop, series, self._file_path(path, owned), bool(owned), number)
                for sop, series, path, owned, number in rows]

    def counts(self) -> dict[str, int]:
        """How many patients, studies, series and instances the database holds."""
        return {table: int(self.connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("patients", "studies", "series", "instances")}


def _statements(script: str) -> list[str]:
    """The statements of a migration script (they hold no semicolons inside)."""
    return [statement.strip() for statement in script.split(";") if statement.strip()]
