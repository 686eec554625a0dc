"""Demo data speed: phantom generation, DICOM writing, radiograph and the whole first-run demo build.

Prints a table (median of repeated runs; peak resident-memory growth) with references
measured in the same run: drawing a same-size volume of Gaussian noise with NumPy (the
cost of touching every voxel once), and SimpleITK writing the same CT as a NIfTI file.
Goals (issue 2): a 512 x 512 x 200 phantom in a few seconds, the demo data in well under
a minute on a fresh machine.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, median_time, peak_memory_during, print_table  # noqa: E402

FULL_SHAPE = (200, 512, 512)
FULL_SPACING = (0.7, 0.7, 1.5)
SMALL_SHAPE = (64, 128, 128)
SMALL_SPACING = (2.8, 2.8, 4.7)


def collect(repeats: int = 3) -> list[Row]:
    import numpy as np
    import SimpleITK as sitk

    from medviewer.demo.phantom_radiograph import chest_radiograph
    from medviewer.demo.phantoms import ChestPhantomParams, generate_chest_ct
    from medviewer.imaging.sitk_bridge import volume_to_sitk
    from medviewer.io.dicom_write import write_dicom_series
    from medviewer.services.demo import ensure_demo_data

    params = ChestPhantomParams.from_seed(20264)
    rows: list[Row] = []
    rng = np.random.default_rng(0)

    def noise_reference() -> None:
        rng.standard_normal(FULL_SHAPE, dtype=np.float32)

    noise_time = median_time(noise_reference, repeats=repeats)
    full_time = median_time(lambda: generate_chest_ct(params, FULL_SHAPE, FULL_SPACING), repeats=repeats)
    case, peak = peak_memory_during(lambda: generate_chest_ct(params, FULL_SHAPE, FULL_SPACING))
    rows.append(Row("phantom 512x512x200 (0.7x0.7x1.5 mm)", full_time, "s", noise_time, "numpy randn same size", "a few seconds"))
    array_mb = case.volume.array.nbytes / 2**20
    rows.append(Row("phantom 512x512x200 peak memory", peak / 2**20, "MiB", array_mb, "int16 volume size"))
    small_time = median_time(lambda: generate_chest_ct(params, SMALL_SHAPE, SMALL_SPACING), repeats=repeats)
    rows.append(Row("phantom 128x128x64 (2.8x2.8x4.7 mm)", small_time, "s", goal="training-size case"))
    params_time = median_time(lambda: ChestPhantomParams.from_seed(20264), repeats=repeats)
    rows.append(Row("ChestPhantomParams.from_seed", params_time * 1000.0, "ms"))

    folder = Path(tempfile.mkdtemp(prefix="bench-phantom-"))
    try:
        counter = iter(range(10**6))

        def write_dicom() -> None:
            write_dicom_series(case.volume, folder / f"dicom-{next(counter)}", uid_seed="bench")

        def write_nifti() -> None:
            sitk.WriteImage(volume_to_sitk(case.volume), str(folder / f"ct-{next(counter)}.nii"))

        dicom_time = median_time(write_dicom, repeats=repeats)
        nifti_time = median_time(write_nifti, repeats=repeats)
        rows.append(Row("write CT as 200-file DICOM series", dicom_time, "s", nifti_time, "SimpleITK NIfTI write"))
        drr_time = median_time(lambda: chest_radiograph(case.volume), repeats=repeats)
        rows.append(Row("PA chest radiograph (DRR) of the CT", drr_time, "s"))
        demo_times = []
        for run in range(max(1, repeats - 1)):
            target = folder / f"demo-{run}"
            demo_times.append(median_time(lambda t=target: ensure_demo_data(folder=t), repeats=1, warmup=0))
        rows.append(Row("ensure_demo_data, first run (CT+labels+MR+X-ray)", float(np.median(demo_times)), "s", goal="well under 60 s"))
        cached = median_time(lambda: ensure_demo_data(folder=folder / "demo-0"), repeats=repeats)
        rows.append(Row("ensure_demo_data, cached", cached * 1000.0, "ms"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main() -> None:
    print_table(collect(), "Demo data (phantom generator, DICOM writer, demo service)")


if __name__ == "__main__":
    main()
