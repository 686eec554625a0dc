"""Real DICOM files shipped with pydicom and pydicom-data, compared with what pydicom reads directly."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.core.errors import CorruptFileError, NotAnImageError
from medviewer.io import load, read_volume, scan


def data_file(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pydicom-data)")
    return str(path)


def direct(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(data_file(name))
        return ds, ds.pixel_array


def expected_geometry(ds):
    row = np.array(ds.ImageOrientationPatient[:3], float)
    col = np.array(ds.ImageOrientationPatient[3:], float)
    return np.array(ds.ImagePositionPatient, float), np.column_stack([row, col, np.cross(row, col)])


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_single_slice_geometry_and_values_match_pydicom(name):
    ds, stored = direct(name)
    volume = read_volume(data_file(name))
    origin, direction = expected_geometry(ds)
    np.testing.assert_allclose(volume.geometry.origin, origin, atol=1e-9)
    np.testing.assert_allclose(volume.geometry.direction_matrix, direction, atol=1e-6)
    np.testing.assert_allclose(volume.geometry.spacing[:2], [float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])])
    assert volume.geometry.size == (ds.Columns, ds.Rows, 1)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    np.testing.assert_array_equal(volume.array[0], stored * slope + intercept)
    assert volume.modality == ds.Modality
    assert volume.metadata.units == ("HU" if ds.Modality == "CT" else "")
    if "WindowCenter" in ds:
        assert volume.metadata.windows[0] == (float(ds.WindowCenter), float(ds.WindowWidth))
    assert volume.metadata.series_uid == ds.SeriesInstanceUID
    assert volume.metadata.calibrated


@pytest.mark.parametrize("compressed", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"])
def test_compressed_transfer_syntaxes_decode_like_the_uncompressed_file(compressed):
    reference = read_volume(data_file("MR_small.dcm"))
    volume = read_volume(data_file(compressed))
    np.testing.assert_array_equal(volume.array, reference.array)
    assert volume.geometry.is_close(reference.geometry, 1e-9)


def test_jpeg2000_ct_matches_uncompressed_ct():
    ds, stored = direct("693_UNCR.dcm")
    volume = read_volume(data_file("693_J2KR.dcm"))
    np.testing.assert_array_equal(volume.array[0], stored.astype(np.int32) + int(ds.RescaleIntercept))
    assert volume.array.dtype == np.int16


def test_jpeg_lossless_decodes_through_gdcm():
    """pydicom has no JPEG-lossless decoder installed here; GDCM (SimpleITK) decodes it."""
    _, rgb = direct("SC_rgb.dcm")
    volume = read_volume(data_file("SC_rgb_jpeg_gdcm.dcm"))
    luminance = np.rint(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    np.testing.assert_array_equal(volume.array[0], luminance)
    assert any("converted to grayscale" in w for w in volume.metadata.warnings)


def test_enhanced_ct_frames_sorted_along_the_normal():
    ds, stored = direct("eCT_Supplemental.dcm")
    volume = read_volume(data_file("eCT_Supplemental.dcm"))
    shared = ds.SharedFunctionalGroupsSequence[0]
    orientation = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    positions = [np.array(f.PlanePositionSequence[0].ImagePositionPatient, float) for f in ds.PerFrameFunctionalGroupsSequence]
    order = np.argsort([p @ normal for p in positions])
    np.testing.assert_allclose(volume.geometry.origin, positions[order[0]], atol=1e-9)
    np.testing.assert_allclose(volume.geometry.spacing[2], abs((positions[1] - positions[0]) @ normal), atol=1e-9)
    spacing = shared.PixelMeasuresSequence[0].PixelSpacing
    np.testing.assert_allclose(volume.geometry.spacing[:2], [float(spacing[1]), float(spacing[0])])
    transform = shared.PixelValueTransformationSequence[0]
    expected = stored[order] * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
    np.testing.assert_array_equal(volume.array, expected)
    voi = shared.FrameVOILUTSequence[0]
    assert volume.metadata.windows == [(float(voi.WindowCenter), float(voi.WindowWidth))]


def test_multiframe_without_positions_is_stacked_in_frame_order():
    _, stored = direct("emri_small.dcm")
    volume = read_volume(data_file("emri_small.dcm"))
    np.testing.assert_array_equal(volume.array, stored)
    assert any("no position in space" in w for w in volume.metadata.warnings)


def test_computed_radiograph_monochrome1_jpeg2000():
    ds, stored = direct("RG3_UNCR.dcm")
    volume = read_volume(data_file("RG3_J2KR.dcm"))
    np.testing.assert_array_equal(volume.array[0], stored)
    assert volume.is_2d and volume.modality == "CR"
    assert volume.metadata.display_inverted
    assert volume.metadata.windows == [(float(ds.WindowCenter), float(ds.WindowWidth))]
    assert not volume.metadata.calibrated  # this file has neither PixelSpacing nor ImagerPixelSpacing


def test_palette_colour_ultrasound_becomes_luminance():
    from pydicom.pixels import apply_color_lut

    ds, indices = direct("OBXXXX1A.dcm")
    rgb = apply_color_lut(indices, ds) >> 8
    volume = read_volume(data_file("OBXXXX1A.dcm"))
    expected = np.rint(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    np.testing.assert_array_equal(volume.array[0], expected)
    assert volume.array.dtype == np.uint8


def test_rt_dose_grid_uses_frame_offsets_and_dose_scaling():
    ds, stored = direct("rtdose.dcm")
    volume = read_volume(data_file("rtdose.dcm"))
    offsets = np.array(ds.GridFrameOffsetVector, float)
    assert volume.geometry.size == (ds.Columns, ds.Rows, ds.NumberOfFrames)
    np.testing.assert_allclose(volume.geometry.spacing[2], abs(offsets[1] - offsets[0]))
    np.testing.assert_allclose(volume.array, stored * float(ds.DoseGridScaling), rtol=1e-6)


def test_non_image_and_broken_real_files():
    with pytest.raises(NotAnImageError, match="structured report"):
        scan(data_file("reportsi.dcm"))
    with pytest.raises(NotAnImageError, match="RT structure set"):
        scan(data_file("rtstruct.dcm"))  # no preamble: read with force, recognised by SOP class
    with pytest.raises(CorruptFileError, match="truncated"):
        scan(data_file("MR_truncated.dcm"))


def test_folder_of_real_files_keeps_the_good_series(tmp_path):
    for name in ("CT_small.dcm", "MR_small.dcm", "reportsi.dcm", "MR_truncated.dcm", "rtplan.dcm"):
        shutil.copy(data_file(name), tmp_path / name)
    series = scan(tmp_path)
    assert sorted(s.modality for s in series) == ["CT", "MR"]
    kinds = sorted((n.path.rsplit("/", 1)[-1], n.kind) for n in series.notes)
    assert kinds == [("MR_truncated.dcm", "corrupt"), ("reportsi.dcm", "non-image"), ("rtplan.dcm", "non-image")]
    assert all(load(s).array.size for s in series)
