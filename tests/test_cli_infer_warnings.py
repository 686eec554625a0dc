"""`medviewer infer` prints what the reader assumed and refuses invented geometry or NaN voxels unless --force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.cli import main

nib = pytest.importorskip("nibabel")


def _ct(path: Path, pixdim_z: float = 2.5, nan_at: tuple[int, int, int] | None = None) -> Path:
    data = np.random.default_rng(3).normal(0.0, 100.0, (32, 32, 12)).astype(np.float32)
    if nan_at is not None:
        data[nan_at] = np.nan
    image = nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.5, 1.0]))
    image.header["pixdim"][3] = pixdim_z
    nib.save(image, str(path))
    return path


def _infer(path: Path, out: Path, *extra: str) -> list[str]:
    return ["infer", "--model", "ct-denoise", "--device", "cpu", "--out", str(out), str(path), *extra]


PIX0_WARNING = ("the header gives no voxel size along z (pixdim z = 0): 1 mm was assumed, so distances and volumes "
                "along it are invented")


def test_invented_voxel_size_is_printed_and_refused_unless_forced(tmp_path, capfd):
    path = _ct(tmp_path / "pix0.nii.gz", pixdim_z=0.0)
    assert main(_infer(path, tmp_path / "out")) == 2
    captured = capfd.readouterr()
    assert captured.err.splitlines() == [
        f"medviewer infer: warning: {path}: {PIX0_WARNING}",
        f"medviewer: error: {path}: the model was not run: its voxel size was invented by the reader "
        "(see the warnings); --force runs it anyway",
        "medviewer infer: 1 of 1 input(s) failed",
    ]
    assert captured.out == "" and not list((tmp_path / "out").iterdir())

    assert main(_infer(path, tmp_path / "out", "--force")) == 0
    captured = capfd.readouterr()
    assert captured.err.splitlines() == [f"medviewer infer: warning: {path}: {PIX0_WARNING}"]
    written = tmp_path / "out" / "pix0_ct-denoise_denoised.nii.gz"
    assert captured.out.splitlines() == [f"wrote {written}"]
    assert sitk.ReadImage(str(written)).GetSize() == (32, 32, 12)


def test_nan_voxels_are_printed_refused_and_forced_to_the_lowest_value(tmp_path, capfd):
    path = _ct(tmp_path / "nan.nii.gz", nan_at=(5, 6, 7))
    nan_warning = "1 voxel is NaN/Inf (not a number or infinite; 0.0081% of the image): value ranges leave them out"
    assert main(_infer(path, tmp_path / "out")) == 2
    err = capfd.readouterr().err.splitlines()
    assert err == [
        f"medviewer infer: warning: {path}: {nan_warning}",
        f"medviewer: error: {path}: the model was not run: 1 voxel is NaN/Inf, which the network would spread; "
        "--force runs it anyway (NaN/Inf voxels then get the image's lowest value)",
        "medviewer infer: 1 of 1 input(s) failed",
    ]
    assert main(_infer(path, tmp_path / "out", "--force")) == 0
    err = capfd.readouterr().err.splitlines()
    lowest = float(np.nanmin(nib.load(str(path)).get_fdata(dtype=np.float32)))
    assert err[0] == f"medviewer infer: warning: {path}: {nan_warning}"
    assert err[1] == (f"medviewer infer: warning: {path}: --force: the 1 NaN/Inf voxel was given the value {lowest:g} "
                      "for the model; its output there is not based on image data")
    output = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "nan_ct-denoise_denoised.nii.gz")))
    assert np.isfinite(output).all()


def test_a_sound_input_prints_no_warning(tmp_path, capfd):
    assert main(_infer(_ct(tmp_path / "ok.nii.gz"), tmp_path / "out")) == 0
    assert capfd.readouterr().err == ""
