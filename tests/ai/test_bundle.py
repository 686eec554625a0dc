"""MONAI bundles as medviewer models: read from their own config, checked before anything runs, and
predicting exactly what MONAI's own ``monai.bundle`` config workflow predicts on the same NIfTI."""

from __future__ import annotations

import copy
import json
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_helpers import INFERENCE, make_bundle, network, phantom_ct

from medviewer.ai.bundle.folder import find_bundles, load_bundle
from medviewer.ai.bundle.runner import BundlePredictor
from medviewer.ai.bundle.safety import scan_config
from medviewer.ai.bundle.trust import bundle_hash, is_trusted, set_trusted
from medviewer.ai.pipeline import load_package
from medviewer.ai.registry import ModelRegistry
from medviewer.ai.results import InferenceOptions
from medviewer.cli import main
from medviewer.core.errors import ModelError

EVIL_SCRIPT = '''
from pathlib import Path


class Mark:
    """A transform that leaves a file behind when it is built: proof that it ran."""

    def __init__(self, keys, marker):
        Path(marker).write_text("built")
        self.keys = keys

    def __call__(self, data):
        return data
'''


@pytest.fixture(autouse=True)
def own_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_HOME", str(tmp_path / "home"))


def _nifti(tmp_path):
    from medviewer.io import read_volume, write_volume

    path = tmp_path / "ct.nii.gz"
    write_volume(phantom_ct(), path)
    return path, read_volume(path)


def test_bundle_is_described_by_its_own_configuration(tmp_path):
    for yaml_config in (False, True):
        folder = make_bundle(tmp_path / ("yaml" if yaml_config else "json"), yaml_config=yaml_config)
        bundle = load_bundle(folder)
        manifest = bundle.manifest()
        assert (manifest.name, manifest.version, manifest.task.value) == ("phantom-organ-segmentation", "0.2.1",
                                                                          "segmentation")
        assert [(label.value, label.name) for label in manifest.outputs.labels] == [(1, "body"), (2, "ball")]
        assert manifest.modality == ("CT",) and manifest.input.channels == 1
        assert manifest.input.spacing == (1.5, 1.5, 2.0) and manifest.inference.patch_size == (32, 32, 16)
        assert bundle.intensity_transforms == ["ScaleIntensityRanged(a_min=-200, a_max=300, b_min=0.0, b_max=1.0, "
                                               "clip=True)"]
        assert bundle.weights_path == folder / "models" / "model.pt"
        assert bundle.config_path.name == ("inference.yaml" if yaml_config else "inference.json")


def test_broken_bundles_name_the_file(tmp_path):
    folder = make_bundle(tmp_path)
    metadata = folder / "configs" / "metadata.json"
    data = json.loads(metadata.read_text())
    del data["network_data_format"]["outputs"]["pred"]["channel_def"]
    metadata.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="metadata.json.*channel_def"):
        load_bundle(folder)
    registry = ModelRegistry([(tmp_path, "user")])
    assert registry.packages == [] and "channel_def" in str(registry.errors[0])
    metadata.write_text("{not json")
    with pytest.raises(ModelError, match="metadata.json.*not valid JSON"):
        load_bundle(folder)


def test_registry_and_load_package_find_bundles(tmp_path):
    folder = make_bundle(tmp_path / "models")
    assert find_bundles(tmp_path / "models") == [folder] and find_bundles(folder) == [folder]
    registry = ModelRegistry([(tmp_path / "empty", "user")])
    registry.add_folder(folder)  # AI > Add model folder... on the bundle itself
    package = registry.find("phantom-organ-segmentation")
    assert package.folder == folder and package.ref == "phantom-organ-segmentation:0.2.1"
    assert "Phantom bundle" in package.model_card() and "1.5 x 1.5 x 2 mm" in package.model_card()
    assert load_package(folder).manifest == package.manifest


def _monai_reference(folder, nifti, out_dir):
    """The bundle run by MONAI itself: ConfigParser builds every part, LoadImaged reads the NIfTI,
    the postprocessing (SaveImaged included) writes the labels; probabilities are taken before argmax."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(folder / "configs" / "inference.json"))
    parser["bundle_root"] = str(folder)
    parser["output_dir"] = str(out_dir)
    preprocessing = parser.get_parsed_content("preprocessing")
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(folder / "models" / "model.pt", weights_only=True))
    net.eval()
    inferer = parser.get_parsed_content("inferer")
    postprocessing = parser.get_parsed_content("postprocessing")
    with torch.no_grad():
        data = preprocessing({"image": str(nifti)})
        data["pred"] = inferer(data["image"][None], net)[0]
        probabilities = None
        for transform in postprocessing.transforms:
            if type(transform).__name__ == "AsDiscreted":
                probabilities = data["pred"].numpy().copy()
            data = transform(data)
    written = sorted(out_dir.glob("*_seg.nii.gz"))
    assert len(written) == 1
    return np.asarray(nib.load(written[0]).dataobj), probabilities  # both (x, y, z), NIfTI voxel order


@pytest.mark.parametrize("weights", ["pt", "ts"])
def test_same_prediction_as_monais_own_bundle_workflow(tmp_path, weights):
    reference_folder = make_bundle(tmp_path / "reference")
    folder = reference_folder if weights == "pt" else make_bundle(tmp_path / "ts", weights="ts")
    nifti, volume = _nifti(tmp_path)
    expected_labels, expected_probabilities = _monai_reference(reference_folder, nifti, tmp_path / "eval")
    expected_labels = expected_labels[..., 0] if expected_labels.ndim == 4 else expected_labels
    expected_labels = expected_labels.transpose(2, 1, 0).astype(np.uint16)  # to medviewer's (z, y, x)
    expected_probabilities = expected_probabilities.transpose(0, 3, 2, 1)
    with torch.inference_mode():
        labels, probabilities = BundlePredictor(folder).predict_volume(volume)
    assert labels.shape == volume.geometry.shape == expected_labels.shape
    disagreeing = int((labels != expected_labels).sum())
    difference = float(np.abs(probabilities - expected_probabilities).max())
    print(f"\n{weights}: {disagreeing} of {labels.size} voxels differ, max probability difference {difference:.2e}, "
          f"counts {np.bincount(labels.ravel(), minlength=3).tolist()}")
    assert disagreeing == 0
    assert difference < 1e-5
    counts = np.bincount(labels.ravel(), minlength=3)
    assert counts.tolist() == np.bincount(expected_labels.ravel(), minlength=3).tolist()
    assert counts.min() > 1000  # every class is really predicted: the test would see a wrong grid


def test_study_grid_without_invertd_in_the_bundle(tmp_path):
    """Labels left on the bundle's grid are put back on the study's as MONAI's Invertd would (nearest)."""
    config = copy.deepcopy(INFERENCE)
    softmax, invert, argmax, _save = config["postprocessing"]["transforms"]
    config["postprocessing"]["transforms"] = [softmax, argmax]
    folder = make_bundle(tmp_path, config=config)
    config["postprocessing"]["transforms"] = [softmax, argmax, {**invert, "nearest_interp": True}]
    inverting = make_bundle(tmp_path, name="inverting", config=config)
    volume = phantom_ct()
    with torch.inference_mode():
        labels, probabilities = BundlePredictor(folder).predict_volume(volume)
        expected, _ = BundlePredictor(inverting).predict_volume(volume)
    assert labels.shape == volume.geometry.shape and probabilities is None
    np.testing.assert_array_equal(labels, expected)
    assert np.bincount(labels.ravel(), minlength=3).min() > 1000


# ---------------------------------------------------------------------------- what a config may run
@pytest.mark.parametrize("change, problem", [
    (lambda c: c["preprocessing"]["transforms"][4].update({"a_min": {"_target_": "numpy.float32", "x": -200}}),
     "preprocessing#transforms#4#a_min#_target_: target 'numpy.float32' is not a monai.* or torch.* callable"),
    (lambda c: c.update({"network": "$@network_def.to(@device)"}), "network: Python expression"),
    (lambda c: c.update({"imports": ["$import os"]}), "imports#0: Python expression '$import os'"),
    (lambda c: c["inferer"].update({"_mode_": "debug"}), "inferer#_mode_: _mode_ 'debug'"),
    (lambda c: c.update({"loader": {"_target_": "torch.load", "f": "x.pt"}}), "target 'torch.load' can load"),
    (lambda c: c.update({"run": {"_target_": "monai.bundle.run"}}), "target 'monai.bundle.run' can load"),
    (lambda c: c.update({"more": "%other.json#network_def"}), "reads another file"),
    (lambda c: c.update({"writer": {"_target_": "open", "file": "x", "mode": "w"}}),  # pydoc would find builtins.open
     "writer#_target_: target 'open' is not a MONAI component"),
    (lambda c: c.update({"runner": {"_target_": "run"}}), "target 'monai.bundle.scripts.run' can load"),
    (lambda c: c["network_def"].update({"_target_": "scripts.net.Net"}), "not a module in the bundle's scripts/"),
])
def test_untrusted_configs_are_refused_naming_the_target(tmp_path, change, problem):
    config = copy.deepcopy(INFERENCE)
    change(config)
    folder = make_bundle(tmp_path, config=config)
    with pytest.raises(ModelError) as raised:
        BundlePredictor(folder)
    message = str(raised.value)
    assert problem in message and "inference.json" in message and "trusted" in message


def test_allowed_by_default(tmp_path):
    config = copy.deepcopy(INFERENCE)
    assert scan_config(config) == []
    config["network_def"]["_target_"] = "monai.networks.nets.UNet"
    config["inferer"]["_target_"] = "monai.inferers.SlidingWindowInferer"
    assert scan_config(config) == []
    scripts = tmp_path / "b" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "__init__.py").write_text("")
    (scripts / "net.py").write_text("from monai.networks.nets import UNet as Net\n")
    config["network_def"]["_target_"] = "scripts.net.Net"  # the bundle's own network definition
    assert scan_config(config, tmp_path / "b") == []
    config["preprocessing"]["transforms"][0]["_target_"] = "scripts.net.Net"  # but nothing else from scripts/
    assert [f.where for f in scan_config(config, tmp_path / "b")] == ["preprocessing#transforms#0#_target_"]


def test_refused_before_anything_is_built_and_runs_once_trusted(tmp_path):
    marker = tmp_path / "marker.txt"
    config = copy.deepcopy(INFERENCE)
    config["preprocessing"]["transforms"].insert(2, {"_target_": "scripts.custom.Mark", "keys": "image",
                                                     "marker": str(marker)})
    config["scale_max"] = "$float(300)"
    config["preprocessing"]["transforms"][5]["a_max"] = "@scale_max"
    folder = make_bundle(tmp_path, config=config)
    (folder / "scripts").mkdir()
    (folder / "scripts" / "__init__.py").write_text("")
    (folder / "scripts" / "custom.py").write_text(EVIL_SCRIPT)
    volume = phantom_ct()
    with pytest.raises(ModelError, match="scripts.custom.Mark.*scale_max: Python expression"):
        BundlePredictor(folder)
    assert not marker.exists()  # refused before MONAI built anything
    assert not is_trusted(folder)
    set_trusted(folder, True)
    assert is_trusted(folder)
    with torch.inference_mode():
        labels, _ = BundlePredictor(folder).predict_volume(volume)
        plain, _ = BundlePredictor(make_bundle(tmp_path, name="plain")).predict_volume(volume)
    assert marker.read_text() == "built"
    np.testing.assert_array_equal(labels, plain)  # the custom transform is the identity
    # the trust is for this bundle as it is: an edited config is untrusted again
    before = bundle_hash(folder)
    (folder / "scripts" / "custom.py").write_text(EVIL_SCRIPT + "\n# changed\n")
    assert bundle_hash(folder) != before and not is_trusted(folder)
    set_trusted(folder, True)
    set_trusted(folder, False)
    assert not is_trusted(folder)


def test_unsafe_weights_are_refused_naming_the_file(tmp_path):
    folder = make_bundle(tmp_path)

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled",))

    torch.save({"model": network().state_dict(), "extra": Payload()}, folder / "models" / "model.pt")
    with pytest.raises(ModelError, match=r"model\.pt.*weights_only=True"):
        BundlePredictor(folder)
    torch.save({"model": network().state_dict()}, folder / "models" / "model.pt")  # CheckpointSaver's layout
    BundlePredictor(folder)


def test_service_run_and_undoable_layer(tmp_path):
    from medviewer.core.document import Document
    from medviewer.core.undo import UndoStack
    from medviewer.services.inference import InferenceService, apply_result

    folder = make_bundle(tmp_path / "models")
    service = InferenceService(ModelRegistry([(tmp_path / "models", "user")]))
    volume = phantom_ct()
    result = service.run("phantom-organ-segmentation", volume, options=InferenceOptions(device="cpu"))
    assert result.source == "phantom-organ-segmentation 0.2.1"
    assert result.label_map.geometry == volume.geometry
    assert {v: i.name for v, i in result.label_map.table.items()} == {1: "body", 2: "ball"}
    with torch.inference_mode():
        expected, _ = BundlePredictor(folder).predict_volume(volume)
    np.testing.assert_array_equal(np.asarray(result.label_map.array), expected)
    document, undo = Document(volume), UndoStack()
    apply_result(document, result, undo)
    assert document.label_maps[-1] is result.label_map
    undo.undo()
    assert result.label_map not in document.label_maps


def test_infer_cli_runs_a_bundle_end_to_end(tmp_path):
    import SimpleITK as sitk

    from medviewer.imaging.sitk_bridge import geometry_from_sitk, sitk_to_array

    folder = make_bundle(tmp_path / "bundles")
    nifti, volume = _nifti(tmp_path)
    out = tmp_path / "out"
    assert main(["infer", "--model-dir", str(folder), str(nifti), "--out", str(out), "--device", "cpu"]) == 0
    written = out / "ct_phantom-organ-segmentation_labels.nii.gz"
    image = sitk.ReadImage(str(written))
    assert geometry_from_sitk(image).is_close(volume.geometry, 1e-5)
    with torch.inference_mode():
        expected, _ = BundlePredictor(folder).predict_volume(volume)
    labels = sitk_to_array(image)
    np.testing.assert_array_equal(labels, expected)
    summary = json.loads((out / "ct_phantom-organ-segmentation_labels.json").read_text())
    assert summary["model"] == "phantom-organ-segmentation:0.2.1"
    assert summary["voxel_counts"] == {"body": int((labels == 1).sum()), "ball": int((labels == 2).sum())}
    # refused config on the command line: a clear message, exit status not 0
    config = copy.deepcopy(INFERENCE)
    config["network"] = "$@network_def.to('cpu')"
    bad = make_bundle(tmp_path / "bad", config=config)
    assert main(["infer", "--model-dir", str(bad), str(nifti), "--out", str(tmp_path / "out2"), "--device", "cpu"]) != 0


def test_each_bundle_gets_its_own_scripts_network(tmp_path):
    """Every bundle calls its package ``scripts``: a second bundle must not get the first one's module."""
    sources = {"plain": "from monai.networks.nets import UNet as Net\n",
               "negated": ("from monai.networks.nets import UNet\n\n\nclass Net(UNet):\n"
                           "    def forward(self, x):\n        return -super().forward(x)\n")}
    folders = {}
    for name, source in sources.items():
        config = copy.deepcopy(INFERENCE)
        config["network_def"]["_target_"] = "scripts.net.Net"
        folders[name] = make_bundle(tmp_path, name=name, config=config)
        (folders[name] / "scripts").mkdir()
        (folders[name] / "scripts" / "__init__.py").write_text("")
        (folders[name] / "scripts" / "net.py").write_text(source)
    volume = phantom_ct()
    with torch.inference_mode():
        plain, plain_probabilities = BundlePredictor(folders["plain"]).predict_volume(volume)
        negated, negated_probabilities = BundlePredictor(folders["negated"]).predict_volume(volume)
        reference, _ = BundlePredictor(make_bundle(tmp_path, name="reference")).predict_volume(volume)
    np.testing.assert_array_equal(plain, reference)
    assert int((plain != negated).sum()) > 10000
    assert not np.allclose(plain_probabilities, negated_probabilities)
    assert "scripts" not in sys.modules


def test_progress_per_window_batch_and_cancel_between_batches(tmp_path):
    from medviewer.core.errors import OperationCancelled
    from medviewer.core.jobs import CancelToken

    predictor = BundlePredictor(make_bundle(tmp_path))
    messages = []
    with torch.inference_mode():
        predictor.predict_volume(phantom_ct(), progress=lambda fraction, text: messages.append((fraction, text)))
    assert [text for _, text in messages] == ["window batch 1/2", "window batch 2/2"]
    assert messages[-1][0] == pytest.approx(0.95)
    cancel = CancelToken()

    def cancel_after_first(_fraction, _text):
        cancel.cancel()

    with pytest.raises(OperationCancelled), torch.inference_mode():
        predictor.predict_volume(phantom_ct(), progress=cancel_after_first, cancel=cancel)
