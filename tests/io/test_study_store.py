"""The study database's SQLite index: schema, migrations from version 1, search filters and sorting."""

from __future__ import annotations

import sqlite3

import pytest

from medviewer.io.study_headers import IndexedInstance
from medviewer.io.study_store import MIGRATIONS, SCHEMA_VERSION, StudyDatabaseError, StudyQuery, StudyStore


def _instance(number: int, study: str, series: str, **fields) -> IndexedInstance:
    values = dict(path=f"/data/{study}/{series}/{number}.dcm", size_bytes=100, sop_uid=f"{series}.{number}",
                  sop_class_uid="1.2.840.10008.5.1.4.1.1.2", study_uid=study, series_uid=series, instance_number=number)
    values.update(fields)
    return IndexedInstance(**values)


@pytest.fixture
def store(tmp_path):
    """Three patients, four studies (CT+MR, CR, CT, and one with a '%' in its description)."""
    store = StudyStore(tmp_path / "db")
    doe = dict(patient_id="PID-001", patient_name="DOE^JOHN", birth_date="19600101")
    rows = [
        *[_instance(n, "1.1", "1.1.1", modality="CT", study_date="20240105", study_description="Chest CT",
                    series_description="Lung 1mm", series_number=2, **doe) for n in range(3)],
        *[_instance(n, "1.1", "1.1.2", modality="MR", study_date="20240105", study_description="Chest CT",
                    series_description="T2 axial", series_number=1, **doe) for n in range(2)],
        _instance(0, "1.2", "1.2.1", modality="CR", study_date="20231231", study_description="Thorax PA",
                  patient_id="PID-002", patient_name="Smith^Anna"),
        _instance(0, "1.3", "1.3.1", modality="CT", study_date="20240301", study_description="Abdomen",
                  patient_id="X-17", patient_name="Müller^Jörg"),
        _instance(0, "1.4", "1.4.1", modality="CT", study_date="20240302", study_description="Dose 100% check", **doe),
    ]
    with store.transaction():
        assert store.add_instances(rows, [False] * len(rows)) == len(rows)
    yield store
    store.close()


def _uids(studies) -> list[str]:
    return [study.study_uid for study in studies]


def test_a_new_database_has_the_current_schema_in_wal_mode(tmp_path):
    with StudyStore(tmp_path / "db") as store:
        assert store.version == SCHEMA_VERSION == 2
        assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = {row[1] for row in store.connection.execute("PRAGMA table_info(series)")}
        assert {"modality", "description", "number", "body_part", "instance_count", "body_region", "thumbnail"} <= columns
        assert store.counts() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    assert (tmp_path / "db" / "studies.sqlite").is_file()


def test_a_version_1_database_is_migrated_keeping_its_rows(tmp_path):
    folder = tmp_path / "db"
    folder.mkdir()
    old = sqlite3.connect(folder / "studies.sqlite")
    old.executescript(MIGRATIONS[0])
    old.execute("INSERT INTO patients (id, patient_id, patient_name, birth_date) VALUES (1, 'P1', 'OLD^PATIENT', '')")
    old.execute("INSERT INTO studies (id, study_uid, patient_ref, study_date, description, added_at) VALUES (1, '9.9', 1, '20200202', 'Old study', 0)")
    old.execute("INSERT INTO series (id, series_uid, study_ref, modality, number, instance_count) VALUES (1, '9.9.1', 1, 'CT', 4, 1)")
    old.execute("INSERT INTO instances (sop_uid, series_ref, path, in_storage) VALUES ('9.9.1.1', 1, '/old/file.dcm', 0)")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()

    with StudyStore(folder) as store:
        assert store.version == SCHEMA_VERSION
        [study] = store.search()
        assert (study.study_uid, study.patient_name, study.study_date, study.description) == ("9.9", "OLD^PATIENT", "20200202", "Old study")
        [series] = store.series_of("9.9")
        assert (series.modality, series.number, series.instance_count, series.body_region, series.thumbnail) == ("CT", 4, 1, None, None)
        assert [str(f.path) for f in store.instance_files("9.9")] == ["/old/file.dcm"]
        indexes = {row[1] for row in store.connection.execute("PRAGMA index_list(studies)")}
        assert "studies_date" in indexes
        store.set_body_region("9.9.1", "chest")
        assert store.series_of("9.9")[0].body_region == "chest"


def test_every_migration_step_applies_from_each_older_version(tmp_path):
    for start in range(SCHEMA_VERSION + 1):
        folder = tmp_path / f"v{start}"
        folder.mkdir()
        old = sqlite3.connect(folder / "studies.sqlite")
        for script in MIGRATIONS[:start]:
            old.executescript(script)
        old.execute(f"PRAGMA user_version = {start}")
        old.commit()
        old.close()
        with StudyStore(folder) as store:
            assert store.version == SCHEMA_VERSION
            assert store.search() == []


def test_a_database_from_a_newer_medviewer_is_refused(tmp_path):
    with StudyStore(tmp_path / "db") as store:
        store.connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StudyDatabaseError, match="schema version 99, newer than this medviewer's 2"):
        StudyStore(tmp_path / "db")


def test_a_damaged_database_file_gives_a_clear_error(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "studies.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StudyDatabaseError, match="studies.sqlite: the study database is damaged or not a SQLite file"):
        StudyStore(tmp_path / "db")


def test_counts_and_study_attributes(store):
    assert store.counts() == {"patients": 3, "studies": 4, "series": 5, "instances": 8}
    study = store.study("1.1")
    assert (study.patient_name, study.patient_id, study.birth_date, study.modalities) == ("DOE^JOHN", "PID-001", "19600101", ("CT", "MR"))
    assert (study.series_count, study.instance_count, study.storage) == (2, 5, "in place")
    # series by series number
    assert [(s.series_uid, s.number, s.instance_count) for s in study.series] == [("1.1.2", 1, 2), ("1.1.1", 2, 3)]
    assert store.study("no.such") is None


def test_search_by_patient_name_id_date_modality_and_description(store):
    assert _uids(store.search(StudyQuery(patient_name="doe", sort="study_date", descending=False))) == ["1.1", "1.4"]
    assert _uids(store.search(StudyQuery(patient_name="jÖRG"))) == ["1.3"]  # Unicode case folding, not ASCII only
    assert _uids(store.search(StudyQuery(patient_name="Müller"))) == ["1.3"]
    assert _uids(store.search(StudyQuery(patient_name="sm*^a?na"))) == ["1.2"]  # DICOM wildcards
    assert _uids(store.search(StudyQuery(patient_name="anna*"))) == []  # a pattern matches the whole name
    assert _uids(store.search(StudyQuery(patient_id="pid-00", sort="patient_id", descending=False))) == ["1.1", "1.4", "1.2"]
    assert _uids(store.search(StudyQuery(date_from="20240101", date_to="20240301", descending=False))) == ["1.1", "1.3"]
    assert _uids(store.search(StudyQuery(date_to="20231231"))) == ["1.2"]
    assert _uids(store.search(StudyQuery(date_from="2024-03-02"))) == ["1.4"]
    assert _uids(store.search(StudyQuery(modality="mr"))) == ["1.1"]
    assert _uids(store.search(StudyQuery(modality="CT", descending=False))) == ["1.1", "1.3", "1.4"]
    assert _uids(store.search(StudyQuery(description="t2 AX"))) == ["1.1"]  # a series description
    assert _uids(store.search(StudyQuery(description="thorax"))) == ["1.2"]  # a study description
    assert _uids(store.search(StudyQuery(description="100%"))) == ["1.4"]  # % is literal, not a wildcard
    assert _uids(store.search(StudyQuery(description="0%"))) == ["1.4"]
    assert _uids(store.search(StudyQuery(patient_name="doe", modality="MR", date_from="20240101"))) == ["1.1"]


def test_sorting(store):
    assert _uids(store.search(StudyQuery(sort="study_date"))) == ["1.4", "1.3", "1.1", "1.2"]
    assert _uids(store.search(StudyQuery(sort="patient_name", descending=False))) == ["1.1", "1.4", "1.3", "1.2"]
    assert _uids(store.search(StudyQuery(sort="instance_count")))[0] == "1.1"
    assert _uids(store.search(StudyQuery(sort="description", descending=False))) == ["1.3", "1.1", "1.4", "1.2"]
    assert len(store.search(StudyQuery(limit=2))) == 2


def test_bad_query_values_are_refused_with_a_message(store):
    with pytest.raises(StudyDatabaseError, match="cannot sort by 'size'"):
        store.search(StudyQuery(sort="size"))
    with pytest.raises(StudyDatabaseError, match="the study date 'from' must be YYYYMMDD, not '2024'"):
        store.search(StudyQuery(date_from="2024"))


def test_instances_already_indexed_are_not_added_twice(store):
    again = [_instance(0, "1.2", "1.2.1", modality="CR"), _instance(1, "1.2", "1.2.1", modality="CR")]
    assert store.known_sop_uids([i.sop_uid for i in again]) == {"1.2.1.0"}
    with store.transaction():
        assert store.add_instances(again, [False, False]) == 1
    assert store.series_of("1.2")[0].instance_count == 2
    assert store.counts()["instances"] == 9


def test_removing_a_series_keeps_the_study_and_removing_the_last_removes_study_and_patient(store):
    removal = store.remove("1.1.2")
    assert (removal.level, removal.instances, len(removal.kept_files), removal.owned_files) == ("series", 2, 2, [])
    assert [s.series_uid for s in store.series_of("1.1")] == ["1.1.1"]
    assert store.study("1.1").modalities == ("CT",)
    removal = store.remove("1.2")
    assert (removal.level, removal.instances) == ("study", 1)
    assert store.counts() == {"patients": 2, "studies": 3, "series": 3, "instances": 5}
    with pytest.raises(StudyDatabaseError, match="no study or series with UID 1.2 in the study database"):
        store.remove("1.2")


def test_a_reader_is_not_blocked_by_a_writer_in_wal_mode(store, tmp_path):
    """The browser searches while an import (another connection, another thread) holds a write transaction."""
    reader = StudyStore(tmp_path / "db")
    try:
        with store.transaction():
            store.add_instances([_instance(0, "2.1", "2.1.1", modality="US")], [False])
            assert len(reader.search()) == 4  # the uncommitted study is not seen, and nothing waits
        assert len(reader.search()) == 5
    finally:
        reader.close()


def test_connections_opening_a_new_database_at_the_same_time_migrate_it_once(tmp_path):
    import threading

    for attempt in range(5):
        folder = tmp_path / f"db{attempt}"
        problems, versions = [], []
        start = threading.Barrier(4)

        def open_it():
            start.wait()
            try:
                with StudyStore(folder) as store:
                    versions.append(store.version)
            except Exception as error:  # noqa: BLE001 - collected for the assertion
                problems.append(error)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert problems == [] and versions == [SCHEMA_VERSION] * 4
