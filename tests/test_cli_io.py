"""`medviewer info` and `medviewer convert` on generated DICOM series."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).parent / "io"))
import synthetic_dicom as sd  # noqa: E402

from medviewer.cli import main  # noqa: E402
from medviewer.io import load, scan  # noqa: E402


@pytest.fixture
def oblique_series(tmp_path):
    rng = np.random.default_rng(9)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    orientation = tuple(q[:, 0]) + tuple(q[:, 1])
    pixels = (np.arange(7 * 11 * 9).reshape(7, 11, 9) % 3000).astype(np.int16)
    positions = sd.stack_positions((-101.5, 22.25, 310.0), orientation, np.arange(7) * 1.25)
    sd.write_series(tmp_path / "dicom", pixels, positions, orientation=orientation, pixel_spacing=(0.74, 0.66),
                    description="Oblique CT", series_number=4, extra={"WindowCenter": 40, "WindowWidth": 400})
    return tmp_path / "dicom", pixels


def test_info_json_geometry_equals_simpleitk(oblique_series, capsys):
    folder, pixels = oblique_series
    assert main(["info", str(folder), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 1
    record = records[0]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    assert record["size"] == list(image.GetSize())
    np.testing.assert_allclose(record["spacing"], image.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(record["origin"], image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(record["direction"], image.GetDirection(), atol=1e-4)
    assert record["orientation"] == "oblique" and record["modality"] == "CT" and record["files"] == 7
    assert record["description"] == "Oblique CT" and record["warnings"] == []
    assert record["value_range"] == [float(pixels.min()) - 1024, float(pixels.max()) - 1024]
    assert record["pixel_type"] == "int16" and record["windows"] == [[40.0, 400.0]]
    assert set(record) >= {"series_uid", "description", "modality", "files", "size", "spacing", "origin",
                           "direction", "orientation", "warnings"}


def test_info_table_is_readable(oblique_series, capsys):
    folder, _ = oblique_series
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    for expected in ("1 series", "[0] #4 Oblique CT", "size (x, y, z)   9 x 11 x 7", "spacing (mm)     0.66, 0.74, 1.25",
                     "origin (LPS mm)  -101.5, 22.25, 310", "orientation      oblique (closest", "pixel type       int16",
                     "value range      -1024 .. -332 HU", "window (c/w)     40/400", "warnings         none"):
        assert expected in out, expected
    assert main(["info", str(folder), "--headers-only"]) == 0
    assert "value range      - (not read)" in capsys.readouterr().out


def test_convert_writes_what_the_loader_produced(oblique_series, tmp_path, capsys):
    folder, pixels = oblique_series
    out = tmp_path / "ct.nii.gz"
    assert main(["convert", str(folder), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    image = sitk.ReadImage(str(out))
    volume = load(scan(folder)[0])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume.array)
    np.testing.assert_allclose(image.GetOrigin(), volume.geometry.origin, atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), volume.geometry.direction, atol=1e-5)


def test_convert_tilted_series_keeps_true_positions(tmp_path, capsys):
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(6) * 2.0, shear_per_mm=(0.0, math.tan(math.radians(20))))
    sd.write_series(tmp_path / "tilt", np.zeros((6, 10, 10), np.int16), positions, pixel_spacing=(1.0, 1.0))
    sd.write_series(tmp_path / "tilt", np.zeros((2, 10, 10), np.int16), positions[:2] + (0, 0, 500), prefix="B",
                    description="Other")
    uid = next(s.uid for s in scan(tmp_path / "tilt") if s.description != "Other")
    assert main(["convert", str(tmp_path / "tilt"), str(tmp_path / "tilt.nrrd"), "--series", uid]) == 0
    captured = capsys.readouterr()
    assert "gantry tilt of 20.00 degrees" in captured.err
    image = sitk.ReadImage(str(tmp_path / "tilt.nrrd"))
    assert image.GetSize() == (10, 10 + math.ceil(10 * math.tan(math.radians(20))), 6)
    np.testing.assert_allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-12)


def test_info_reports_an_unreadable_series_and_shows_the_others(tmp_path, capsys, monkeypatch):
    import medviewer.services.open_study as open_study

    study = "1.2.3.4"
    positions = np.array([[0, 0, 0], [0, 0, 1.0]])
    sd.write_series(tmp_path / "a", np.zeros((2, 6, 6), np.int16), positions, prefix="A", study_uid=study)
    bad = sd.write_series(tmp_path / "b", np.zeros((2, 6, 6), np.int16), positions, prefix="B", series_number=2,
                          study_uid=study)
    real_scan = open_study.scan_path

    def scan_then_damage(path, *args, **kwargs):
        result = real_scan(path, *args, **kwargs)
        bad[0].write_bytes(bad[0].read_bytes()[:300])  # damaged between scan and load
        return result

    monkeypatch.setattr(open_study, "scan_path", scan_then_damage)
    assert main(["info", str(tmp_path), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["series_number"] for r in records] == [1, 2]
    assert [r["value_range"] is not None for r in records] == [True, False]
    assert "pixels cannot be read" in records[1]["warnings"][-1] and bad[0].name in records[1]["warnings"][-1]


@pytest.mark.parametrize("name", ["a.nii.nii.gz", "scan.nii.gz.nii.gz", "f.nii.nii"])
def test_convert_to_a_doubled_extension_writes_a_readable_file_of_that_name(tmp_path, capsys, name):
    """It used to print "wrote", exit 0 and leave a 0-byte file (NIfTI's writer wrote beside the temp file)."""
    pixels = (np.arange(6 * 9 * 8).reshape(6, 9, 8) % 700).astype(np.int16)
    source = sitk.GetImageFromArray(pixels)
    source.SetSpacing((0.5, 0.75, 2.0))
    source.SetOrigin((-3.0, 4.0, 5.0))
    (tmp_path / "in").mkdir()
    sitk.WriteImage(source, str(tmp_path / "in" / "source.nrrd"))
    out = tmp_path / "out" / name
    out.parent.mkdir()
    assert main(["convert", str(tmp_path / "in" / "source.nrrd"), str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == [name]
    back = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), pixels)
    np.testing.assert_allclose(back.GetSpacing(), (0.5, 0.75, 2.0))
    np.testing.assert_allclose(back.GetOrigin(), (-3.0, 4.0, 5.0), atol=1e-5)


def test_convert_onto_a_full_disk_exits_2_and_keeps_the_old_file(tmp_path, capsys):
    from small_disk import fill_to, small_disk

    rng = np.random.default_rng(5)
    (tmp_path / "in").mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(rng.integers(0, 4000, (8, 40, 40)).astype(np.int16)),
                    str(tmp_path / "in" / "noise.mha"))
    with small_disk(tmp_path / "disk", 256) as disk:
        out = disk / "noise.nii.gz"
        out.write_bytes(b"the previous file")
        fill_to(disk, 0)
        assert main(["convert", str(tmp_path / "in" / "noise.mha"), str(out)]) == 2
        captured = capsys.readouterr()
        assert "wrote" not in captured.out
        assert "the disk is full (ENOSPC)" in captured.err and "the previous file is unchanged" in captured.err
        assert out.read_bytes() == b"the previous file"
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin", "noise.nii.gz"]


# ---------------------------------------------------------------------------- damaged files (issue 18, items 7, 10-14)
def _nifti(path, data, affine=None):
    nib = pytest.importorskip("nibabel")
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _truncated_nii_gz(folder):
    whole = _nifti(folder / "ok.nii.gz", (np.arange(40 * 30 * 20) % 1000).astype(np.int16).reshape(40, 30, 20)).read_bytes()
    (folder / "cut.nii.gz").write_bytes(whole[: len(whole) // 2])
    return folder / "cut.nii.gz"


def _truncated_picture(folder, suffix: str):
    """A noisy 200x300 picture saved by Pillow, cut after half of its bytes."""
    image = pytest.importorskip("PIL.Image")
    image.fromarray((np.random.default_rng(0).random((200, 300)) * 255).astype(np.uint8)).save(folder / f"ok{suffix}")
    whole = (folder / f"ok{suffix}").read_bytes()
    (folder / f"cut{suffix}").write_bytes(whole[: len(whole) // 2])
    return folder / f"cut{suffix}"


def _huge_nifti(folder):
    nib = pytest.importorskip("nibabel")
    header = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)).header
    header.set_data_shape((30000, 30000, 30000))
    block = bytearray(header.binaryblock)
    block[108:112] = np.float32(352).tobytes()
    (folder / "huge.nii").write_bytes(bytes(block) + b"\0" * 21004)
    return folder / "huge.nii"


def _nan_sform(folder, qform_code: int):
    nib = pytest.importorskip("nibabel")
    image = nib.Nifti1Image(np.ones((6, 5, 4), np.float32), np.diag([0.5, 0.5, 2.0, 1.0]))
    image.header.set_qform(np.diag([0.5, 0.5, 2.0, 1.0]), code=qform_code)
    image.header.set_sform(np.diag([0.5, 0.5, 2.0, 1.0]), code=1)
    path = folder / ("nan_sform.nii" if qform_code else "nan_sform_no_qform.nii")
    nib.save(image, str(path))
    data = bytearray(path.read_bytes())
    data[280:284] = np.float32(np.nan).tobytes()  # srow_x[0]
    path.write_bytes(bytes(data))
    return path


def _all_nan(folder):
    return _nifti(folder / "allnan.nii.gz", np.full((4, 5, 6), np.nan, np.float32))


def _mhd_reading_another_folder(folder):
    (folder / "elsewhere").mkdir()
    (folder / "elsewhere" / "secret.raw").write_bytes(bytes(range(64)))
    (folder / "scan.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"
                                     f"ElementDataFile = {folder / 'elsewhere' / 'secret.raw'}\n")
    return folder / "scan.mhd"


def _short_raw(folder):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 30, 40), np.int16)), str(folder / "short.mhd"))
    (folder / "short.raw").write_bytes((folder / "short.raw").read_bytes()[:100])
    return folder / "short.mhd"


DAMAGED = {
    "truncated nii.gz": (_truncated_nii_gz, "the file is truncated or damaged: the gzip stream ends after"),
    "truncated jpeg": (lambda d: _truncated_picture(d, ".jpg"), "the JPEG file is truncated: its end-of-image marker is missing"),
    "truncated tiff (libtiff complains)": (lambda d: _truncated_picture(d, ".tif"), "cannot be read as TIFF: Problem reading the row: 0 (TIFFFillStrip: Read error"),
    "header claims 30000^3 voxels": (_huge_nifti, "the header claims 30000 x 30000 x 30000 voxels (108 TB), but the file holds only 21.4 kB"),
    "NaN sform, no qform": (lambda d: _nan_sform(d, 0), "invalid geometry in the header: the sform (srow_x/y/z) holds NaN"),
    "all voxels NaN": (_all_nan, "no voxel has a value: all 120 are NaN or infinite"),
    "mhd data file elsewhere": (_mhd_reading_another_folder, "which is outside the header's folder"),
    "short raw": (_short_raw, "the data file 'short.raw' is truncated: it holds 100 of the 48000 bytes"),
    "complex nifti": (lambda d: _nifti(d / "kspace.nii", np.ones((4, 4, 4), np.complex64)), "the voxels are complex numbers"),
}


def _commands(path, folder) -> dict[str, list[str]]:
    return {
        "info": ["info", str(path)],
        "convert": ["convert", str(path), str(folder / "out.nii.gz")],
        "screenshot": ["screenshot", str(path), "--out", str(folder / "shot.png")],
        "infer": ["infer", "--model", "ct-denoise", "--device", "cpu", "--out", str(folder / "results"), str(path)],
    }


@pytest.mark.parametrize("case", list(DAMAGED))
def test_every_command_refuses_a_damaged_file_with_one_clean_line(tmp_path, capfd, case):
    make, message = DAMAGED[case]
    path = make(tmp_path)
    for name, argv in _commands(path, tmp_path).items():
        assert main(argv) == 2, name
        captured = capfd.readouterr()  # file-descriptor level: native library output would show here
        lines = captured.err.splitlines()
        assert lines[0].startswith(f"medviewer: error: {path}: ") and message in lines[0], (name, captured.err)
        if name == "infer":  # plus its summary line, nothing else
            assert lines[1:] == ["medviewer infer: 1 of 1 input(s) failed"], captured.err
        else:
            assert len(lines) == 1, (name, captured.err)
        assert captured.out == "", (name, captured.out)
    assert not (tmp_path / "out.nii.gz").exists() and not (tmp_path / "shot.png").exists()


def test_info_shows_the_warnings_of_a_repaired_or_doubtful_file(tmp_path, capfd):
    path = _nan_sform(tmp_path, qform_code=1)
    assert main(["info", str(path)]) == 0
    captured = capfd.readouterr()
    assert captured.err == ""  # no ITK matrix dump of the NaN sform
    assert ("warnings         the sform (srow_x/y/z) holds NaN or infinite values: the qform orientation is used instead"
            in captured.out)
    data = np.arange(120, dtype=np.float32).reshape(6, 5, 4)
    data[0, 0, :2] = np.nan
    assert main(["info", str(_nifti(tmp_path / "some_nan.nii.gz", data))]) == 0
    out = capfd.readouterr().out
    assert "value range      2 .. 119" in out
    assert "2 voxels are NaN/Inf (not a number or infinite; 1.7% of the image): value ranges leave them out" in out
