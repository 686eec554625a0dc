"""The study database use cases: import (copy or in place, duplicates, cancel), open, remove, thumbnails."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))

import synthetic_dicom as sd  # noqa: E402

from medviewer.core.errors import NoImageSeriesError, PathNotFoundError  # noqa: E402
from medviewer.core.jobs import CancelToken  # noqa: E402
from medviewer.io.atomic import DiskFullError  # noqa: E402
from medviewer.services import study_db  # noqa: E402

SHARED_DATA = Path("/work/shared/data")
STUDY_A, STUDY_B = "1.2.826.0.1.3680043.8.498.100", "1.2.826.0.1.3680043.8.498.200"
CT_SERIES, MR_SERIES = STUDY_A + ".1", STUDY_A + ".2"


def _ct_pixels(slices: int) -> np.ndarray:
    """A bright 16x16 square in the middle of dark 32x32 slices."""
    pixels = np.full((slices, 32, 32), 24, np.int16)
    pixels[:, 8:24, 8:24] = 1064
    return pixels


@pytest.fixture
def folder(tmp_path) -> Path:
    """Study A (CT, 12 slices + MR, 4 slices), study B (one CR), a text file and a duplicate of one CT file: 19 files."""
    root = tmp_path / "incoming"
    sd.write_series(root / "a" / "ct", _ct_pixels(12), sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(12) * 2.5),
                    study_uid=STUDY_A, series_uid=CT_SERIES, series_number=2, description="Chest 2.5mm",
                    extra={"PatientName": "DOE^JOHN", "PatientID": "PID-1", "BodyPartExamined": "CHEST"})
    sd.write_series(root / "a" / "mr", _ct_pixels(4).astype(np.uint16), sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(4) * 5.0),
                    modality="MR", rescale=None, study_uid=STUDY_A, series_uid=MR_SERIES, series_number=1,
                    description="T2", extra={"PatientName": "DOE^JOHN", "PatientID": "PID-1"})
    radiograph = sd.write_radiograph(root / "b" / "cr.dcm", np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) % 4096,
                                     pixel_spacing=(0.2, 0.2))
    sd.edit_files([radiograph], StudyInstanceUID=STUDY_B, PatientName="SMITH^ANNA", PatientID="PID-2", StudyDate="20230310")
    (root / "notes.txt").write_text("not DICOM")
    (root / "copies").mkdir()
    shutil.copy(root / "a" / "ct" / "IMG00003.dcm", root / "copies" / "same-instance.dcm")
    return root


@pytest.fixture
def database(tmp_path) -> Path:
    return tmp_path / "database"


def _files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_import_counts_new_instances_duplicates_and_skipped_files_exactly(folder, database):
    report = study_db.import_files(folder, copy=False, database=database)
    assert (report.files, report.imported, report.duplicates) == (19, 17, 1)
    assert [Path(s.path).name for s in report.skipped] == ["notes.txt"]
    assert "not a DICOM file" in report.skipped[0].reason
    assert sorted(report.study_uids) == [STUDY_A, STUDY_B]
    assert len(report.series_uids) == 3
    again = study_db.import_files(folder, copy=True, database=database)
    assert (again.files, again.imported, again.duplicates, again.study_uids) == (19, 0, 18, [])
    assert _files_in(database / "storage") == []  # duplicates are never copied

    studies = {s.study_uid: s for s in study_db.list_studies(database=database)}
    a = studies[STUDY_A]
    assert (a.patient_name, a.patient_id, a.modalities, a.series_count, a.instance_count) == ("DOE^JOHN", "PID-1", ("CT", "MR"), 2, 16)
    assert [(s.series_uid, s.modality, s.number, s.description, s.instance_count) for s in a.series] == [
        (MR_SERIES, "MR", 1, "T2", 4), (CT_SERIES, "CT", 2, "Chest 2.5mm", 12)]
    assert a.series[1].body_part == "CHEST" and a.body_parts == ("CHEST",)
    b = studies[STUDY_B]
    assert (b.patient_name, b.study_date, b.modalities, b.instance_count) == ("SMITH^ANNA", "20230310", ("CR",), 1)


def test_copy_puts_the_files_in_the_database_storage(folder, database):
    report = study_db.import_files(folder, copy=True, database=database)
    assert report.imported == 17
    stored = _files_in(database / "storage")
    assert len(stored) == 17 and all(p.suffix == ".dcm" for p in stored)
    with study_db.open_store(database) as store:
        files = store.instance_files(STUDY_A)
        assert all(f.in_storage and (database / "storage") in f.path.parents for f in files)
        # recorded relative to the storage, so the database folder may move
        assert store.connection.execute("SELECT COUNT(*) FROM instances WHERE path LIKE '/%'").fetchone()[0] == 0
    assert study_db.list_studies(database=database)[0].storage == "copied"
    shutil.rmtree(folder)  # the copies do not need the originals
    [ct, mr] = sorted(study_db.study_series(STUDY_A, database=database), key=lambda s: s.modality)
    assert (ct.modality, ct.geometry.size, mr.geometry.size) == ("CT", (32, 32, 12), (32, 32, 4))


def test_in_place_indexing_records_the_original_paths(folder, database):
    study_db.import_files(folder / "a", copy=False, database=database)
    assert _files_in(database / "storage") == []
    with study_db.open_store(database) as store:
        paths = {f.path for f in store.instance_files(CT_SERIES)}
    assert paths == set((folder / "a" / "ct").glob("*.dcm"))
    assert study_db.list_studies(database=database)[0].storage == "in place"


def test_opening_a_study_reads_its_series_in_geometric_order(folder, database):
    study_db.import_files(folder, copy=False, database=database)
    series = study_db.study_series(STUDY_A, database=database)
    ct = next(s for s in series if s.modality == "CT")
    assert ct.uid == CT_SERIES and ct.geometry.size == (32, 32, 12) and ct.geometry.spacing[2] == pytest.approx(2.5)
    assert series.notes == []
    # a file indexed in place that was deleted since is left out with a note
    (folder / "a" / "ct" / "IMG00000.dcm").unlink()
    series = study_db.study_series(STUDY_A, database=database)
    ct = next(s for s in series if s.modality == "CT")
    assert len(ct.files) == 11
    assert [Path(n.path).name for n in series.notes] == ["IMG00000.dcm"]
    with pytest.raises(study_db.StudyDatabaseError, match="no study with UID 9.9.9"):
        study_db.study_series("9.9.9", database=database)


def test_remove_deletes_own_storage_files_and_keeps_files_indexed_in_place(folder, database):
    study_db.import_files(folder / "a", copy=True, database=database)
    study_db.import_files(folder / "b", copy=False, database=database)
    assert len(_files_in(database / "storage")) == 16
    study_db.make_thumbnails(database=database)
    thumbnails = _files_in(database / "thumbnails")
    assert len(thumbnails) == 3

    report = study_db.remove(MR_SERIES, database=database)
    assert (report.level, report.instances, report.deleted_files, report.kept_files) == ("series", 4, 4, 0)
    assert len(_files_in(database / "storage")) == 12
    assert len(_files_in(database / "thumbnails")) == 2
    report = study_db.remove(STUDY_A, database=database)
    assert (report.level, report.instances, report.deleted_files, report.kept_files) == ("study", 12, 12, 0)
    assert _files_in(database / "storage") == []
    assert not any((database / "storage").iterdir())  # the emptied study and series folders go too

    report = study_db.remove(STUDY_B, database=database)
    assert (report.instances, report.deleted_files, report.kept_files) == (1, 0, 1)
    assert (folder / "b" / "cr.dcm").is_file()  # indexed in place: left alone
    assert (folder / "a" / "ct" / "IMG00000.dcm").is_file()  # the originals of the copied study too
    with study_db.open_store(database) as store:
        assert store.counts() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    with pytest.raises(study_db.StudyDatabaseError, match=f"no study or series with UID {STUDY_B}"):
        study_db.remove(STUDY_B, database=database)


class CancelAfter(CancelToken):
    """Cancels once ``checks`` cancellation checks have passed."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.left = checks

    @property
    def cancelled(self) -> bool:
        self.left -= 1
        return self.left < 0


def _consistent(database: Path) -> int:
    """Check rows and files agree; return the number of instances."""
    with study_db.open_store(database) as store:
        counts = store.counts()
        files = [f.path for study in store.search() for f in store.instance_files(study.study_uid)]
        per_series = store.connection.execute("SELECT TOTAL(instance_count) FROM series").fetchone()[0]
        orphans = store.connection.execute(
            "SELECT COUNT(*) FROM series WHERE id NOT IN (SELECT series_ref FROM instances)").fetchone()[0]
    assert per_series == counts["instances"] == len(files)
    assert orphans == 0
    assert sorted(files) == _files_in(database / "storage")  # no file without a row, no row without a file
    return counts["instances"]


def test_cancel_keeps_committed_batches_and_removes_the_copies_of_the_batch_in_progress(folder, database, monkeypatch):
    monkeypatch.setattr(study_db, "BATCH_SIZE", 5)
    # checks: one per file read, one per file copied; batch 1 = 5 reads + 5 copies, then 3 reads of batch 2
    with pytest.raises(study_db.ImportCancelled) as raised:
        study_db.import_files(folder / "a", copy=True, cancel=CancelAfter(13), database=database)
    report = raised.value.report
    assert report.cancelled and report.imported == 5 and report.files == 8
    assert "5 instances imported before are kept" in str(raised.value)
    assert _consistent(database) == 5
    # importing again completes the rest
    report = study_db.import_files(folder / "a", copy=True, database=database)
    assert (report.imported, report.duplicates) == (11, 5)
    assert _consistent(database) == 16


def test_cancel_during_copies_of_an_atomic_import_leaves_the_database_as_it_was(folder, database, monkeypatch):
    monkeypatch.setattr(study_db, "BATCH_SIZE", 5)
    study_db.import_files(folder / "b", copy=True, database=database)
    with pytest.raises(study_db.ImportCancelled) as raised:
        study_db.import_files(folder / "a", copy=True, cancel=CancelAfter(18), database=database, atomic=True)
    assert raised.value.report.imported == 0
    assert "nothing was kept" in str(raised.value)
    assert _consistent(database) == 1
    assert [s.study_uid for s in study_db.list_studies(database=database)] == [STUDY_B]


def test_a_failed_copy_rolls_the_batch_back(folder, database, monkeypatch):
    monkeypatch.setattr(study_db, "BATCH_SIZE", 5)
    real_copy = shutil.copyfile
    calls = []

    def failing_copy(source, target, *args, **kwargs):
        calls.append(source)
        if len(calls) == 8:
            raise OSError(28, "No space left on device")
        return real_copy(source, target, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", failing_copy)
    with pytest.raises(DiskFullError, match="the disk is full"):
        study_db.import_files(folder / "a", copy=True, database=database)
    assert _consistent(database) == 5
    assert not any(p.name.endswith(".part") for p in _files_in(database / "storage"))


def test_a_list_of_files_and_folders_can_be_imported(folder, database):
    files = sorted((folder / "a" / "mr").glob("*.dcm"))[:2]
    report = study_db.import_files([*files, folder / "b"], copy=True, database=database)
    assert (report.files, report.imported, sorted(report.study_uids)) == (3, 3, [STUDY_A, STUDY_B])
    assert len(_files_in(database / "storage")) == 3


def test_missing_input_and_folders_without_dicom_are_errors(tmp_path, database):
    with pytest.raises(PathNotFoundError, match="no such file or folder"):
        study_db.import_files(tmp_path / "nothing", database=database)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("hello")
    with pytest.raises(NoImageSeriesError, match="none of the 1 files is a DICOM instance that can be indexed"):
        study_db.import_files(tmp_path / "text", database=database)


def test_thumbnails_are_middle_slice_pngs_made_once(folder, database):
    study_db.import_files(folder, copy=False, database=database)
    assert study_db.make_thumbnails(database=database) == 3
    assert study_db.make_thumbnails(database=database) == 0  # nothing left to make
    [ct] = [s for study in study_db.list_studies(database=database) for s in study.series if s.modality == "CT"]
    path = study_db.thumbnail_path(ct, database)
    assert path is not None and path.suffix == ".png"
    picture = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert picture.shape == (32, 32) and picture.dtype == np.uint8
    # the bright square of the slice is bright in the picture, the background dark
    assert picture[12:20, 12:20].min() > 200 and picture[:6, :6].max() < 50


def test_a_real_ct_with_segmentations_imports_and_opens(database):
    source = SHARED_DATA / "dicom_seg" / "dcmqi_ct3slice"
    lidc = SHARED_DATA / "lung_nodules" / "lidc_idri_0003_small"
    if not source.is_dir() or not lidc.is_dir():
        pytest.skip(f"real data missing: {source} and {lidc} (see /work/shared/data/README.md)")
    report = study_db.import_files([source, lidc], copy=False, database=database)
    assert (report.imported, report.duplicates, len(report.skipped)) == (16, 0, 8)  # 6 NRRD, an XML, a CSV
    assert sum("not a DICOM file (a NRRD image" in s.reason for s in report.skipped) == 6
    studies = {s.patient_id: s for s in study_db.list_studies(database=database)}
    assert set(studies) == {"99000", "LIDC-IDRI-0003"}
    assert (studies["99000"].modalities, studies["99000"].series_count, studies["99000"].instance_count) == (("CT", "SEG"), 3, 5)
    lung = studies["LIDC-IDRI-0003"]
    assert (lung.modalities, lung.instance_count, lung.body_parts) == (("CT",), 11, ("CHEST",))
    series = study_db.study_series(studies["99000"].study_uid, database=database)
    assert [(s.modality, s.geometry.size[2]) for s in series] == [("CT", 3)]
    assert sorted(Path(n.path).name for n in series.notes) == ["liver.dcm", "partial_overlaps.dcm"]  # SEGs open over the CT
    [lidc_ct] = study_db.study_series(lung.study_uid, database=database)
    assert lidc_ct.geometry.size == (512, 512, 11)
    assert lidc_ct.geometry.origin == pytest.approx((-228.8, -210.0, -204.0), abs=0.05)
