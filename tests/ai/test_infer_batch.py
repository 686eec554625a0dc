"""``medviewer infer --batch`` / ``--study-list``: a result folder per study, a results table, resume, failures kept."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import write_package

from medviewer.cli import main
from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume
from medviewer.services import batch_inference as batch


def cube_ct(offset: int, spacing: float = 2.0) -> Volume:
    """A bright 6-voxel cube at ``offset`` in a 16^3 CT: the test model labels exactly those 216 voxels."""
    array = np.full((16, 16, 16), -1000, np.int16)
    array[offset:offset + 6, offset:offset + 6, offset:offset + 6] = 900
    return Volume(array, Geometry((16, 16, 16), (spacing, spacing, spacing), (-10.0, 5.0, 30.0)), modality="CT")


def write_studies(folder: Path, count: int) -> list[Path]:
    from medviewer.io import write_volume

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"s{number}.nii.gz" if number % 2 == 0 else folder / f"s{number}.nrrd"
        write_volume(cube_ct(2 + number % 4), path)
        paths.append(path)
    return paths


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    normalization = {"normalization": {"method": "ct_window", "window": [-1000, 1000], "clip": False}}
    write_package(folder / "seg", "segmentation", name="bright",
                  input={"spacing": [2.0, 2.0, 2.0], "orientation": "LPS", **normalization})
    return folder


def _infer(models, out, *extra):
    return ["infer", "-m", "bright", "--model-dir", str(models), "--device", "cpu", "-o", str(out), *extra]


def _table(out: Path) -> tuple[list[dict], dict]:
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows, json.loads((out / "results.json").read_text())


def test_a_folder_of_studies_gives_a_folder_per_study_and_a_table_and_a_bad_study_does_not_stop_it(
        models, tmp_path, capsys):
    studies = tmp_path / "studies"
    paths = write_studies(studies, 3)
    (studies / "broken.nii.gz").write_bytes(b"not a nifti file")
    (studies / "notes.txt").write_text("not a study")  # neither a folder nor an image file: not a study
    out = tmp_path / "out"
    assert main(_infer(models, out, "--batch", str(studies))) == 2
    captured = capsys.readouterr()
    assert "medviewer infer: 1 of 4 studies failed (see the table)" in captured.err
    assert f"medviewer: error: {studies / 'broken.nii.gz'}" in captured.err
    rows, table = _table(out)
    assert [r["study"] for r in rows] == [str(studies / "broken.nii.gz"), *map(str, paths)]  # sorted folder order
    assert [r["status"] for r in rows] == ["failed", "ok", "ok", "ok"]
    assert rows[0]["outputs"] == "" and "broken.nii.gz" in rows[0]["error"]
    assert all(r["model"] == "bright:1.0.0" and r["error"] == "" and float(r["seconds"]) > 0 for r in rows[1:])
    assert rows[1]["outputs"] == "s0/s0_bright_labels.json;s0/s0_bright_labels.nii.gz"
    assert table["studies"] == 4 and table["ok"] == 3 and table["failed"] == 1
    for number, row in enumerate(table["rows"][1:]):
        assert row["series"]  # the series that was used
        for output in row["outputs"]:
            assert (out / output["file"]).stat().st_size == output["bytes"] and len(output["sha256"]) == 64
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"s{number}" / f"s{number}_bright_labels.nii.gz")))
        o = 2 + number % 4
        assert int((labels == 1).sum()) == 216 and labels[o:o + 6, o:o + 6, o:o + 6].all()
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json", "s0", "s1", "s2"]


def test_resume_skips_done_studies_and_reruns_failed_missing_or_changed_ones(models, tmp_path, capsys):
    studies = tmp_path / "studies"
    write_studies(studies, 4)
    (studies / "s9.nii.gz").write_bytes(b"broken")
    out = tmp_path / "out"
    assert main(_infer(models, out, "--batch", str(studies))) == 2
    capsys.readouterr()

    assert main(_infer(models, out, "--batch", str(studies), "--resume")) == 2
    captured = capsys.readouterr()
    assert "4 of 5 studies already done (--resume): skipped" in captured.err
    assert "wrote " + str(out / "s") not in captured.out  # nothing but the broken study ran again
    assert "s9.nii.gz" in captured.err
    _rows, table = _table(out)
    assert [r["resumed"] for r in table["rows"]] == [True, True, True, True, False]

    (out / "s1" / "s1_bright_labels.nii.gz").unlink()  # an output gone
    changed = out / "s2" / "s2_bright_labels.json"
    changed.write_text(changed.read_text().replace('"bright"', '"bright!"'))  # an output edited
    from medviewer.io import write_volume

    write_volume(cube_ct(3), studies / "s9.nii.gz")  # the broken study repaired
    assert main(_infer(models, out, "--batch", str(studies), "--resume")) == 0
    captured = capsys.readouterr()
    assert "2 of 5 studies already done" in captured.err
    rerun = sorted(line.split()[1] for line in captured.out.splitlines() if line.startswith("wrote ") and "labels" in line)
    assert rerun == [str(out / s / f"{s}_bright_labels.nii.gz") for s in ("s1", "s2", "s9")]
    rows, table = _table(out)
    assert [r["status"] for r in rows] == ["ok"] * 5 and table["failed"] == 0
    assert json.loads(changed.read_text())["labels"]["1"]["name"] == "bright"  # rewritten

    # Another model choice (here another series request) is not "done".
    assert main(_infer(models, out, "--batch", str(studies), "--resume", "--series", "0")) == 0
    assert "already done" not in capsys.readouterr().err


def test_study_list_with_comments_relative_paths_and_repeated_names(models, tmp_path, capsys):
    from medviewer.io import write_volume

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_volume(cube_ct(4), tmp_path / name / "ct.nii.gz")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# studies\na/ct.nii.gz\n\n{tmp_path / 'b' / 'ct.nii.gz'}\n{tmp_path / 'nowhere.nii.gz'}\n")
    out = tmp_path / "out"
    assert main(_infer(models, out, "--study-list", str(listing))) == 2
    rows, _table_json = _table(out)
    assert [r["study"] for r in rows] == [str(tmp_path / "a" / "ct.nii.gz"), str(tmp_path / "b" / "ct.nii.gz"),
                                          str(tmp_path / "nowhere.nii.gz")]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert rows[1]["outputs"].startswith("ct-2/ct-2_bright_labels")  # stems stay unique
    assert "nowhere.nii.gz" in rows[2]["error"]


def test_batch_errors_name_the_folder_or_list(models, tmp_path, capsys):
    assert main(_infer(models, tmp_path / "out", "--batch", str(tmp_path / "nope"))) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nope'}" in err  # a missing file is a failed study, not a crash
    (tmp_path / "empty").mkdir()
    assert main(_infer(models, tmp_path / "out", "--batch", str(tmp_path / "empty"))) == 2
    assert capsys.readouterr().err.strip() == (f"medviewer: error: {tmp_path / 'empty'}: no studies (subfolders or "
                                               "image files) in this folder")
    assert main(_infer(models, tmp_path / "out", "--study-list", str(tmp_path / "missing.txt"))) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"medviewer: error: {tmp_path / 'missing.txt'}: cannot read the study list")


class _Quiet:
    def for_input(self, number, path):
        return lambda fraction, message="": None

    def write(self, line):
        pass


def test_an_unexpected_exception_is_a_failed_row_and_shares_cover_every_study_once(tmp_path):
    studies = batch.plan_studies([f"/data/p{i}.nii.gz" for i in range(7)])
    for world in (1, 2, 3):
        indices = sorted(s.index for rank in range(world) for s in batch.share(studies, rank, world))
        assert indices == list(range(7))

    def infer(path, prefix, progress, say):
        if path.endswith("p3.nii.gz"):
            raise RuntimeError("CUDA out of memory")
        prefix.with_name(prefix.name + "_labels.nii.gz").write_bytes(path.encode())
        return [], None

    summary = batch.run_batch(studies, tmp_path, "m", "m:1", infer, _Quiet())
    assert summary.failed == 1 and summary.ran == 7
    assert summary.rows[3]["error"] == "/data/p3.nii.gz: RuntimeError: CUDA out of memory"
    assert [r["status"] for r in summary.rows] == ["ok"] * 3 + ["failed"] + ["ok"] * 3
