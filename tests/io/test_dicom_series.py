"""DICOM series generated with pydicom: each compared with the geometry it must have.

Files are written shuffled (names and InstanceNumbers disagree with the geometric
order), SliceThickness is deliberately wrong, and every expectation is computed here
from the positions written, never from the reader.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage

import synthetic_dicom as sd
from medviewer.core.errors import InconsistentSeriesError, OperationCancelled
from medviewer.core.jobs import CancelToken
from medviewer.io import load, read_volume, scan

INTERCEPT = -1024.0


def ramp_slices(count: int, rows: int = 12, cols: int = 10) -> np.ndarray:
    """Stored values where each slice is identifiable: value = 100 * slice + 10 * row + column."""
    z, y, x = np.meshgrid(np.arange(count), np.arange(rows), np.arange(cols), indexing="ij")
    return (100 * z + 10 * y + x).astype(np.int16)


def random_orientation(seed: int) -> tuple[float, ...]:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))[None, :]
    return tuple(q[:, 0]) + tuple(q[:, 1])


def sample_world(volume, world_points: np.ndarray) -> np.ndarray:
    """Linear interpolation of the loaded volume at world points (what a viewer shows there)."""
    index = volume.geometry.world_to_index(world_points)  # (i, j, k)
    return ndimage.map_coordinates(volume.array.astype(float), index[:, ::-1].T, order=1, mode="nearest")


def original_pixel_world(position, orientation, spacing_rc, rows, cols, step=1, border=0):
    """World positions (N, 3) and (row, col) indices of a slice's pixels (``border`` pixels in from the edge)."""
    row_dir, col_dir = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    jj, ii = np.meshgrid(np.arange(border, rows - border, step), np.arange(border, cols - border, step), indexing="ij")
    world = (
        np.asarray(position)[None, :]
        + (ii.ravel() * spacing_rc[1])[:, None] * row_dir[None, :]
        + (jj.ravel() * spacing_rc[0])[:, None] * col_dir[None, :]
    )
    return world, jj.ravel(), ii.ravel()


# ---------------------------------------------------------------------------- regular stacks
def test_shuffled_axial_series_sorted_by_position(tmp_path):
    pixels = ramp_slices(8)
    positions = sd.stack_positions((-50.0, -60.0, 10.0), sd.AXIAL, np.arange(8) * 2.5)
    sd.write_series(tmp_path, pixels, positions, pixel_spacing=(0.8, 0.7), seed=3)

    series = scan(tmp_path)
    assert len(series) == 1 and not series.notes
    info = series[0]
    geometry = info.geometry
    assert geometry.size == (10, 12, 8)
    np.testing.assert_allclose(geometry.spacing, (0.7, 0.8, 2.5), atol=1e-9)  # not SliceThickness (99)
    np.testing.assert_allclose(geometry.origin, (-50.0, -60.0, 10.0), atol=1e-9)
    np.testing.assert_allclose(geometry.direction, np.eye(3).ravel(), atol=1e-12)
    assert info.orientation == "LPS" and info.warnings == []
    assert info.pixel_type == "int16" and info.modality == "CT" and len(info.files) == 8

    volume = load(info)
    np.testing.assert_array_equal(volume.array, pixels.astype(np.int16) + np.int16(INTERCEPT))
    assert volume.metadata.units == "HU"
    assert volume.metadata.series_uid == info.uid


def test_regular_series_matches_simpleitk_series_reader(tmp_path):
    orientation = random_orientation(5)
    pixels = ramp_slices(6, rows=9, cols=7)
    positions = sd.stack_positions((12.5, -33.0, 101.25), orientation, np.arange(6) * 1.7)
    sd.write_series(tmp_path, pixels, positions, orientation=orientation, pixel_spacing=(0.9, 1.1), seed=1)

    info = scan(tmp_path)[0]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    assert info.geometry.size == image.GetSize()
    np.testing.assert_allclose(info.geometry.spacing, image.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(info.geometry.origin, image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(info.geometry.direction, image.GetDirection(), atol=1e-4)
    assert info.orientation == "oblique"
    np.testing.assert_array_equal(load(info).array, sitk.GetArrayFromImage(image))


def test_oblique_series_geometry_from_positions(tmp_path):
    orientation = random_orientation(11)
    positions = sd.stack_positions((3.0, 4.0, 5.0), orientation, np.arange(5) * -2.0)  # written descending
    sd.write_series(tmp_path, ramp_slices(5), positions, orientation=orientation, pixel_spacing=(0.5, 0.6), seed=2)

    volume = read_volume(tmp_path)
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, col)
    np.testing.assert_allclose(volume.geometry.direction_matrix, np.column_stack([row, col, normal]), atol=1e-9)
    # Sorted along +normal: the first slice is the one written last.
    np.testing.assert_allclose(volume.geometry.origin, positions[-1], atol=1e-9)
    np.testing.assert_allclose(volume.geometry.spacing, (0.6, 0.5, 2.0), atol=1e-9)
    # Voxel (i, j, k) holds the pixel written at that world position.
    for k in range(5):
        source = 4 - k
        np.testing.assert_array_equal(volume.array[k], ramp_slices(5)[source] + np.int16(INTERCEPT))
    world = volume.geometry.index_to_world([3, 2, 1])
    expected = positions[3] + 3 * 0.6 * row + 2 * 0.5 * col
    np.testing.assert_allclose(world, expected, atol=1e-9)


# ---------------------------------------------------------------------------- irregular stacks
def test_missing_slice_is_filled_and_positions_stay_correct(tmp_path):
    offsets = np.array([0, 1, 2, 3, 5, 6, 7], dtype=float) * 3.0  # the slice at 12 mm is missing
    pixels = ramp_slices(7)
    positions = sd.stack_positions((0.0, 0.0, -20.0), sd.AXIAL, offsets)
    sd.write_series(tmp_path, pixels, positions, seed=4)

    info = scan(tmp_path)[0]
    assert info.geometry.size[2] == 8
    np.testing.assert_allclose(info.geometry.spacing[2], 3.0, atol=1e-9)
    assert any("1 missing slice" in w and "interpolation" in w for w in info.warnings)
    volume = load(info)
    expected = pixels.astype(float) + INTERCEPT
    for k, source in zip([0, 1, 2, 3, 5, 6, 7], range(7)):
        np.testing.assert_array_equal(volume.array[k], expected[source])
    np.testing.assert_array_equal(volume.array[4], (expected[3] + expected[4]) / 2)
    assert volume.metadata.warnings == info.warnings


def test_gantry_tilt_is_resampled_to_true_positions(tmp_path):
    """Each slice is shifted along the column direction by tan(tilt) per mm of table travel."""
    tilt = math.radians(15.0)
    rows, cols, count = 40, 36, 12
    spacing_rc = (0.8, 0.7)
    offsets = np.arange(count) * 2.0
    positions = sd.stack_positions((-10.0, -20.0, 30.0), sd.AXIAL, offsets, shear_per_mm=(0.0, math.tan(tilt)))
    # Slice content is a smooth function of the world position of each pixel.
    stored = np.empty((count, rows, cols), np.int16)
    for s in range(count):
        world, jj, ii = original_pixel_world(positions[s], sd.AXIAL, spacing_rc, rows, cols)
        stored[s, jj, ii] = sd.smooth_function(world[:, 2], world[:, 1], world[:, 0])
    sd.write_series(tmp_path, stored, positions, pixel_spacing=spacing_rc, seed=6)

    info = scan(tmp_path)[0]
    assert any("gantry tilt of 15.00 degrees" in w for w in info.warnings)
    shift_rows = math.ceil(offsets[-1] * math.tan(tilt) / spacing_rc[0] - 1e-6)
    assert info.geometry.size == (cols, rows + shift_rows, count)
    assert not info.geometry.is_oblique()
    volume = load(info)

    errors = []
    for s in range(count):
        # The outermost pixels of a sub-pixel-shifted slice blend with the padding outside
        # the acquired field of view, so they are left out of the comparison.
        world, jj, ii = original_pixel_world(positions[s], sd.AXIAL, spacing_rc, rows, cols, step=2, border=1)
        sampled = sample_world(volume, world)
        errors.append(np.abs(sampled - (stored[s, jj, ii].astype(float) + INTERCEPT)))
    errors = np.concatenate(errors)
    # Bilinear resampling of smooth content: a voxel-sized misplacement would cost tens of HU.
    assert errors.max() <= 3.0, errors.max()
    assert errors.mean() <= 0.6

    # What plain SimpleITK does with the same files (no regularisation) misplaces voxels.
    naive = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path)))
    naive_last = np.asarray(naive.TransformIndexToPhysicalPoint((0, 0, count - 1)))
    assert np.linalg.norm(naive_last - positions[-1]) > 5.0 or abs(naive.GetDirection()[5]) > 0.1


def test_variable_slice_spacing_is_resampled(tmp_path):
    offsets = np.array([0.0, 1.0, 2.0, 3.0, 5.5, 8.0, 10.5, 12.0, 13.5, 15.0])
    rows, cols = 16, 14
    spacing_rc = (1.0, 1.0)
    positions = sd.stack_positions((5.0, 6.0, -40.0), sd.AXIAL, offsets)
    stored = np.empty((len(offsets), rows, cols), np.int16)
    for s in range(len(offsets)):
        world, jj, ii = original_pixel_world(positions[s], sd.AXIAL, spacing_rc, rows, cols)
        stored[s, jj, ii] = sd.smooth_function(world[:, 2], world[:, 1], world[:, 0])
    sd.write_series(tmp_path, stored, positions, pixel_spacing=spacing_rc, seed=8)

    info = scan(tmp_path)[0]
    assert any("slice spacing varies from 1 to 2.5 mm" in w for w in info.warnings)
    assert info.geometry.size == (cols, rows, 16)
    np.testing.assert_allclose(info.geometry.spacing[2], 1.0, atol=1e-9)
    np.testing.assert_allclose(info.geometry.origin, positions[0], atol=1e-9)
    volume = load(info)
    for s in range(len(offsets)):
        world, jj, ii = original_pixel_world(positions[s], sd.AXIAL, spacing_rc, rows, cols)
        sampled = sample_world(volume, world)
        np.testing.assert_allclose(sampled, stored[s, jj, ii].astype(float) + INTERCEPT, atol=3.0)


# ---------------------------------------------------------------------------- splitting
def test_two_series_in_one_folder(tmp_path):
    study = pydicom.uid.generate_uid()
    sd.write_series(tmp_path / "a", ramp_slices(4), sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(4) * 2.0),
                    study_uid=study, series_number=3, description="Chest", prefix="A")
    sd.write_series(tmp_path / "b", ramp_slices(6, 8, 8), sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(6) * 1.0),
                    study_uid=study, series_number=2, description="Head", modality="MR", rescale=None, prefix="B")
    (tmp_path / "b" / "notes.txt").write_text("not an image")

    series = scan(tmp_path)
    assert [s.description for s in series] == ["Head", "Chest"]  # by series number
    assert [s.geometry.size for s in series] == [(8, 8, 6), (10, 12, 4)]
    assert [s.modality for s in series] == ["MR", "CT"]
    assert [n.kind for n in series.notes] == ["not-dicom"]
    np.testing.assert_array_equal(load(series[0]).array, ramp_slices(6, 8, 8))


def test_one_uid_with_three_orientations_becomes_three_series(tmp_path):
    uid = pydicom.uid.generate_uid()
    orientations = {"axial": sd.AXIAL, "coronal": (1, 0, 0, 0, 0, -1), "sagittal": (0, 1, 0, 0, 0, -1)}
    for index, (name, orientation) in enumerate(orientations.items()):
        positions = sd.stack_positions((0, 0, 0), orientation, np.arange(3) * 5.0)
        sd.write_series(tmp_path, ramp_slices(3) + index, positions, orientation=orientation,
                        series_uid=uid, description="Localizer", prefix=f"L{index}_")

    series = scan(tmp_path)
    assert len(series) == 3
    assert sorted(s.description for s in series) == [
        "Localizer [axial]", "Localizer [coronal]", "Localizer [sagittal]"]
    assert sorted(s.uid for s in series) == [f"{uid}#1", f"{uid}#2", f"{uid}#3"]
    by_name = {s.description: s for s in series}
    assert by_name["Localizer [axial]"].geometry.orientation_code() == "LPS"
    assert by_name["Localizer [coronal]"].geometry.orientation_code() == "LIP"
    assert by_name["Localizer [sagittal]"].geometry.orientation_code() == "PIR"  # normal = (0,1,0) x (0,0,-1) = -x
    assert all("split into 3 series" in " ".join(s.warnings) for s in series)
    assert read_volume(tmp_path, series=f"{uid}#2").geometry.size[2] == 3


def test_echoes_sharing_positions_are_split(tmp_path):
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(4) * 3.0)
    both = np.concatenate([positions, positions])
    pixels = ramp_slices(8)
    per_slice = [{"EchoNumbers": 1 + i // 4, "EchoTime": 10.0 * (1 + i // 4)} for i in range(8)]
    sd.write_series(tmp_path, pixels, both, modality="MR", rescale=None, per_slice=per_slice, description="Dual echo")

    series = scan(tmp_path)
    assert [s.description for s in series] == ["Dual echo [echo 1]", "Dual echo [echo 2]"]
    np.testing.assert_array_equal(load(series[0]).array, pixels[:4])
    np.testing.assert_array_equal(load(series[1]).array, pixels[4:])


def test_untagged_repeated_positions_are_split_with_a_warning(tmp_path):
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(3) * 2.0)
    sd.write_series(tmp_path, ramp_slices(6), np.concatenate([positions, positions]), seed=None)
    series = scan(tmp_path)
    assert len(series) == 2
    assert all("no tag tells them apart" in " ".join(s.warnings) for s in series)
    assert all(s.geometry.size[2] == 3 for s in series)


def test_slice_of_a_different_size_is_split_off_and_a_changed_file_is_refused(tmp_path):
    uid = pydicom.uid.generate_uid()
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(5) * 2.0)
    sd.write_series(tmp_path, ramp_slices(5), positions, series_uid=uid, seed=None)
    sd.write_series(tmp_path, ramp_slices(1, 6, 6), positions[2:3] + 1.0, series_uid=uid, prefix="ODD", seed=None)

    series = scan(tmp_path)
    assert sorted(s.geometry.size for s in series) == [(6, 6, 1), (10, 12, 5)]
    assert all("mixes image grids" in " ".join(s.warnings) for s in series)

    # A file replaced after the scan by one of another size is refused with its name.
    main = next(s for s in series if s.geometry.size[2] == 5)
    victim = Path(main.plan.slices[1].path)
    shutil.copy(next(tmp_path.glob("ODD*.dcm")), victim)
    with pytest.raises(InconsistentSeriesError, match=victim.name):
        load(main)


# ---------------------------------------------------------------------------- multi-frame
def test_enhanced_multiframe_uses_per_frame_positions_and_rescale(tmp_path):
    orientation = random_orientation(21)
    frames = ramp_slices(5, 6, 7).astype(np.uint16)
    positions = sd.stack_positions((1.0, 2.0, 3.0), orientation, np.arange(5) * 1.5)
    rescale = [(1.0, 0.0), (2.0, -5.0), (0.5, 1.0), (1.0, 3.0), (1.5, 0.0)]
    path = sd.write_enhanced(tmp_path / "enhanced.dcm", frames, positions, orientation, (0.5, 0.6),
                             rescale=rescale, frame_order=[3, 0, 4, 1, 2])

    info = scan(path)[0]
    assert info.geometry.size == (7, 6, 5)
    np.testing.assert_allclose(info.geometry.spacing, (0.6, 0.5, 1.5), atol=1e-9)
    np.testing.assert_allclose(info.geometry.origin, positions[0], atol=1e-9)
    assert info.pixel_type == "float32"
    volume = load(info)
    expected = np.stack([frames[k] * slope + intercept for k, (slope, intercept) in enumerate(rescale)])
    np.testing.assert_allclose(volume.array, expected, atol=1e-4)
    assert volume.metadata.windows == [(300.0, 800.0)]


# ---------------------------------------------------------------------------- non-images, 2D, types
def test_non_image_objects_are_skipped_with_notes(tmp_path):
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(3) * 2.0)
    sd.write_series(tmp_path, ramp_slices(3), positions)
    sd.write_structured_report(tmp_path / "report.dcm")
    sd.write_rtstruct(tmp_path / "contours")
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 4)

    series = scan(tmp_path)
    assert len(series) == 1 and series[0].geometry.size == (10, 12, 3)
    notes = {Path(n.path).name: n for n in series.notes}
    assert notes["report.dcm"].kind == "non-image" and "structured report" in notes["report.dcm"].reason
    assert notes["contours"].kind == "non-image" and "RT structure set" in notes["contours"].reason
    assert notes["junk.bin"].kind == "not-dicom"
    assert "2 non-image DICOM objects" in series.notes_summary()


def test_radiograph_spacing_inversion_and_windows(tmp_path):
    pixels = (np.arange(20 * 30).reshape(20, 30) % 4096).astype(np.uint16)
    with_imager = sd.write_radiograph(tmp_path / "dx.dcm", pixels, modality="DX", imager_pixel_spacing=(0.15, 0.14),
                                      photometric="MONOCHROME1", window=([2000.0, 1000.0], [4000.0, 500.0]))
    uncalibrated = sd.write_radiograph(tmp_path / "cr.dcm", pixels, pixel_spacing=(0.0, 0.0))

    dx = read_volume(with_imager)
    assert dx.is_2d and dx.geometry.size == (30, 20, 1)
    np.testing.assert_allclose(dx.geometry.spacing[:2], (0.14, 0.15))
    assert dx.metadata.calibrated and dx.metadata.display_inverted
    assert dx.metadata.windows == [(2000.0, 4000.0), (1000.0, 500.0)]
    assert any("ImagerPixelSpacing" in w for w in dx.metadata.warnings)
    np.testing.assert_array_equal(dx.array[0], pixels)

    cr = read_volume(uncalibrated)
    assert not cr.metadata.calibrated and cr.geometry.spacing == (1.0, 1.0, 1.0)
    assert any("measurements are in pixels" in w for w in cr.metadata.warnings)


def test_fractional_rescale_gives_float32_and_wide_values_widen(tmp_path):
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(3) * 2.0)
    pixels = ramp_slices(3)
    sd.write_series(tmp_path / "pet", pixels, positions, modality="PT", rescale=(0.25, 0.5))
    pet = read_volume(tmp_path / "pet")
    assert pet.array.dtype == np.float32
    np.testing.assert_array_equal(pet.array, pixels * np.float32(0.25) + np.float32(0.5))

    wide = pixels.copy()
    wide[1, 0, 0] = 32000  # signed 16-bit with intercept -1024 can fall outside int16 ...
    wide[2, 0, 0] = -32000  # ... at both ends; the loader widens instead of wrapping.
    sd.write_series(tmp_path / "wide", wide, positions)
    volume = read_volume(tmp_path / "wide")
    assert volume.array.dtype == np.int32
    np.testing.assert_array_equal(volume.array, wide.astype(np.int32) - 1024)


def test_truncated_slice_in_a_folder_is_left_out_and_the_rest_loads(tmp_path):
    pixels = ramp_slices(6)
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(6) * 2.0)
    paths = sd.write_series(tmp_path, pixels, positions, seed=None)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 50])

    series = scan(tmp_path)
    assert [n.kind for n in series.notes] == ["corrupt"] and "truncated" in series.notes[0].reason
    info = series[0]
    assert info.geometry.size[2] == 6  # the gap is filled, positions stay right
    assert any(paths[2].name in w for w in info.warnings)
    assert any("missing slice" in w for w in info.warnings)
    volume = load(info)
    np.testing.assert_array_equal(volume.array[3], pixels[3] + np.int16(INTERCEPT))


# ---------------------------------------------------------------------------- progress and cancel
def test_progress_reaches_one_and_cancel_stops(tmp_path):
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(5) * 2.0)
    sd.write_series(tmp_path, ramp_slices(5), positions)
    reported = []
    info = scan(tmp_path, progress=lambda f, m="": reported.append(f))[0]
    load(info, progress=lambda f, m="": reported.append(f))
    assert reported[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in reported)

    token = CancelToken()
    token.cancel()
    with pytest.raises(OperationCancelled):
        scan(tmp_path, cancel=token)
    with pytest.raises(OperationCancelled):
        load(info, cancel=token)


def test_loading_does_not_copy_the_volume(tmp_path):
    """Slices go straight into one array: peak allocations stay near the array size (SimpleITK: 2x+)."""
    import tracemalloc

    pixels = np.zeros((48, 128, 128), np.int16)
    sd.write_series(tmp_path, pixels, sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(48) * 1.0))
    info = scan(tmp_path)[0]
    tracemalloc.start()
    try:
        volume = load(info)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.3 * volume.array.nbytes, peak / volume.array.nbytes


def test_scattered_slabs_are_split_instead_of_invented(tmp_path):
    """Two 4-slice slabs 100 mm apart would need 96 interpolated slices: they become two stacks."""
    offsets = np.concatenate([np.arange(4) * 2.0, 100.0 + np.arange(4) * 2.0])
    sd.write_series(tmp_path, ramp_slices(8), sd.stack_positions((0, 0, 0), sd.AXIAL, offsets))
    series = scan(tmp_path)
    assert [s.geometry.size[2] for s in series] == [4, 4]
    assert [s.geometry.origin[2] for s in series] == [0.0, 100.0]
    assert all("not contiguous" in " ".join(s.warnings) for s in series)
    assert [s.description for s in series] == ["Synthetic series [stack 1]", "Synthetic series [stack 2]"]


# ---------------------------------------------------------------------------- geometry the headers do not give (issue 18.9)
BROKEN_ORIENTATIONS = {
    "all zero": ((0.0,) * 6, "ImageOrientationPatient is all zero (0, 0, 0, 0, 0, 0)"),
    "rows parallel to columns": ((1.0, 0.0, 0.0, 1.0, 0.0, 0.0), "ImageOrientationPatient has parallel row and column directions (1, 0, 0, 1, 0, 0)"),
    "zero column": ((1.0, 0.0, 0.0, 0.0, 0.0, 0.0), "ImageOrientationPatient has a zero column direction (1, 0, 0, 0, 0, 0)"),
    "NaN": ((math.nan, 0.0, 0.0, 0.0, 1.0, 0.0), "ImageOrientationPatient holds values that are not finite numbers (not a number, 0, 0, 0, 1, 0)"),
    "Inf": ((1.0, 0.0, 0.0, 0.0, math.inf, 0.0), "ImageOrientationPatient holds values that are not finite numbers (1, 0, 0, 0, not a number, 0)"),
}


@pytest.mark.parametrize("case", list(BROKEN_ORIENTATIONS))
def test_unusable_orientation_opens_as_axial_with_a_warning(tmp_path, case):
    orientation, problem = BROKEN_ORIENTATIONS[case]
    pixels = ramp_slices(4)
    positions = sd.stack_positions((-20.0, 30.0, 5.0), sd.AXIAL, np.arange(4) * 2.5)
    sd.write_series(tmp_path, pixels, positions, orientation=orientation, seed=2)

    series = scan(tmp_path)
    assert len(series) == 1  # not a NaN traceback, not four one-slice series
    info = series[0]
    assert info.geometry.size == (10, 12, 4)
    np.testing.assert_allclose(info.geometry.spacing, (0.7, 0.8, 2.5), atol=1e-9)
    np.testing.assert_allclose(info.geometry.origin, (-20.0, 30.0, 5.0), atol=1e-9)
    np.testing.assert_allclose(info.geometry.direction, np.eye(3).ravel(), atol=1e-12)
    assert info.warnings == [
        f"{problem} in 4 files (e.g. {tmp_path / 'IMG00000.dcm'}): the orientation is unknown, axial was assumed "
        "(the axis along which the slice positions change); left/right and front/back may be wrong"
    ]
    volume = load(info)
    np.testing.assert_array_equal(volume.array, pixels + np.int16(INTERCEPT))  # sorted by position
    assert volume.metadata.warnings == info.warnings


def test_zero_orientation_of_a_sagittal_stack_assumes_sagittal(tmp_path):
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    pixels = ramp_slices(5)
    positions = sd.stack_positions((40.0, -10.0, 60.0), sagittal, np.arange(5) * 3.0)  # x changes, y and z do not
    sd.write_series(tmp_path, pixels, positions, orientation=(0.0,) * 6, seed=4)

    series = scan(tmp_path)
    assert len(series) == 1
    info = series[0]
    assert info.geometry.size == (10, 12, 5)
    np.testing.assert_allclose(info.geometry.spacing, (0.7, 0.8, 3.0), atol=1e-9)
    np.testing.assert_allclose(np.reshape(info.geometry.direction, (3, 3)), [[0, 0, -1], [1, 0, 0], [0, -1, 0]], atol=1e-12)
    # Slices sorted along the assumed normal (-x): the order they were written in, not the file order.
    np.testing.assert_allclose(info.geometry.origin, positions[0], atol=1e-9)
    assert len(info.warnings) == 1 and "sagittal was assumed (the axis along which the slice positions change)" in info.warnings[0]
    np.testing.assert_array_equal(load(info).array, pixels + np.int16(INTERCEPT))


def test_slices_without_positions_are_stacked_by_instance_number(tmp_path):
    pixels = ramp_slices(5)
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(5) * 2.0)
    paths = sd.write_series(tmp_path, pixels, positions, orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0), seed=7,
                            extra={"SpacingBetweenSlices": 2.0})
    sd.edit_files(paths, ImagePositionPatient=sd.DELETE)
    instance = [int(pydicom.dcmread(p).InstanceNumber) for p in paths]  # shuffled against the slice order

    series = scan(tmp_path)
    assert len(series) == 1  # not five one-slice series
    info = series[0]
    assert info.geometry.size == (10, 12, 5)
    np.testing.assert_allclose(info.geometry.spacing, (0.7, 0.8, 2.0), atol=1e-9)
    assert info.geometry.origin == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(np.reshape(info.geometry.direction, (3, 3)), [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    assert info.warnings == [
        f"ImagePositionPatient is missing in 5 files (e.g. {tmp_path / 'IMG00000.dcm'}): the 5 slices were stacked in "
        "InstanceNumber order, 2 mm apart (from SpacingBetweenSlices), origin (0, 0, 0) assumed, "
        "directions from ImageOrientationPatient"
    ]
    by_instance = np.argsort(instance)
    np.testing.assert_array_equal(load(info).array, pixels[by_instance] + np.int16(INTERCEPT))


def test_slices_without_positions_are_ordered_and_spaced_by_slice_location(tmp_path):
    pixels = ramp_slices(4)
    paths = sd.write_series(tmp_path, pixels, np.zeros((4, 3)), seed=1)
    locations = [12.5, -2.5, 7.5, 2.5]  # 5 mm apart, in neither file nor InstanceNumber order
    for path, location in zip(paths, locations):
        sd.edit_files([path], ImagePositionPatient=sd.DELETE, SliceLocation=location)

    series = scan(tmp_path)
    assert len(series) == 1
    info = series[0]
    assert info.geometry.size == (10, 12, 4)
    np.testing.assert_allclose(info.geometry.spacing, (0.7, 0.8, 5.0), atol=1e-9)
    assert len(info.warnings) == 1
    assert "the 4 slices were stacked in SliceLocation order, 5 mm apart, origin (0, 0, 0) assumed" in info.warnings[0]
    np.testing.assert_array_equal(load(info).array, pixels[np.argsort(locations)] + np.int16(INTERCEPT))


def test_single_image_without_or_with_nan_position_says_the_origin_was_assumed(tmp_path):
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    missing = sd.write_series(tmp_path / "a", ramp_slices(1), np.zeros((1, 3)), orientation=coronal)[0]
    sd.edit_files([missing], ImagePositionPatient=sd.DELETE)
    nan = sd.write_series(tmp_path / "b", ramp_slices(1), [[math.nan, 0.0, 0.0]])[0]

    info = scan(missing)[0]
    assert info.geometry.size == (10, 12, 1) and info.geometry.origin == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(np.reshape(info.geometry.direction, (3, 3)), [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    assert info.warnings == [f"ImagePositionPatient is missing in {missing}: origin (0, 0, 0) assumed"]
    info = scan(nan)[0]
    assert info.geometry.origin == (0.0, 0.0, 0.0)
    assert info.warnings == [
        f"ImagePositionPatient holds values that are not finite numbers (not a number, 0, 0) in {nan}: origin (0, 0, 0) assumed"
    ]


def test_radiographs_without_positions_stay_separate_images(tmp_path):
    series_uid = "1.2.826.0.1.3680043.8.498.18"
    for name in ("pa", "lat"):
        path = sd.write_radiograph(tmp_path / f"{name}.dcm", np.zeros((20, 30), np.uint16), pixel_spacing=(0.2, 0.2))
        sd.edit_files([path], SeriesInstanceUID=series_uid, InstanceNumber=1 if name == "pa" else 2)
    # So do the pages of a CT dose report (secondary capture, modality CT).
    pages = sd.write_series(tmp_path / "dose", ramp_slices(2), np.zeros((2, 3)), prefix="DOSE")
    sd.edit_files(pages, ImagePositionPatient=sd.DELETE, ImageOrientationPatient=sd.DELETE,
                  SOPClassUID="1.2.840.10008.5.1.4.1.1.7")
    series = scan(tmp_path)
    assert sorted(s.geometry.size for s in series) == [(10, 12, 1), (10, 12, 1), (30, 20, 1), (30, 20, 1)]
    assert all(s.warnings == [] for s in series)


# ---------------------------------------------------------------------------- files without SeriesInstanceUID (issue 18.15)
def test_files_without_series_uid_are_grouped_like_dcm2niix(tmp_path):
    study = "1.2.826.0.1.3680043.8.498.1815"
    ct_pixels = ramp_slices(20)
    ct_positions = sd.stack_positions((-120.0, -80.0, -300.0), sd.AXIAL, np.arange(20) * 3.27)
    ct = sd.write_series(tmp_path / "export", ct_pixels, ct_positions, study_uid=study, series_number=2,
                         description="CT AC", seed=5, prefix="CT")
    pet_positions = sd.stack_positions((-120.0, -80.0, -300.0), sd.AXIAL, np.arange(6) * 4.0)
    pet = sd.write_series(tmp_path / "export", ramp_slices(6, rows=8, cols=8), pet_positions, study_uid=study,
                          series_number=3, description="PET AC", modality="PT", rescale=None, seed=6, prefix="PT")
    sd.edit_files(ct, SeriesInstanceUID="")  # empty, as in the real PET/CT export
    sd.edit_files(pet, SeriesInstanceUID=sd.DELETE)  # or missing
    with_uid = sd.write_series(tmp_path / "export", ramp_slices(3), ct_positions[:3], study_uid=study,
                               series_number=4, description="CT AC", seed=None, prefix="UID")
    uid = pydicom.dcmread(with_uid[0]).SeriesInstanceUID

    series = scan(tmp_path)
    assert [(s.number, s.geometry.size) for s in series] == [(2, (10, 12, 20)), (3, (8, 8, 6)), (4, (10, 12, 3))]
    no_uid = "the files have no SeriesInstanceUID: grouped into one series by study, frame of reference, series number and description, orientation and image size"
    ct_info, pet_info, uid_info = series
    assert ct_info.warnings == [no_uid] and pet_info.warnings == [no_uid]
    np.testing.assert_allclose(ct_info.geometry.spacing, (0.7, 0.8, 3.27), atol=1e-9)  # from the positions
    np.testing.assert_allclose(ct_info.geometry.origin, (-120.0, -80.0, -300.0), atol=1e-9)
    np.testing.assert_allclose(pet_info.geometry.spacing[2], 4.0, atol=1e-9)
    assert len(ct_info.files) == 20 and ct_info.plan.metadata.series_uid == ""
    np.testing.assert_array_equal(load(ct_info).array, ct_pixels + np.int16(INTERCEPT))
    # Files that carry a SeriesInstanceUID keep it (and their own grouping).
    assert uid_info.uid == uid and uid_info.warnings == [] and len(uid_info.files) == 3


def test_uidless_files_of_different_orientation_or_size_stay_apart(tmp_path):
    study = "1.2.826.0.1.3680043.8.498.1816"
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    axial = sd.write_series(tmp_path, ramp_slices(3), sd.stack_positions((0, 0, 0), sd.AXIAL, [0, 2, 4]),
                            study_uid=study, prefix="AX")
    cor = sd.write_series(tmp_path, ramp_slices(3), sd.stack_positions((0, 0, 0), coronal, [0, 2, 4]),
                          orientation=coronal, study_uid=study, prefix="COR")
    small = sd.write_series(tmp_path, ramp_slices(3, rows=6, cols=6), sd.stack_positions((0, 0, 0), sd.AXIAL, [1, 3, 5]),
                            study_uid=study, prefix="SM")
    sd.edit_files(axial + cor + small, SeriesInstanceUID=sd.DELETE)

    series = scan(tmp_path)
    assert sorted((s.geometry.size, s.orientation) for s in series) == [
        ((6, 6, 3), "LPS"), ((10, 12, 3), "LIP"), ((10, 12, 3), "LPS")
    ]
    assert all(s.warnings[0].startswith("the files have no SeriesInstanceUID") for s in series)
    assert not any("mixes image grids" in w for s in series for w in s.warnings)


# ---------------------------------------------------------------------------- pixel data that lies (issue 18.12)
def test_padding_after_the_pixel_data_is_a_warning(tmp_path):
    path = sd.write_series(tmp_path, ramp_slices(1), np.zeros((1, 3)))[0]
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData + b"\0" * 6
    ds.save_as(path)
    info = scan(path)[0]
    assert info.warnings == [f"the pixel data has 6 bytes more than Rows 12 x Columns 10 at 16 bits needs; they were ignored ({path})"]
    np.testing.assert_array_equal(load(info).array[0], ramp_slices(1)[0] + np.int16(INTERCEPT))


def test_nan_and_inf_in_float_pixel_data_are_warned(tmp_path):
    values = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) / 3
    values[0, 0], values[1, 2], values[2, 3] = np.nan, np.inf, -np.inf
    path = sd.write_float_image(tmp_path / "map.dcm", values)
    info = scan(path)[0]
    assert info.pixel_type == "float32"
    volume = load(info)
    assert volume.array.dtype == np.float32
    np.testing.assert_array_equal(volume.array[0], values)  # bit-exact, NaN where NaN
    assert volume.metadata.warnings == ["the pixel data holds 1 NaN and 2 infinite (+/-Inf) voxels: they are not measurements"]

    all_nan = sd.write_float_image(tmp_path / "nan.dcm", np.full((3, 4), np.nan, np.float32))
    assert load(scan(all_nan)[0]).metadata.warnings == ["the pixel data holds 12 NaN voxels: they are not measurements"]
    finite = sd.write_float_image(tmp_path / "finite.dcm", np.nan_to_num(values, posinf=1.0, neginf=-1.0))
    assert load(scan(finite)[0]).metadata.warnings == []


def test_enhanced_multiframe_with_zero_orientation_assumes_a_plane(tmp_path):
    frames = ramp_slices(4)
    positions = sd.stack_positions((5.0, 6.0, 7.0), sd.AXIAL, np.arange(4) * 1.5)
    path = sd.write_enhanced(tmp_path / "enhanced.dcm", frames, positions, orientation=(0.0,) * 6, frame_order=[2, 0, 3, 1])
    series = scan(path)
    assert len(series) == 1
    info = series[0]
    assert info.geometry.size == (10, 12, 4)
    np.testing.assert_allclose(info.geometry.spacing, (0.6, 0.5, 1.5), atol=1e-9)
    np.testing.assert_allclose(info.geometry.origin, (5.0, 6.0, 7.0), atol=1e-9)
    assert info.warnings == [
        f"ImageOrientationPatient is all zero (0, 0, 0, 0, 0, 0) in {path}: the orientation is unknown, axial was "
        "assumed (the axis along which the slice positions change); left/right and front/back may be wrong"
    ]
    np.testing.assert_array_equal(load(info).array, frames)
