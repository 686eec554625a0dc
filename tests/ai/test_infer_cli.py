"""``medviewer infer``: many inputs in one call, outputs that reload on the input's geometry."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import write_package
from scipy.spatial.transform import Rotation

from medviewer.cli import main
from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume
from medviewer.imaging.sitk_bridge import geometry_from_sitk, sitk_to_array

BALL_INDEX = (14, 12, 6)


def oblique_ball(value: int = 900) -> Volume:
    direction = Rotation.from_euler("zyx", [25, 10, -5], degrees=True).as_matrix()
    geometry = Geometry.from_matrix((30, 26, 14), (0.9, 1.2, 2.5), (-40.0, 12.0, 80.0), direction)
    k, j, i = np.indices(geometry.shape)
    world = geometry.index_to_world(np.stack([i, j, k], -1).reshape(-1, 3)).reshape(*geometry.shape, 3)
    distance = np.linalg.norm(world - geometry.index_to_world(BALL_INDEX), axis=-1)
    return Volume(np.where(distance < 7.0, value, -1000).astype(np.int16), geometry, modality="CT")


@pytest.fixture
def setup(tmp_path):
    from medviewer.io import write_volume

    models = tmp_path / "models"
    normalization = {"normalization": {"method": "ct_window", "window": [-1000, 1000], "clip": False}}
    write_package(models / "seg", "segmentation", name="bright",
                  input={"spacing": [2.0, 2.0, 2.0], "orientation": "RAS", **normalization})
    write_package(models / "det", "detection", name="blobs", input={"spacing": [1.5, 1.5, 1.5], "orientation": "LPS", **normalization})
    write_package(models / "cls", "classification", name="meanclass")
    write_package(models / "enh", "enhancement", name="copy", input=normalization)
    first, second = oblique_ball(), oblique_ball(700)
    inputs = [tmp_path / "first.nii.gz", tmp_path / "second.nrrd"]
    write_volume(first, inputs[0])
    write_volume(second, inputs[1])
    return models, [str(p) for p in inputs], [first, second]


def _read(path):
    image = sitk.ReadImage(str(path))
    return sitk_to_array(image), geometry_from_sitk(image)


def test_segmentation_outputs_reload_on_the_input_geometry(setup, tmp_path, capsys):
    models, inputs, volumes = setup
    out = tmp_path / "out"
    assert main(["infer", "--model", "bright", *inputs, "--out", str(out), "--model-dir", str(models), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for name, volume in zip(("first", "second"), volumes):
        labels, geometry = _read(out / f"{name}_bright_labels.nii.gz")
        assert geometry.is_close(volume.geometry, 1e-4) and labels.shape == volume.array.shape
        ci, cj, ck = BALL_INDEX
        assert labels[ck, cj, ci] == 1 and labels[0, 0, 0] == 0
        assert abs(int((labels == 1).sum()) - int((volume.array > 0).sum())) < 0.25 * (volume.array > 0).sum()
        summary = json.loads((out / f"{name}_bright_labels.json").read_text())
        assert summary["model"] == "bright:1.0.0" and summary["labels"]["1"]["name"] == "bright"
        assert f"wrote {out / f'{name}_bright_labels.nii.gz'}" in printed
    # The io layer's own reader accepts the result as a label map of the input.
    from medviewer.io import read_label_map

    assert read_label_map(out / "first_bright_labels.nii.gz", volumes[0].geometry).voxel_count(1) > 0


def test_detections_json_in_world_mm_and_voxels(setup, tmp_path):
    models, inputs, volumes = setup
    out = tmp_path / "out"
    assert main(["infer", "-m", "blobs:1.0.0", inputs[0], "-o", str(out), "--model-dir", str(models)]) == 0
    data = json.loads((out / "first_blobs_detections.json").read_text())
    assert data["model"] == "blobs:1.0.0" and Geometry.from_dict(data["geometry"]).is_close(volumes[0].geometry, 1e-4)
    (box,) = data["detections"]
    centre = volumes[0].geometry.index_to_world(BALL_INDEX)
    assert np.linalg.norm(np.asarray(box["center_mm"]) - centre) < 1.0
    np.testing.assert_allclose(box["center_index"], BALL_INDEX, atol=1.0)
    assert all(lo <= c <= hi for lo, c, hi in zip(box["voxel_min"], BALL_INDEX, box["voxel_max"]))
    assert box["source"] == "blobs 1.0.0" and box["status"] == "proposed"


def test_probabilities_and_enhanced_images(setup, tmp_path):
    models, inputs, volumes = setup
    out = tmp_path / "out"
    assert main(["infer", "-m", "meanclass", *inputs, "-o", str(out), "--model-dir", str(models)]) == 0
    probabilities = json.loads((out / "second_meanclass_probabilities.json").read_text())["probabilities"]
    assert set(probabilities) == {"bright", "dark"} and sum(probabilities.values()) == pytest.approx(1.0)
    assert main(["infer", "-m", "copy", inputs[1], "-o", str(out), "--model-dir", str(models)]) == 0
    array, geometry = _read(out / "second_copy_copy.nii.gz")
    assert geometry.is_close(volumes[1].geometry, 1e-4)
    np.testing.assert_array_equal(array, volumes[1].array)


def test_a_bad_input_is_reported_and_the_others_still_run(setup, tmp_path, capsys):
    models, inputs, _ = setup
    out = tmp_path / "out"
    missing = str(tmp_path / "missing.nii.gz")
    code = main(["infer", "-m", "bright", missing, inputs[0], "-o", str(out), "--model-dir", str(models)])
    assert code == 2
    errors = capsys.readouterr().err
    assert "missing.nii.gz" in errors and "1 of 2 input(s) failed" in errors
    assert (out / "first_bright_labels.nii.gz").is_file()


def test_unknown_model_and_listing(setup, tmp_path, capsys):
    models, inputs, _ = setup
    assert main(["infer", "-m", "nope", inputs[0], "-o", str(tmp_path), "--model-dir", str(models)]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err
    assert main(["infer", "--list", "--model-dir", str(models)]) == 0
    listing = capsys.readouterr().out
    assert "bright:1.0.0" in listing and "blobs:1.0.0" in listing and "enhancement" in listing
