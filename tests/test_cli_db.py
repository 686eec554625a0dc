"""``medviewer db list [--json]``, ``db import DIR [--copy|--in-place]``, ``db remove UID``: the command-line contract."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "io"))

import synthetic_dicom as sd  # noqa: E402

from medviewer.cli import main  # noqa: E402

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.300", "1.2.826.0.1.3680043.8.498.300.1"
STUDY_KEYS = {"StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime",
              "StudyDescription", "AccessionNumber", "ModalitiesInStudy", "BodyPartExamined",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "storage", "series"}
SERIES_KEYS = {"SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber", "BodyPartExamined",
               "NumberOfSeriesRelatedInstances", "body_region", "storage", "thumbnail"}


@pytest.fixture
def ct_folder(tmp_path) -> Path:
    pixels = np.full((6, 16, 16), 1000, np.int16)
    sd.write_series(tmp_path / "ct", pixels, sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(6) * 3.0),
                    study_uid=STUDY, series_uid=SERIES, description="Head", series_number=4,
                    extra={"PatientName": "DOE^JANE", "PatientID": "P7", "PatientBirthDate": "19700203",
                           "AccessionNumber": "ACC42", "StudyDate": "20240607"})
    return tmp_path / "ct"


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_import_list_json_and_remove(ct_folder, tmp_path, capsys):
    database = str(tmp_path / "db")
    code, out, _ = _run(capsys, "db", "import", str(ct_folder), "--database", database)
    assert code == 0
    assert "6 new instances copied into the database (1 study, 1 series); 0 duplicates skipped" in out
    code, out, _ = _run(capsys, "db", "import", str(ct_folder), "--in-place", "--database", database)
    assert code == 0 and "0 new instances indexed in place" in out and "6 duplicates skipped" in out

    code, out, _ = _run(capsys, "db", "list", "--json", "--database", database)
    assert code == 0
    [study] = json.loads(out)
    assert set(study) == STUDY_KEYS
    assert {key: study[key] for key in STUDY_KEYS - {"series", "StudyTime", "BodyPartExamined"}} == {
        "StudyInstanceUID": STUDY, "PatientName": "DOE^JANE", "PatientID": "P7", "PatientBirthDate": "19700203",
        "StudyDate": "20240607", "StudyDescription": "Synthetic study", "AccessionNumber": "ACC42",
        "ModalitiesInStudy": ["CT"], "NumberOfStudyRelatedSeries": 1, "NumberOfStudyRelatedInstances": 6,
        "storage": "copied"}
    [series] = study["series"]
    assert set(series) == SERIES_KEYS
    assert (series["SeriesInstanceUID"], series["Modality"], series["SeriesDescription"], series["SeriesNumber"],
            series["NumberOfSeriesRelatedInstances"], series["body_region"]) == (SERIES, "CT", "Head", 4, 6, None)
    assert series["thumbnail"].endswith(".png") and Path(series["thumbnail"]).is_file()  # made after the import
    assert Path(series["thumbnail"]).parent == tmp_path / "db" / "thumbnails"

    code, out, _ = _run(capsys, "db", "list", "--database", database)
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:3] == ["Patient", "ID", "Date"]
    assert row.split() == ["DOE^JANE", "P7", "2024-06-07", "CT", "Synthetic", "study", "1", "6", "copied", STUDY]
    code, out, _ = _run(capsys, "db", "list", "--json", "--modality", "MR", "--database", database)
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = _run(capsys, "db", "list", "--json", "--study-date", "20240101-20241231", "--patient-name", "doe*", "--database", database)
    assert [s["StudyInstanceUID"] for s in json.loads(out)] == [STUDY]

    code, out, _ = _run(capsys, "db", "remove", STUDY, "--database", database)
    assert code == 0
    assert out.strip() == (f"removed study {STUDY}: 6 instances; 6 files deleted from the database's storage, "
                           "0 indexed in place left where they are")
    code, out, _ = _run(capsys, "db", "list", "--json", "--database", database)
    assert (code, json.loads(out)) == (0, [])
    assert all(p.exists() for p in ct_folder.glob("*.dcm"))


def test_import_json_report(ct_folder, tmp_path, capsys):
    code, out, _ = _run(capsys, "db", "import", str(ct_folder), "--in-place", "--json", "--no-thumbnails",
                        "--database", str(tmp_path / "db"))
    assert code == 0
    report = json.loads(out)
    assert (report["copy"], report["files"], report["imported"], report["duplicates"], report["skipped"]) == (False, 6, 6, 0, [])
    assert report["studies"] == [STUDY] and report["series"] == [SERIES]


def test_list_sorts_by_the_key_asked(ct_folder, tmp_path, capsys):
    from medviewer.commands.db import SORT_CHOICES
    from medviewer.io.study_store import SORT_KEYS

    assert set(SORT_CHOICES) == set(SORT_KEYS)
    database = str(tmp_path / "db")
    other = tmp_path / "other"
    sd.write_series(other, np.full((2, 8, 8), 5, np.int16), sd.stack_positions((0, 0, 0), sd.AXIAL, [0.0, 1.0]),
                    extra={"PatientName": "ADAMS^AL", "StudyDate": "20200101"})
    for source in (ct_folder, other):
        assert _run(capsys, "db", "import", str(source), "--in-place", "--no-thumbnails", "--database", database)[0] == 0
    names = lambda out: [s["PatientName"] for s in json.loads(out)]  # noqa: E731
    assert names(_run(capsys, "db", "list", "--json", "--database", database)[1]) == ["DOE^JANE", "ADAMS^AL"]  # newest first
    assert names(_run(capsys, "db", "list", "--json", "--sort", "patient_name", "--ascending", "--database", database)[1]) == [
        "ADAMS^AL", "DOE^JANE"]
    assert names(_run(capsys, "db", "list", "--json", "--sort", "instance_count", "--database", database)[1]) == [
        "DOE^JANE", "ADAMS^AL"]


def test_errors_print_one_line_and_exit_2(ct_folder, tmp_path, capsys):
    database = str(tmp_path / "db")
    code, _, err = _run(capsys, "db", "remove", "1.2.3.4", "--database", database)
    assert code == 2
    assert err.strip().endswith("no study or series with UID 1.2.3.4 in the study database") and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "db", "import", str(tmp_path / "missing"), "--database", database)
    assert code == 2 and err.strip() == f"medviewer: error: {tmp_path / 'missing'}: no such file or folder"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    code, _, err = _run(capsys, "db", "import", str(tmp_path / "empty"), "--database", database)
    assert code == 2 and "none of the 1 files is a DICOM instance that can be indexed" in err
    code, _, err = _run(capsys, "db", "list", "--study-date", "June", "--database", database)
    assert code == 2 and "--study-date must be YYYYMMDD or YYYYMMDD-YYYYMMDD, not 'June'" in err
    code, _, err = _run(capsys, "db")
    assert code == 2 and "db needs an action: list, import DIR or remove UID" in err
    with pytest.raises(SystemExit) as raised:
        main(["db", "import", str(ct_folder), "--copy", "--in-place"])
    assert raised.value.code == 2


def test_the_default_database_is_in_the_user_data_folder(ct_folder, medviewer_home, capsys):
    code, out, _ = _run(capsys, "db", "import", str(ct_folder), "--in-place", "--no-thumbnails")
    assert code == 0
    assert (medviewer_home / "database" / "studies.sqlite").is_file()
    code, out, _ = _run(capsys, "db", "remove", SERIES)
    assert code == 0 and out.startswith(f"removed series {SERIES}: 6 instances; 0 files deleted")
