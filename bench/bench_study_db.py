"""Study database: indexing speed for a 2000-file CT folder, and search time with 10,000 studies.

The CT is a synthetic 2000-slice 512x512 int16 series written once with pydicom into the
cache folder (``tests/io/synthetic_dicom.py``). Each import goes into a fresh database.
The reference is the floor of any indexer: reading the same headers with plain pydicom
(``stop_before_pixels``, no database). Goals (issue 16): >= 300 files/s indexing (3D
Slicer's CTK indexer reaches about 70 files/s), a name search < 50 ms with 10,000 studies.
Files are read from the page cache (written just before, or by an earlier run).

Run: ``.venv/bin/python bench/bench_study_db.py`` (add ``--quick`` for fewer repeats).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import Row, print_table  # noqa: I001 - sets sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "io"))

import pydicom  # noqa: E402
import synthetic_dicom as sd  # noqa: E402

from medviewer.core.paths import cache_dir  # noqa: E402
from medviewer.io.study_headers import IndexedInstance  # noqa: E402
from medviewer.io.study_store import StudyQuery, StudyStore  # noqa: E402
from medviewer.services.study_db import import_files  # noqa: E402

FILES = 2000
SIZE = 512
STUDIES = 10_000


def ct_folder(files: int = FILES) -> Path:
    """The synthetic CT series (made once; a marker file says it is complete)."""
    folder = cache_dir() / "bench_study_db" / f"ct_{files}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    body = ((x - SIZE / 2) ** 2 / (0.4 * SIZE) ** 2 + (y - SIZE / 2) ** 2 / (0.3 * SIZE) ** 2) <= 1
    slices = np.where(body, 1064, 24).astype(np.int16)[None].repeat(files, axis=0)  # stored values: -1000/40 HU
    positions = sd.stack_positions((-180.0, -180.0, 0.0), sd.AXIAL, np.arange(files) * 0.625)
    sd.write_series(folder, slices, positions, pixel_spacing=(0.7, 0.7), description="Bench CT 2000", seed=0)
    (folder / ".complete").write_text("ok")
    return folder


def _import_rate(folder: Path, copy: bool, repeats: int) -> tuple[float, float]:
    """Median files/s of importing ``folder`` into a fresh database, and of importing it again (all duplicates)."""
    first, again = [], []
    for _ in range(repeats):
        database = Path(tempfile.mkdtemp(prefix="bench-study-db-"))
        try:
            report = import_files(folder, copy=copy, database=database)
            assert report.imported == FILES, report.summary()
            first.append(report.files_per_second)
            report = import_files(folder, copy=copy, database=database)
            assert report.duplicates == FILES, report.summary()
            again.append(report.files_per_second)
        finally:
            shutil.rmtree(database, ignore_errors=True)
    return statistics.median(first), statistics.median(again)


def _pydicom_rate(folder: Path, repeats: int) -> float:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".dcm")
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in files:
            pydicom.dcmread(path, stop_before_pixels=True)
        rates.append(len(files) / (time.perf_counter() - start))
    return statistics.median(rates)


def _search_times(repeats: int) -> tuple[float, float, float]:
    """Milliseconds of a name search, of listing every study, and of listing them with their series (10,000 x 3)."""
    database = Path(tempfile.mkdtemp(prefix="bench-study-db-search-"))
    try:
        store = StudyStore(database)
        rows = []
        for number in range(STUDIES):
            for series in range(3):
                rows.append(IndexedInstance(
                    path=f"/nowhere/{number}/{series}.dcm", size_bytes=1, sop_uid=f"1.2.3.{number}.{series}.1",
                    sop_class_uid=sd.CT_IMAGE_STORAGE, study_uid=f"1.2.3.{number}", series_uid=f"1.2.3.{number}.{series}",
                    patient_id=f"P{number:05d}", patient_name=f"Patient{number:05d}^Test", study_date=f"2{number % 10:03d}0101",
                    study_description="Chest", modality=("CT", "MR", "CR")[series], series_number=series + 1))
        with store.transaction():
            store.add_instances(rows, [False] * len(rows))
        times, full, with_series = [], [], []
        for _ in range(repeats):
            start = time.perf_counter()
            found = store.search(StudyQuery(patient_name="patient0123"))
            times.append((time.perf_counter() - start) * 1000)
            assert len(found) == 10, len(found)
            start = time.perf_counter()
            everything = store.search(StudyQuery())
            full.append((time.perf_counter() - start) * 1000)
            assert len(everything) == STUDIES
            start = time.perf_counter()
            everything = store.search(StudyQuery(), with_series=True)
            with_series.append((time.perf_counter() - start) * 1000)
            assert sum(len(study.series) for study in everything) == 3 * STUDIES
        store.close()
        return statistics.median(times), statistics.median(full), statistics.median(with_series)
    finally:
        shutil.rmtree(database, ignore_errors=True)


def collect(repeats: int = 3) -> list[Row]:
    folder = ct_folder()
    reference = _pydicom_rate(folder, repeats)
    in_place, in_place_again = _import_rate(folder, copy=False, repeats=repeats)
    copied, _ = _import_rate(folder, copy=True, repeats=repeats)
    search_ms, list_ms, series_ms = _search_times(max(repeats, 5))
    name = "pydicom headers only"
    return [
        Row(f"index {FILES} CT files in place", in_place, "files/s", reference, name, ">= 300 files/s"),
        Row(f"import {FILES} CT files, copied into storage", copied, "files/s", reference, name, ">= 300 files/s"),
        Row(f"re-import {FILES} files (all duplicates)", in_place_again, "files/s", reference, name),
        Row(f"name search, {STUDIES} studies", search_ms, "ms", goal="< 50 ms"),
        Row(f"list all {STUDIES} studies", list_ms, "ms"),
        Row(f"list all {STUDIES} studies with their series", series_ms, "ms"),
    ]


def main() -> None:
    repeats = 1 if "--quick" in sys.argv else 3
    print_table(collect(repeats), f"Study database ({FILES} files of {SIZE}x{SIZE} CT, warm page cache)")


if __name__ == "__main__":
    main()
