"""Open a 512x512x300 int16 CT as NIfTI and as a 300-file DICOM series: medviewer vs plain SimpleITK.

The CT is synthetic (a body ellipse with lungs, spine and noise, in HU), generated once
into the cache folder; the DICOM files are written with pydicom here, so the benchmark
depends on nothing but the reader. Goals (issue 2): load time within 1.3x of plain
SimpleITK, peak memory within 2x of the array size, also for a 512x512x600 series.

Run: ``.venv/bin/python bench/bench_load.py`` (add ``--quick`` for fewer repeats).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from common import Row, peak_memory_during, print_table  # noqa: I001 - sets sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "io"))

import SimpleITK as sitk  # noqa: E402
import synthetic_dicom as sd  # noqa: E402

from medviewer.core.paths import cache_dir  # noqa: E402
from medviewer.io import load, scan  # noqa: E402

SIZE = 512
SLICES = 300
BIG_SLICES = 600
SPACING = (0.7, 0.7, 1.0)  # x, y, z mm


def synthetic_ct(slices: int, seed: int = 0) -> np.ndarray:
    """HU volume (z, y, x) int16: air, a soft-tissue ellipse, two lungs, a spine, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    cy, cx = SIZE / 2, SIZE / 2
    body = ((x - cx) / 220) ** 2 + ((y - cy) / 160) ** 2 <= 1
    lungs = (((x - cx + 95) / 70) ** 2 + ((y - cy + 10) / 100) ** 2 <= 1) | (
        ((x - cx - 95) / 70) ** 2 + ((y - cy + 10) / 100) ** 2 <= 1
    )
    spine = ((x - cx) / 25) ** 2 + ((y - cy - 110) / 25) ** 2 <= 1
    base = np.full((SIZE, SIZE), -1000, np.int16)
    base[body] = 40
    base[lungs] = -850
    base[spine] = 700
    volume = np.empty((slices, SIZE, SIZE), np.int16)
    noise = rng.normal(0, 15, size=(8, SIZE, SIZE)).astype(np.int16)
    for k in range(slices):
        volume[k] = base + noise[k % 8]
    return volume


def dataset(slices: int) -> tuple[Path, Path]:
    """The DICOM folder and NIfTI file of a ``slices``-slice CT (generated on first use)."""
    folder = cache_dir() / "bench_load" / f"ct_{SIZE}x{SIZE}x{slices}"
    dicom, nifti, done = folder / "dicom", folder / "ct.nii", folder / ".complete"
    if not done.exists():
        print(f"generating {dicom} (once)...", file=sys.stderr)
        hu = synthetic_ct(slices)
        positions = sd.stack_positions((-179.2, -179.2, -150.0), sd.AXIAL, np.arange(slices) * SPACING[2])
        stored = (hu.astype(np.int32) + 1024).astype(np.int16)
        sd.write_series(dicom, stored, positions, pixel_spacing=(SPACING[1], SPACING[0]), seed=1)
        image = sitk.GetImageFromArray(hu)
        image.SetSpacing(SPACING)
        image.SetOrigin((-179.2, -179.2, -150.0))
        sitk.WriteImage(image, str(nifti))
        sitk.WriteImage(image, str(nifti.with_suffix(".nii.gz")))
        done.touch()
    return dicom, nifti


# ---------------------------------------------------------------------------- the contenders
def medviewer_open(path: Path) -> np.ndarray:
    return load(scan(path)[0]).array


def sitk_read_image(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def sitk_series(folder: Path) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def paired_medians(candidate, reference, repeats: int) -> tuple[float, float]:
    """Median times of two functions run alternately, so load from other processes hits both alike."""
    candidate()
    reference()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((candidate, times[0]), (reference, times[1])):
            gc.collect()
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def measure_memory(fn) -> tuple[float, int]:
    gc.collect()
    result, peak = peak_memory_during(fn)
    nbytes = result.nbytes
    del result
    gc.collect()
    return peak / 2**20, nbytes


def collect(repeats: int = 5) -> list[Row]:
    rows: list[Row] = []
    dicom, nifti = dataset(SLICES)
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    array_mib = SIZE * SIZE * SLICES * 2 / 2**20

    # (a) NIfTI, uncompressed and gzipped
    for path in (nifti, nifti.with_suffix(".nii.gz")):
        name = path.name
        mv, ref = paired_medians(lambda: medviewer_open(path), lambda: sitk_read_image(path), repeats)
        rows.append(Row(f"{name}: open time", mv, "s", ref, "sitk.ReadImage+GetArrayFromImage", "<= 1.3x"))
        mv_peak, _ = measure_memory(lambda: medviewer_open(path))
        ref_peak, _ = measure_memory(lambda: sitk_read_image(path))
        rows.append(Row(f"{name}: peak memory", mv_peak, "MiB", ref_peak, "SimpleITK", ""))
        rows.append(Row(f"{name}: peak / array size", mv_peak, "MiB", array_mib, "array size", "<= 2x"))

    # (b) DICOM series
    infos = scan(dicom)
    info = infos[0]
    sorted_files = [item.path for item in info.plan.slices]

    def sitk_series_sorted() -> np.ndarray:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sorted_files)
        return sitk.GetArrayFromImage(reader.Execute())

    mv, ref = paired_medians(lambda: medviewer_open(dicom), lambda: sitk_series(dicom), repeats)
    rows.append(Row(f"DICOM {SLICES} files: scan+load time", mv, "s", ref, "GetGDCMSeriesFileNames+ImageSeriesReader", "<= 1.3x"))
    mv, ref = paired_medians(lambda: load(info).array, sitk_series_sorted, repeats)
    rows.append(Row("DICOM: load time (sorted files given)", mv, "s", ref, "ImageSeriesReader+GetArrayFromImage", "<= 1.3x"))
    mv, ref = paired_medians(lambda: scan(dicom), lambda: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(dicom)), repeats)
    rows.append(Row("DICOM: header scan time", mv, "s", ref, "GetGDCMSeriesFileNames", ""))
    mv_peak, _ = measure_memory(lambda: medviewer_open(dicom))
    ref_peak, _ = measure_memory(lambda: sitk_series(dicom))
    rows.append(Row("DICOM: peak memory", mv_peak, "MiB", ref_peak, "SimpleITK", ""))
    rows.append(Row("DICOM: peak / array size", mv_peak, "MiB", array_mib, "array size", "<= 2x"))

    # 512x512x600: the memory goal of the issue
    big, _ = dataset(BIG_SLICES)
    big_peak, nbytes = measure_memory(lambda: medviewer_open(big))
    rows.append(Row(f"DICOM {BIG_SLICES} files: peak / array size", big_peak, "MiB", nbytes / 2**20, "array size", "<= 2x"))
    big_ref, _ = measure_memory(lambda: sitk_series(big))
    rows.append(Row(f"DICOM {BIG_SLICES} files: peak memory", big_peak, "MiB", big_ref, "SimpleITK", ""))
    return rows


def main() -> None:
    repeats = 2 if "--quick" in sys.argv else 5
    rows = collect(repeats)
    title = (
        f"bench_load: {SIZE}x{SIZE}x{SLICES} int16 CT (median of {repeats} runs alternating with the reference; "
        "memory = peak RSS growth)"
    )
    print_table(rows, title)


if __name__ == "__main__":
    main()
