import json

import pytest
from conftest import manifest_for

from medviewer.ai.manifest import ModelManifest, load_manifest, version_key, write_manifest
from medviewer.core.errors import ModelError


@pytest.mark.parametrize("task", ["segmentation", "detection", "classification", "enhancement"])
def test_valid_manifest_round_trips(task, tmp_path):
    manifest = ModelManifest.from_dict(manifest_for(task))
    assert manifest.task == task
    write_manifest(manifest, tmp_path)
    assert load_manifest(tmp_path) == manifest
    assert manifest.ref == "bright:1.0.0"
    assert manifest.source_tag == "bright 1.0.0"


def test_parsed_values():
    manifest = ModelManifest.from_dict(
        manifest_for(
            "segmentation",
            input={"spacing": [2.5, 2.5, 3], "orientation": "ras",
                   "normalization": {"method": "percentile", "percentiles": [1, 99]}},
            outputs={"labels": [{"value": 1, "name": "right lung", "color": [10, 20, 30]}, {"value": 2, "name": "left lung"}],
                     "keep_largest_component": True},
        )
    )
    assert manifest.input.spacing == (2.5, 2.5, 3.0)
    assert manifest.input.orientation == "RAS"
    assert manifest.input.normalization.percentiles == (1.0, 99.0)
    assert manifest.outputs.labels[0].color == (10, 20, 30)
    assert manifest.outputs.labels[1].color == (241, 214, 145)  # default colour of label 2
    assert manifest.outputs.keep_largest_component == (1, 2)
    assert manifest.inference.patch_size == (16, 16, 16)
    assert manifest.accepts_modality("ct") and not manifest.accepts_modality("MR")


def _broken(path: list, value, task="segmentation"):
    data = manifest_for(task)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "path, value, field, task",
    [
        (["name"], KeyError, "name", "segmentation"),
        (["name"], "Has Spaces", "name", "segmentation"),
        (["version"], "one", "version", "segmentation"),
        (["task"], "registration", "task", "segmentation"),
        (["modality"], [], "modality", "segmentation"),
        (["input", "spacing"], [1, 2], "input.spacing", "segmentation"),
        (["input", "spacing"], [1, -2, 3], "input.spacing", "segmentation"),
        (["input", "orientation"], "LLS", "input.orientation", "segmentation"),
        (["input", "channels"], 3, "input.channels", "segmentation"),
        (["input", "normalization", "method"], "histogram", "input.normalization.method", "segmentation"),
        (["input", "normalization", "window"], [400, -1000], "input.normalization.window", "segmentation"),
        (["input", "normalization"], KeyError, "input.normalization", "segmentation"),
        (["inference", "patch_size"], [16, 16], "inference.patch_size", "segmentation"),
        (["inference", "overlap"], 1.0, "inference.overlap", "segmentation"),
        (["inference", "batch_size"], 0, "inference.batch_size", "segmentation"),
        (["inference", "blend"], "median", "inference.blend", "segmentation"),
        (["outputs", "labels"], [], "outputs.labels", "segmentation"),
        (["outputs", "labels"], [{"value": 1, "name": "a"}, {"value": 1, "name": "b"}], "outputs.labels", "segmentation"),
        (["outputs", "labels"], [{"value": 0, "name": "a"}], "outputs.labels[0].value", "segmentation"),
        (["outputs", "labels"], [{"value": 1, "name": "a", "color": [0, 0, 300]}], "outputs.labels[0].color", "segmentation"),
        (["outputs", "keep_largest_component"], [7], "outputs.keep_largest_component", "segmentation"),
        (["outputs", "classes"], KeyError, "outputs.classes", "detection"),
        (["outputs", "nms_iou"], 2, "outputs.nms_iou", "detection"),
        (["inference", "mode"], "sliding_window", "inference.mode", "classification"),
        (["outputs", "value_range"], [5, 1], "outputs.value_range", "enhancement"),
        (["runtime", "type"], "pickle", "runtime.type", "segmentation"),
        (["runtime", "file"], "../../etc/passwd", "runtime.file", "segmentation"),
        (["runtime"], {"type": "builtin", "file": "w.pt", "architecture": "evil.Net"}, "runtime.architecture", "segmentation"),
        (["provenance", "license"], KeyError, "provenance.license", "segmentation"),
        (["provenance"], KeyError, "provenance", "segmentation"),
    ],
)
def test_validation_errors_name_the_field(path, value, field, task, tmp_path):
    (tmp_path / "model.json").write_text(json.dumps(_broken(path, value, task)))
    with pytest.raises(ModelError) as caught:
        load_manifest(tmp_path)
    message = str(caught.value)
    assert f"field '{field}'" in message
    assert str(tmp_path / "model.json") in message  # the error names the file too


def test_invalid_json_names_line_and_file(tmp_path):
    (tmp_path / "model.json").write_text('{\n  "name": "x",\n  oops\n}')
    with pytest.raises(ModelError, match=r"not valid JSON \(line 3"):
        load_manifest(tmp_path)


def test_missing_manifest(tmp_path):
    with pytest.raises(ModelError, match="no model.json"):
        load_manifest(tmp_path)


def test_newer_format_is_refused():
    with pytest.raises(ModelError, match="format_version"):
        ModelManifest.from_dict(manifest_for("segmentation", format_version=99))


def test_version_ordering():
    versions = ["1.10.0", "1.2", "1.9.2", "1.0.0-rc1", "1.0.0", "2.0.0+ft1", "2.0.0"]
    assert sorted(versions, key=version_key) == ["1.0.0-rc1", "1.0.0", "1.2", "1.9.2", "1.10.0", "2.0.0", "2.0.0+ft1"]


def test_derive_keeps_everything_else():
    manifest = ModelManifest.from_dict(manifest_for("segmentation"))
    newer = manifest.derive(version="1.1.0")
    assert newer.version == "1.1.0" and newer.outputs == manifest.outputs and manifest.version == "1.0.0"
