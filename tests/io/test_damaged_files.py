"""Files that are damaged or lie (issue 18, items 7, 10-14): refused with what is wrong, or loaded with a warning.

Every malformed input is built here with nibabel, numpy, SimpleITK or PIL.
"""

from __future__ import annotations

import builtins
import gzip
import math
import os
import struct
import sys
import threading
import zlib

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core.errors import CorruptFileError, MedviewerError, UnsupportedFormatError
from medviewer.io import file_checks, load, read_volume, scan
from medviewer.io.native_noise import quiet_native_stderr

nib = pytest.importorskip("nibabel")
PIL_Image = pytest.importorskip("PIL.Image")

SHAPE_XYZ = (40, 30, 20)  # nibabel order; medviewer arrays are (20, 30, 40)


def ct_xyz(dtype=np.int16) -> np.ndarray:
    return (np.arange(math.prod(SHAPE_XYZ)) % 1000).astype(dtype).reshape(SHAPE_XYZ)


def save_nifti(path, data, affine=None) -> None:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))


def patch_header(path, offset: int, layout: str, *values) -> None:
    """Overwrite NIfTI-1 header bytes of an uncompressed file (nibabel would 'fix' them)."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<" + layout, data, offset, *values)
    path.write_bytes(bytes(data))


def inflated_length(data: bytes) -> int:
    return len(zlib.decompressobj(31).decompress(data))


# ---------------------------------------------------------------------------- item 7: truncated files
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_truncated_nii_gz_is_refused_naming_the_missing_slices(tmp_path, dtype):
    save_nifti(tmp_path / "ok.nii.gz", ct_xyz(dtype))
    whole = (tmp_path / "ok.nii.gz").read_bytes()
    cut = whole[: len(whole) // 2]
    (tmp_path / "cut.nii.gz").write_bytes(cut)
    slice_bytes = 40 * 30 * np.dtype(dtype).itemsize
    first_missing = (inflated_length(cut) - 352) // slice_bytes
    assert 0 < first_missing < 19
    with pytest.raises(CorruptFileError) as raised:
        read_volume(tmp_path / "cut.nii.gz")
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'cut.nii.gz'}: the file is truncated")
    assert "the gzip stream ends after" in message and f"slices {first_missing}..19 of 0..19 missing" in message


def test_multi_member_gzip_nifti_is_read_whole(tmp_path):
    """bgzip-style files (several gzip members) have a trailer that is not the total size: not 'truncated'."""
    data = ct_xyz()
    save_nifti(tmp_path / "one.nii", data)
    raw = (tmp_path / "one.nii").read_bytes()
    (tmp_path / "multi.nii.gz").write_bytes(b"".join(gzip.compress(raw[i : i + 10000]) for i in range(0, len(raw), 10000)))
    volume = read_volume(tmp_path / "multi.nii.gz")
    np.testing.assert_array_equal(volume.array, data.transpose(2, 1, 0))
    assert not any("truncated" in warning for warning in volume.metadata.warnings)


def _photo(tmp_path, suffix: str) -> tuple:
    pixels = (np.random.default_rng(0).random((200, 300)) * 255).astype(np.uint8)
    PIL_Image.fromarray(pixels).save(tmp_path / f"ok{suffix}")
    whole = (tmp_path / f"ok{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(whole[: len(whole) // 2])
    return tmp_path / f"cut{suffix}", len(whole) // 2


def test_truncated_jpeg_is_refused(tmp_path):
    path, length = _photo(tmp_path, ".jpg")
    with pytest.raises(CorruptFileError) as raised:
        read_volume(path)
    assert str(raised.value) == f"{path}: the JPEG file is truncated: its end-of-image marker is missing ({length} bytes present)"


def test_truncated_png_is_refused(tmp_path):
    path, length = _photo(tmp_path, ".png")
    with pytest.raises(CorruptFileError) as raised:
        scan(path)
    assert str(raised.value) == f"{path}: the PNG file is truncated: its IEND chunk is missing ({length} bytes present)"


def test_png_named_jpg_is_read_as_the_png_it_is(tmp_path):
    pixels = np.arange(200, dtype=np.uint8).reshape(10, 20)
    PIL_Image.fromarray(pixels).save(tmp_path / "photo.jpg", format="PNG")
    np.testing.assert_array_equal(read_volume(tmp_path / "photo.jpg").array[0], pixels)


def test_truncated_tiff_names_what_libtiff_found(tmp_path):
    path, _ = _photo(tmp_path, ".tif")
    with pytest.raises(CorruptFileError) as raised:
        read_volume(path)
    assert "cannot be read as TIFF" in str(raised.value) and "expected 60000" in str(raised.value)
    assert "ITK ERROR" not in str(raised.value) and "0x" not in str(raised.value)


# ---------------------------------------------------------------------------- item 10: headers that lie about the size
def _huge_header() -> bytes:
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    image.header.set_data_shape((30000, 30000, 30000))
    block = bytearray(image.header.binaryblock)
    struct.pack_into("<f", block, 108, 352.0)  # vox_offset
    return bytes(block) + b"\0" * 4 + b"\0" * 21000


def test_nifti_claiming_100_terabytes_is_refused_before_allocating(tmp_path):
    (tmp_path / "huge.nii").write_bytes(_huge_header())
    with pytest.raises(CorruptFileError) as raised:
        read_volume(tmp_path / "huge.nii")
    assert str(raised.value) == (f"{tmp_path / 'huge.nii'}: the header claims 30000 x 30000 x 30000 voxels (108 TB), "
                                 "but the file holds only 21.4 kB: the header is damaged or the file truncated")


def test_gzipped_nifti_claiming_more_than_deflate_can_hold_is_refused(tmp_path):
    (tmp_path / "huge.nii.gz").write_bytes(gzip.compress(_huge_header()))
    with pytest.raises(CorruptFileError, match=r"claims 30000 x 30000 x 30000 voxels \(108 TB\).*cannot decompress to that much"):
        scan(tmp_path / "huge.nii.gz")


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_nrrd_claiming_100_terabytes_is_refused(tmp_path, encoding):
    path = tmp_path / "huge.nrrd"
    body = b"\0" * 20000 if encoding == "raw" else gzip.compress(b"\0" * 2000)
    path.write_bytes(f"NRRD0004\ntype: float\ndimension: 3\nsizes: 30000 30000 30000\nencoding: {encoding}\n"
                     "endian: little\n\n".encode() + body)
    with pytest.raises(CorruptFileError) as raised:
        read_volume(path)
    if encoding == "raw":
        assert str(raised.value) == (f"{path}: the file is truncated: it holds 20000 of the 108000000000000 bytes of "
                                     "voxels the header describes")
    else:
        assert "claims 30000 x 30000 x 30000 voxels (108 TB), but the file holds only" in str(raised.value)


def test_image_larger_than_memory_is_refused_before_reading(tmp_path, monkeypatch):
    save_nifti(tmp_path / "ct.nii.gz", ct_xyz())
    info = scan(tmp_path / "ct.nii.gz")[0]
    monkeypatch.setattr(file_checks, "available_memory", lambda: 10_000)
    monkeypatch.setattr(sitk.ImageFileReader, "Execute", lambda self: pytest.fail("pixels were read"))
    with pytest.raises(MedviewerError) as raised:
        load(info)
    assert str(raised.value) == (f"{tmp_path / 'ct.nii.gz'}: the image (40 x 30 x 20 voxels) needs 48 kB of memory, "
                                 "but only 10 kB are available on this computer")


# ---------------------------------------------------------------------------- item 11: broken geometry
def _oblique_nifti(path, sform_code: int, qform_code: int) -> None:
    rotation = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]
    if np.linalg.det(rotation) < 0:
        rotation[:, 0] *= -1
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 0.8, 2.5])
    affine[:3, 3] = (-12.0, 30.5, 7.25)
    image = nib.Nifti1Image(ct_xyz(np.float32), affine)
    image.header.set_qform(affine, code=qform_code)
    image.header.set_sform(affine, code=sform_code)
    nib.save(image, str(path))


def test_nan_sform_falls_back_to_the_qform_and_says_so(tmp_path):
    _oblique_nifti(tmp_path / "qform_only.nii", sform_code=0, qform_code=1)
    reference = sitk.ReadImage(str(tmp_path / "qform_only.nii"))  # ITK's own qform geometry
    _oblique_nifti(tmp_path / "nan_sform.nii", sform_code=1, qform_code=1)
    patch_header(tmp_path / "nan_sform.nii", 280, "f", math.nan)  # srow_x[0]
    volume = read_volume(tmp_path / "nan_sform.nii")
    np.testing.assert_allclose(volume.geometry.direction, reference.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(volume.geometry.origin, reference.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(volume.geometry.spacing, reference.GetSpacing(), atol=1e-6)
    assert volume.metadata.warnings == [
        "the sform (srow_x/y/z) holds NaN or infinite values: the qform orientation is used instead"
    ]


@pytest.mark.parametrize("case", ["nan sform, no qform", "zero sform, no qform", "inf qform, no sform"])
def test_unusable_nifti_geometry_is_refused(tmp_path, case):
    path = tmp_path / "bad.nii"
    if case == "inf qform, no sform":
        _oblique_nifti(path, sform_code=0, qform_code=1)
        patch_header(path, 268, "f", math.inf)  # qoffset_x
        expected = ("invalid geometry in the header: the qform (quatern_b/c/d, qoffset, pixdim) holds NaN or infinite "
                    "values, and there is no sform (sform_code 0)")
    else:
        _oblique_nifti(path, sform_code=1, qform_code=0)
        if case == "nan sform, no qform":
            patch_header(path, 296, "f", math.nan)  # srow_y[0]
            problem = "holds NaN or infinite values"
        else:
            patch_header(path, 280, "12f", *([0.0] * 12))
            problem = "is singular (its axes are zero or parallel)"
        expected = (f"invalid geometry in the header: the sform (srow_x/y/z) {problem}, "
                    "and there is no qform (qform_code 0) to fall back to")
    with pytest.raises(CorruptFileError) as raised:
        scan(path)
    assert str(raised.value) == f"{path}: {expected}"


def test_zero_pixdim_and_missing_orientation_are_announced(tmp_path):
    path = tmp_path / "pixdim0.nii"
    nib.save(nib.Nifti1Image(ct_xyz(), None), str(path))  # no affine: qform_code = sform_code = 0
    patch_header(path, 80, "3f", 0.0, 0.0, 0.0)  # pixdim[1..3]
    volume = read_volume(path)
    assert volume.geometry.spacing == (1.0, 1.0, 1.0)
    assert volume.metadata.warnings == [
        "the header gives no voxel size along x, y, z (pixdim x = 0, y = 0, z = 0): 1 mm was assumed, "
        "so distances and volumes along it are invented",
        "the header has no orientation (qform_code and sform_code are 0): the directions are assumed to be "
        "the image axes and the origin 0, so left/right may be wrong",
    ]


# ---------------------------------------------------------------------------- item 12: NaN / Inf voxels
@pytest.mark.parametrize("extension", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_nan_and_inf_voxels_are_counted_and_left_out_of_the_value_range(tmp_path, extension):
    array = ct_xyz(np.float32).transpose(2, 1, 0).copy()  # (z, y, x)
    array[0, 0, :3] = np.nan
    array[5, 6, 7] = np.inf
    array[6, 6, 7] = -np.inf
    path = tmp_path / f"nan{extension}"
    if extension.startswith(".nii"):
        save_nifti(path, array.transpose(2, 1, 0))
    else:
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    volume = read_volume(path)
    assert int(np.isnan(volume.array).sum()) == 3 and int(np.isinf(volume.array).sum()) == 2  # kept, not zeroed
    assert "5 voxels are NaN/Inf (not a number or infinite; 0.021% of the image): value ranges leave them out" in \
        volume.metadata.warnings
    finite = array[np.isfinite(array)]
    assert volume.value_range() == (float(finite.min()), float(finite.max()))
    assert all(math.isfinite(v) for v in volume.default_window())


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd"])
def test_image_without_any_finite_voxel_is_refused(tmp_path, extension):
    array = np.full((4, 5, 6), np.nan, np.float32)
    array[1] = np.inf
    path = tmp_path / f"allnan{extension}"
    if extension == ".nii.gz":
        save_nifti(path, array.transpose(2, 1, 0))
    else:
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    with pytest.raises(CorruptFileError) as raised:
        read_volume(path)
    assert str(raised.value) == f"{path}: no voxel has a value: all 120 are NaN or infinite"


# ---------------------------------------------------------------------------- item 13: data files outside the header's folder
def _mhd(path, data_file: str) -> None:
    path.write_text(f"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\nElementDataFile = {data_file}\n")


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_mhd_data_file_outside_its_folder_is_refused(tmp_path, where):
    (tmp_path / "secret.raw").write_bytes(bytes(range(64)))
    (tmp_path / "case").mkdir()
    name = str(tmp_path / "secret.raw") if where == "absolute" else "../secret.raw"
    _mhd(tmp_path / "case" / "scan.mhd", name)
    with pytest.raises(CorruptFileError) as raised:
        scan(tmp_path / "case" / "scan.mhd")
    assert str(raised.value) == (f"{tmp_path / 'case' / 'scan.mhd'}: the header names the data file '{name}', which is "
                                 "outside the header's folder; medviewer reads only data files next to (or below) their header")


def test_nhdr_data_file_outside_its_folder_is_refused(tmp_path):
    (tmp_path / "secret.raw").write_bytes(bytes(range(64)))
    (tmp_path / "case").mkdir()
    header = tmp_path / "case" / "scan.nhdr"
    header.write_text(f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\ndata file: {tmp_path / 'secret.raw'}\n")
    with pytest.raises(CorruptFileError, match="outside the header's folder"):
        scan(header)


def test_mhd_data_file_in_a_subfolder_is_read(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "scan.raw").write_bytes(bytes(range(64)))
    _mhd(tmp_path / "scan.mhd", "data/scan.raw")
    volume = read_volume(tmp_path / "scan.mhd")
    np.testing.assert_array_equal(volume.array.ravel(), np.arange(64))


# ---------------------------------------------------------------------------- item 14: messages that say what is wrong
def test_short_raw_says_it_is_truncated(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 30, 40), np.int16)), str(tmp_path / "short.mhd"))
    (tmp_path / "short.raw").write_bytes((tmp_path / "short.raw").read_bytes()[:100])
    with pytest.raises(CorruptFileError) as raised:
        scan(tmp_path / "short.mhd")
    assert str(raised.value) == (f"{tmp_path / 'short.mhd'}: the data file 'short.raw' is truncated: it holds 100 of "
                                 "the 48000 bytes of voxels the header describes")
    (tmp_path / "short.raw").unlink()
    with pytest.raises(CorruptFileError, match="the data file 'short.raw' named by the header does not exist"):
        scan(tmp_path / "short.mhd")


def test_complex_nifti_says_complex_is_not_supported(tmp_path):
    save_nifti(tmp_path / "kspace.nii", np.ones((4, 4, 4), np.complex64))
    with pytest.raises(UnsupportedFormatError, match="the voxels are complex numbers"):
        scan(tmp_path / "kspace.nii")


def _deny(monkeypatch, path) -> None:
    """chmod 000, and where the tests run as root (who reads anyway) also what open() then says to others."""
    os.chmod(path, 0)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        real_open = builtins.open

        def refusing_open(file, *args, **kwargs):
            if os.fspath(file) == os.fspath(path):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", refusing_open)


@pytest.mark.parametrize("name", ["scan.nii.gz", "slice.dcm"])
def test_unreadable_file_says_permission_denied(tmp_path, monkeypatch, name):
    path = tmp_path / name
    if name.endswith(".nii.gz"):
        save_nifti(path, ct_xyz())
    else:
        path.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    _deny(monkeypatch, path)
    try:
        with pytest.raises(MedviewerError) as raised:
            scan(path)
    finally:
        os.chmod(path, 0o644)
    assert str(raised.value) == f"{path}: permission denied: this user may not read the file (check its permissions)"


@pytest.mark.skipif(sys.platform == "win32" or (hasattr(os, "geteuid") and os.geteuid() == 0),
                    reason="root lists any folder; a folder's permissions only bind other users")
def test_unlistable_folder_says_permission_denied(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    save_nifti(folder / "ct.nii.gz", ct_xyz())
    os.chmod(folder, 0)
    try:
        with pytest.raises(MedviewerError, match="permission denied: this user may not list the folder"):
            scan(tmp_path)
    finally:
        os.chmod(folder, 0o755)


# ---------------------------------------------------------------------------- native noise
def test_native_output_is_captured_and_python_output_is_not(capfd):
    with quiet_native_stderr() as outer:
        os.write(2, b"ITK says something\n")  # what native code does: write to the descriptor
        os.write(1, b"Premature end of JPEG file\n")
        with quiet_native_stderr() as inner:
            os.write(2, b"inner line\n")
        print("medviewer's own line", file=sys.stderr)
    os.write(2, b"after\n")
    captured = capfd.readouterr()
    assert captured.err == "medviewer's own line\nafter\n" and captured.out == ""
    assert outer.text == "ITK says something\nPremature end of JPEG file\ninner line\n"
    assert inner.text == "inner line\n" and inner.detail() == "inner line"


def test_native_output_capture_with_threads(capfd):
    errors = []

    def work(number: int) -> None:
        try:
            for _ in range(50):
                with quiet_native_stderr() as output:
                    os.write(2, f"thread {number}\n".encode())
                assert f"thread {number}\n" in output.text
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os.write(2, b"restored\n")
    assert not errors
    assert capfd.readouterr().err == "restored\n"


def test_itk_matrix_dump_of_a_nan_sform_stays_off_the_terminal(tmp_path, capfd):
    _oblique_nifti(tmp_path / "nan_sform.nii", sform_code=1, qform_code=1)
    patch_header(tmp_path / "nan_sform.nii", 280, "f", math.nan)
    read_volume(tmp_path / "nan_sform.nii")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_native_detail_skips_matrix_dumps():
    from medviewer.io.native_noise import NativeOutput

    text = ("not a JPEG file: starts with 0x89 0x50\n/tmp/ITK/vnl_svd.hxx: suspicious return value (4) from SVDC\n"
            "M = [ ...\n             nan                0                0 \n  0  1.0000000000000  0  ]\n")
    assert NativeOutput(text).detail() == "not a JPEG file: starts with 0x89 0x50"
