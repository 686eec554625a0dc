"""Every failure a user can cause: the right MedviewerError naming the file, and one CLI line with exit 2."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

import synthetic_dicom as sd
from medviewer.cli import main
from medviewer.core.errors import (
    CorruptFileError,
    EmptyFolderError,
    InconsistentSeriesError,
    MedviewerError,
    NoImageSeriesError,
    NotAnImageError,
    PathNotFoundError,
    UnsupportedFormatError,
)
from medviewer.io import load, read_volume, scan


def truncated_dicom(folder):
    pixels = np.zeros((1, 16, 16), np.int16)
    path = sd.write_series(folder, pixels, np.zeros((1, 3)), seed=None)[0]
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    return path


def excess_pixel_data(folder):
    """Columns says 32 but the pixel data holds 64x64 pixels (issue 18.12)."""
    path = sd.write_series(folder, np.zeros((1, 64, 64), np.int16), np.zeros((1, 3)), seed=None)[0]
    sd.edit_files([path], Columns=32)
    return path


def inconsistent_series(folder):
    """A scanned series whose slice is replaced, after the scan, by one of another size."""
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(3) * 2.0)
    paths = sd.write_series(folder / "series", np.zeros((3, 8, 8), np.int16), positions, seed=None)
    series = scan(folder / "series")[0]
    sd.write_series(folder / "other", np.zeros((1, 6, 6), np.int16), positions[:1], seed=None, prefix="X")
    shutil.copy(next((folder / "other").iterdir()), paths[1])
    return series, paths[1]


CASES = {
    "missing path": (lambda d: d / "nowhere", PathNotFoundError, "no such file or folder"),
    "empty folder": (lambda d: (d / "empty").mkdir() or d / "empty", EmptyFolderError, "empty"),
    "unsupported extension": (lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt", UnsupportedFormatError, "unsupported file type '.txt'"),
    "raw data half": (lambda d: (d / "scan.raw").write_bytes(b"\0" * 64) and d / "scan.raw", UnsupportedFormatError, ".mhd/.nhdr header"),
    "unknown binary file": (lambda d: (d / "blob").write_bytes(bytes(range(256)) * 8) and d / "blob", UnsupportedFormatError, "not a supported image file"),
    "truncated dicom": (truncated_dicom, CorruptFileError, "truncated"),
    "excess pixel data": (excess_pixel_data, CorruptFileError, "the pixel data holds 8192 bytes but Rows 64 x Columns 32 "
                          "at 16 bits needs 4096: the header's image size does not match the pixel data"),
    "corrupt nifti": (lambda d: (d / "broken.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 4)) and d / "broken.nii.gz", CorruptFileError, "cannot be read as NIfTI"),
    "empty nrrd": (lambda d: (d / "empty.nrrd").write_bytes(b"") or d / "empty.nrrd", CorruptFileError, "empty"),
    "not an image (SR)": (lambda d: sd.write_structured_report(d / "report.dcm"), NotAnImageError, "structured report"),
}


def no_image_folder(folder):
    folder.mkdir()
    sd.write_structured_report(folder / "sr.dcm")
    sd.write_rtstruct(folder / "rs.dcm")
    (folder / "readme.txt").write_text("nothing to see")
    return folder


CASES["folder without image series"] = (lambda d: no_image_folder(d / "noimages"), NoImageSeriesError,
                                        "no image series found in 3 files (2 non-image DICOM objects, 1 non-image file skipped)")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_the_right_error_naming_the_path(tmp_path, case):
    make, error_type, message = CASES[case]
    path = make(tmp_path)
    with pytest.raises(error_type) as raised:
        scan(path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)
    assert raised.value.path == str(path)


@pytest.mark.parametrize("case", list(CASES))
def test_cli_prints_one_line_and_exits_2(tmp_path, capsys, case):
    make, error_type, message = CASES[case]
    path = make(tmp_path)
    for argv in (["info", str(path)], ["convert", str(path), str(tmp_path / "out.nii.gz")]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("medviewer: error: ") and str(path) in lines[0] and message in lines[0]
        assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "out.nii.gz").exists()


def test_slices_of_inconsistent_size_are_refused_at_load(tmp_path):
    series, changed = inconsistent_series(tmp_path)
    with pytest.raises(InconsistentSeriesError, match=f"{changed}: slice is 6x6 pixels but the series is 8x8"):
        load(series)


def test_undecodable_pixel_data_names_the_file(tmp_path):
    path = sd.write_series(tmp_path, np.zeros((1, 8, 8), np.int16), np.zeros((1, 3)), seed=None)[0]
    info = scan(path)[0]
    path.write_bytes(path.read_bytes()[:200])  # damaged after the scan
    with pytest.raises(CorruptFileError, match=path.name):
        load(info)


def test_bad_series_selection_and_output(tmp_path, capsys):
    for name in ("a", "b"):
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16)), str(tmp_path / f"{name}.nrrd"))
    with pytest.raises(MedviewerError, match="holds 2 series"):
        read_volume(tmp_path)
    assert main(["convert", str(tmp_path), str(tmp_path / "out.nii")]) == 2
    assert "choose one by index" in capsys.readouterr().err
    assert main(["convert", str(tmp_path), str(tmp_path / "out.nii"), "--series", "5"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["convert", str(tmp_path), str(tmp_path / "out.png"), "--series", "0"]) == 2
    assert "cannot write '.png'" in capsys.readouterr().err


def test_excess_pixel_data_in_a_folder_is_left_out_with_a_note(tmp_path):
    bad = excess_pixel_data(tmp_path / "study")
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(3) * 2.0)
    sd.write_series(tmp_path / "study", np.zeros((3, 8, 8), np.int16), positions, prefix="GOOD")
    series = scan(tmp_path / "study")
    assert [s.geometry.size for s in series] == [(8, 8, 3)]
    assert [(n.path, n.kind) for n in series.notes] == [(str(bad), "corrupt")]
    assert "does not match the pixel data" in series.notes[0].reason


def test_cli_info_on_all_zero_orientation_opens_with_the_warning(tmp_path, capsys):
    """Was ``ValueError: cannot convert float NaN to integer`` in every command (issue 18.9)."""
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(3) * 2.0)
    sd.write_series(tmp_path / "zero", np.zeros((3, 8, 8), np.int16), positions, orientation=(0.0,) * 6)
    assert main(["info", str(tmp_path / "zero")]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Error" not in captured.err
    assert f"{tmp_path / 'zero'}: 1 series" in captured.out
    assert "size (x, y, z)   8 x 8 x 3" in captured.out
    assert "warnings         ImageOrientationPatient is all zero (0, 0, 0, 0, 0, 0) in 3 files" in captured.out
    assert "axial was assumed" in captured.out
    assert main(["convert", str(tmp_path / "zero"), str(tmp_path / "out.nii.gz")]) == 0
    assert sitk.ReadImage(str(tmp_path / "out.nii.gz")).GetSize() == (8, 8, 3)
