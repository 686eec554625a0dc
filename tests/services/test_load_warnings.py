"""Which reader warnings say geometry was invented: checked on files the real readers load."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
import synthetic_dicom as sd  # noqa: E402

from medviewer.services import load_warnings  # noqa: E402
from medviewer.services.open_study import open_path  # noqa: E402

nib = pytest.importorskip("nibabel")


def _nifti(path: Path, data: np.ndarray, pixdim_z: float = 2.0, codes: tuple[int, int] | None = None) -> Path:
    image = nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.0, 1.0]))
    image.header["pixdim"][3] = pixdim_z
    nib.save(image, str(path))
    if codes is not None:  # nibabel rewrites the codes on save: patch qform_code/sform_code in the bytes
        raw = bytearray(path.read_bytes())
        raw[252:254] = np.int16(codes[0]).tobytes()
        raw[254:256] = np.int16(codes[1]).tobytes()
        path.write_bytes(bytes(raw))
    return path


def _data() -> np.ndarray:
    return np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)


def _invented(path) -> list[str]:
    volume, _, _ = open_path(path)
    return load_warnings.invented_geometry(volume)


def test_a_sound_file_has_no_invented_geometry(tmp_path):
    volume, _, _ = open_path(_nifti(tmp_path / "ok.nii.gz", _data()))
    assert volume.metadata.warnings == [] and load_warnings.invented_geometry(volume) == []
    load_warnings.check_model_input(volume, "ok.nii.gz")  # does not raise


def test_nifti_pixdim_zero_and_no_orientation_are_invented_geometry(tmp_path):
    assert _invented(_nifti(tmp_path / "pix0.nii.gz", _data(), pixdim_z=0.0)) == [
        "the header gives no voxel size along z (pixdim z = 0): 1 mm was assumed, so distances and volumes along "
        "it are invented"]
    invented = _invented(_nifti(tmp_path / "bare.nii", _data(), codes=(0, 0)))
    assert len(invented) == 1 and invented[0].startswith("the header has no orientation")


def test_dicom_without_orientation_or_pixel_spacing_is_invented_geometry(tmp_path):
    positions = sd.stack_positions((0.0, 0.0, 0.0), sd.AXIAL, np.arange(3) * 2.0)
    sd.write_series(tmp_path / "zero", np.zeros((3, 8, 8), np.int16), positions, orientation=(0.0,) * 6)
    invented = _invented(tmp_path / "zero")
    assert len(invented) == 1 and "the orientation is unknown" in invented[0]
    sd.write_series(tmp_path / "nospacing", np.zeros((3, 8, 8), np.int16), positions, pixel_spacing=None)
    assert _invented(tmp_path / "nospacing") == ["pixel spacing is unknown: spacing set to 1 and measurements are in pixels"]


def test_a_picture_without_pixel_size_is_reported_not_refused(tmp_path):
    from PIL import Image

    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "xray.png")
    volume, _, _ = open_path(tmp_path / "xray.png")
    assert any("no physical pixel size" in w for w in volume.metadata.warnings)
    assert load_warnings.invented_geometry(volume) == []


def test_nan_voxels_are_refused_and_forced_to_the_lowest_value(tmp_path):
    data = _data() + 10
    data[1, 2, 3] = np.nan
    data[0, 0, 0] = np.inf
    volume, _, _ = open_path(_nifti(tmp_path / "nan.nii.gz", data))
    assert load_warnings.non_finite_count(volume) == 2
    with pytest.raises(load_warnings.UnsafeInputError, match=r"nan.nii.gz: the model was not run: 2 voxels are NaN/Inf"):
        load_warnings.check_model_input(volume, str(tmp_path / "nan.nii.gz"))
    filled, lowest = load_warnings.fill_non_finite(volume)
    assert lowest == 11.0  # data[0, 0, 1]: the lowest finite value
    assert np.isfinite(filled.array).all() and np.count_nonzero(filled.array == 11.0) == 3
    assert np.isnan(volume.array).sum() == 1, "the loaded volume itself is unchanged"
