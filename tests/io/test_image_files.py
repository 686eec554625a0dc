"""NIfTI/NRRD/MHA/MHD volumes and PNG/JPEG/TIFF/BMP images read through SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.io import load, read_volume, scan


def write_sitk(array: np.ndarray, path, spacing=None, origin=None, direction=None, vector=False) -> sitk.Image:
    image = sitk.GetImageFromArray(array, isVector=vector)
    if spacing is not None:
        image.SetSpacing(spacing)
    if origin is not None:
        image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return image


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha"])
def test_volume_geometry_is_what_simpleitk_reads(tmp_path, extension):
    rng = np.random.default_rng(1)
    array = rng.integers(-1000, 2000, size=(4, 5, 6)).astype(np.int16)
    direction = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    path = tmp_path / f"ct{extension}"
    write_sitk(array, path, (0.7, 0.8, 2.5), (-12.5, 40.25, 7.0), direction)

    info = scan(path)[0]
    image = sitk.ReadImage(str(path))
    assert info.geometry.size == image.GetSize()
    assert info.geometry.spacing == image.GetSpacing()
    assert info.geometry.origin == image.GetOrigin()
    assert info.geometry.direction == image.GetDirection()
    assert info.pixel_type == "int16" and info.description == "ct"
    volume = load(info)
    np.testing.assert_array_equal(volume.array, array)
    assert volume.metadata.calibrated and volume.metadata.source_format == info.source_format


def test_luna16_style_mhd_raw_pair_in_a_folder(tmp_path):
    array = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    write_sitk(array, tmp_path / "1.3.6.1.4.1.14519.mhd", (0.6, 0.6, 2.5), (-150.0, -170.0, -300.0))
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".mhd", ".raw"]
    series = scan(tmp_path)
    assert len(series) == 1 and not series.notes  # the .raw half is not a second series nor a note
    assert len(series[0].files) == 2
    np.testing.assert_array_equal(load(series[0]).array, array)
    assert series[0].geometry.origin == (-150.0, -170.0, -300.0)


def test_4d_nifti_loads_its_first_volume(tmp_path):
    array = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # (t, z, y, x)
    image = sitk.JoinSeries([sitk.GetImageFromArray(array[0]), sitk.GetImageFromArray(array[1])])
    sitk.WriteImage(image, str(tmp_path / "fmri.nii.gz"))
    info = scan(tmp_path / "fmri.nii.gz")[0]
    assert info.geometry.size == (5, 4, 3)
    assert any("4D image with 2 volumes" in w for w in info.warnings)
    np.testing.assert_array_equal(load(info).array, array[0])


def test_rgb_png_becomes_luminance_and_uncalibrated(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(6, 9, 3)).astype(np.uint8)
    write_sitk(rgb, tmp_path / "xray.png", vector=True)
    volume = read_volume(tmp_path / "xray.png")
    expected = np.rint(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    np.testing.assert_array_equal(volume.array[0], expected)
    assert volume.array.dtype == np.uint8 and volume.is_2d
    assert volume.geometry == volume.geometry.replace(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    assert not volume.metadata.calibrated
    warnings = " ".join(volume.metadata.warnings)
    assert "luminance" in warnings and "measurements are in pixels" in warnings


@pytest.mark.parametrize("extension, dtype", [(".png", np.uint16), (".tif", np.uint16), (".bmp", np.uint8), (".jpg", np.uint8)])
def test_grayscale_raster_formats(tmp_path, extension, dtype):
    array = (np.arange(8 * 10).reshape(8, 10) * (700 if dtype == np.uint16 else 3)).astype(dtype)
    write_sitk(array, tmp_path / f"image{extension}", spacing=(0.1, 0.1))  # DPI-like spacing is ignored
    volume = read_volume(tmp_path / f"image{extension}")
    assert volume.geometry.size == (10, 8, 1) and volume.geometry.spacing == (1.0, 1.0, 1.0)
    assert volume.array.dtype == dtype
    if extension == ".jpg":  # lossy
        assert np.abs(volume.array[0].astype(int) - array).mean() < 3
    else:
        np.testing.assert_array_equal(volume.array[0], array)


@pytest.mark.parametrize("variant", ["little-endian", "big-endian", "scaled", "gz"])
def test_nifti_direct_voxel_reading_matches_simpleitk(tmp_path, variant):
    """The copy-free NIfTI path must give exactly SimpleITK's voxels, or step aside."""
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(4)
    data_xyz = rng.integers(-2000, 3000, size=(6, 5, 4)).astype(np.int16)
    affine = np.diag([0.8, 0.9, 2.0, 1.0])
    affine[:3, 3] = (-10.0, 20.0, 30.0)
    image = nib.Nifti1Image(data_xyz.astype(">i2") if variant == "big-endian" else data_xyz, affine)
    if variant == "scaled":
        image.header.set_slope_inter(0.5, -3.0)
    path = tmp_path / ("v.nii.gz" if variant == "gz" else "v.nii")
    nib.save(image, str(path))

    volume = read_volume(path)
    reference = sitk.ReadImage(str(path))
    expected = sitk.GetArrayFromImage(reference)
    assert volume.array.dtype == expected.dtype
    np.testing.assert_array_equal(volume.array, expected)
    assert volume.geometry.origin == reference.GetOrigin()
    if variant == "scaled":
        assert volume.array.dtype.kind == "f"


def test_truncated_nifti_is_reported(tmp_path):
    write_sitk(np.ones((4, 5, 6), np.int16), tmp_path / "v.nii")
    info = scan(tmp_path / "v.nii")[0]
    data = (tmp_path / "v.nii").read_bytes()
    (tmp_path / "v.nii").write_bytes(data[:-10])
    from medviewer.core.errors import CorruptFileError

    with pytest.raises(CorruptFileError, match="truncated"):
        load(info)
