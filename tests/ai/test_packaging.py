"""A trained or fine-tuned network becomes a versioned package that the registry lists and the pipeline runs."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import manifest_for

from medviewer.ai.architectures import build_architecture
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.packaging import save_package
from medviewer.ai.pipeline import run_model
from medviewer.ai.registry import ModelRegistry, new_package_folder
from medviewer.core.errors import ModelError
from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume

ARGUMENTS = {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [4, 8], "strides": [2]}


def test_fine_tuned_version_sits_beside_its_parent(tmp_path):
    base = ModelManifest.from_dict(manifest_for(
        "segmentation", name="organ",
        runtime={"type": "builtin", "file": "weights.pt", "architecture": "monai.UNet", "arguments": ARGUMENTS},
    ))
    torch.manual_seed(0)
    network = build_architecture("monai.UNet", ARGUMENTS)
    save_package(new_package_folder("organ", "1.0.0", tmp_path), base, network, "# organ 1.0.0\n")
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.01)  # "fine-tuning"
    tuned = base.derive(version="1.1.0", provenance=dataclasses.replace(base.provenance, parent=base.ref,
                                                                         metrics={"dice": {"organ": 0.9}}))
    save_package(new_package_folder("organ", "1.1.0", tmp_path), tuned, network, "# organ 1.1.0\n")
    with pytest.raises(ModelError, match="already exists"):
        new_package_folder("organ", "1.1.0", tmp_path)

    registry = ModelRegistry([(tmp_path, "user")])
    assert [p.version for p in registry.versions("organ")] == ["1.0.0", "1.1.0"]
    newest = registry.find("organ")
    assert newest.manifest.provenance.parent == "organ:1.0.0" and newest.model_card() == "# organ 1.1.0\n"
    volume = Volume(np.random.default_rng(0).integers(0, 1000, (16, 16, 16)).astype(np.int16), Geometry((16, 16, 16)))
    old, new = run_model(registry.find("organ:1.0.0"), volume), run_model(newest, volume)
    assert old.label_map.source == "organ 1.0.0" and new.label_map.source == "organ 1.1.0"
    # The saved weights are plain tensors, loadable without unpickling code.
    state = torch.load(newest.weights_path, weights_only=True)
    assert torch.equal(state["model.0.conv.weight"], network.state_dict()["model.0.conv.weight"])


def test_only_builtin_runtimes_are_saved_as_state_dicts(tmp_path):
    manifest = ModelManifest.from_dict(manifest_for("segmentation"))
    with pytest.raises(ModelError, match="builtin"):
        save_package(tmp_path, manifest, {}, "")
