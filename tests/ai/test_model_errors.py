"""Bad model packages are clear model errors (exit 2, the model's name, what was wrong), never tracebacks.

Each case builds the package in a tmp folder: tiny TorchScript networks that return
NaN, a tuple, a single number, a map of the wrong size or raise; empty and damaged
weights files; a duplicate of a built-in model; a package whose manifest is broken.
"""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import write_package
from torch import nn

from medviewer.ai.pipeline import load_package, run_model
from medviewer.ai.registry import BUILTIN_MODELS_DIR, ModelRegistry
from medviewer.cli import main
from medviewer.core.errors import ModelError
from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume


class NaNOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=1) * float("nan")


class InfOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=1) / 0.0  # +inf where bright, nan where 0: both reported


class TupleOutput(nn.Module):
    """Bright voxels in the second element: taking the first one silently found no labels."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat([x, x], dim=1) * 0.0, torch.cat([0.5 - x, x - 0.5], dim=1)


class ScalarOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum()


class HalfSizeOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x, x - 0.5], dim=1)[:, :, ::2, ::2, ::2]


class RaisingForward(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 0:
            raise RuntimeError("this network is broken on purpose")
        return x


class IntegerOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x < 0.5, x > 0.5], dim=1).long()


BAD_NETWORKS = [
    ("nan", NaNOutput, ["returned NaN values in 16384 of 16384 outputs"]),
    ("inf", InfOutput, ["returned NaN or infinite values"]),
    ("tuple", TupleOutput, ["returned a tuple of 2 values instead of one tensor"]),
    ("scalar", ScalarOutput, ["returned a single number (a scalar)"]),
    ("halfsize", HalfSizeOutput, ["returned a map of size (8, 8, 8) (z, y, x) for an input of size (16, 16, 16)"]),
    ("raises", RaisingForward, ["the network failed on an input of shape (2, 1, 16, 16, 16)",
                                "RuntimeError: this network is broken on purpose"]),
    ("integer", IntegerOutput, ["returned int64 values", "floating-point"]),
]


def bright_cube() -> Volume:
    array = np.zeros((20, 20, 20), np.int16)
    array[5:15, 5:15, 5:15] = 900
    return Volume(array, Geometry((20, 20, 20), (1.0, 1.0, 1.0)), modality="CT")


@pytest.fixture
def image_file(tmp_path):
    from medviewer.io import write_volume

    path = tmp_path / "cube.nii.gz"
    write_volume(bright_cube(), path)
    return str(path)


@pytest.mark.parametrize("name, network, pieces", BAD_NETWORKS, ids=[case[0] for case in BAD_NETWORKS])
def test_bad_network_output_is_a_model_error_with_exit_2(name, network, pieces, tmp_path, image_file, capsys):
    models = tmp_path / "models"
    write_package(models / name, name=f"bad-{name}", network=network(), title="Broken test net")
    out = tmp_path / "out"
    code = main(["infer", "-m", f"bad-{name}", image_file, "-o", str(out), "--model-dir", str(models), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert f"model bad-{name}:1.0.0 (Broken test net)" in err and image_file in err
    for piece in pieces:
        assert piece in err
    assert list(out.iterdir()) == []  # no label file, no summary: nothing was built from the output


@pytest.mark.parametrize("name, network, piece", [
    ("nan", NaNOutput, "returned NaN values in 8192 of 8192 outputs"),  # one 16^3 image, 2 channels
    ("tuple", TupleOutput, "returned a tuple of 2 values"),
    ("halfsize", HalfSizeOutput, "returned a map of size (8, 8, 8)"),
])
def test_bad_output_of_a_whole_image_model_is_refused_too(name, network, piece, tmp_path):
    package = load_package(write_package(tmp_path / name, name=f"whole-{name}", network=network(),
                                         inference={"mode": "whole", "patch_size": [16, 16, 16]}))
    with pytest.raises(ModelError) as caught:
        run_model(package, bright_cube())
    assert piece in str(caught.value) and f"whole-{name}:1.0.0" in str(caught.value)


def test_scalar_from_a_classifier_is_refused(tmp_path):
    package = load_package(write_package(tmp_path / "cls", "classification", name="cls-scalar", network=ScalarOutput()))
    with pytest.raises(ModelError, match=r"cls-scalar:1\.0\.0.*a single number"):
        run_model(package, bright_cube())


def _builtin_state_dict_package(folder, content: bytes):
    write_package(folder, name="statedict")
    manifest = json.loads((folder / "model.json").read_text())
    manifest["runtime"] = {"type": "builtin", "file": "weights.pt", "architecture": "monai.UNet",
                           "arguments": {"spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                                         "channels": [4, 8], "strides": [2]}}
    (folder / "model.json").write_text(json.dumps(manifest))
    (folder / "weights.pt").write_bytes(content)


@pytest.mark.parametrize("runtime", ["torchscript", "builtin"])
def test_empty_weights_file_names_the_file_and_the_reason(runtime, tmp_path, image_file, capsys):
    models = tmp_path / "models"
    if runtime == "torchscript":
        write_package(models / "empty", name="statedict")
        (models / "empty" / "model.ts").write_bytes(b"")
        weights = models / "empty" / "model.ts"
    else:
        _builtin_state_dict_package(models / "empty", b"")
        weights = models / "empty" / "weights.pt"
    code = main(["infer", "-m", "statedict", image_file, "-o", str(tmp_path / "out"), "--model-dir", str(models)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{weights}: the weights file {weights.name} is empty (0 bytes)" in err


def test_damaged_state_dict_says_what_is_wrong(tmp_path, image_file, capsys):
    # Three bytes of junk: torch.load raised a bare IndexError ("pop from empty list") before, a traceback.
    models = tmp_path / "models"
    _builtin_state_dict_package(models / "junk", b"abc")
    code = main(["infer", "-m", "statedict", image_file, "-o", str(tmp_path / "out"), "--model-dir", str(models)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    message = err.split("cannot read the weights file weights.pt: ", 1)[1].strip()
    assert message and str(models / "junk" / "weights.pt") in err


def test_truncated_state_dict_names_the_reason(tmp_path):
    # A truncated pickle raises EOFError with an empty message: the colon used to end the line.
    folder = tmp_path / "truncated"
    _builtin_state_dict_package(folder, b"\x80\x02")
    package = load_package(folder)
    with pytest.raises(ModelError) as caught:
        run_model(package, bright_cube())
    text = str(caught.value)
    assert "cannot read the weights file weights.pt: " in text and not text.rstrip().endswith(":")
    assert str(folder / "weights.pt") in text


def _copy_builtin(target, name="ct-lung-seg"):
    target.mkdir(parents=True)
    shutil.copy(BUILTIN_MODELS_DIR / name / "model.json", target / "model.json")


def test_duplicate_of_a_builtin_is_shown_with_both_folders(tmp_path, medviewer_home, capsys):
    extra = tmp_path / "mine"
    _copy_builtin(extra / "ct-lung-seg")
    registry = ModelRegistry.default(extra_folders=[extra])
    used = registry.find("ct-lung-seg:1.0.0")
    assert used.origin == "builtin" and used.folder == BUILTIN_MODELS_DIR / "ct-lung-seg"
    (duplicate,) = registry.duplicates
    assert duplicate.package.folder == extra / "ct-lung-seg" and duplicate.used is used
    message = next(str(e) for e in registry.errors if "not used" in str(e))  # what the AI panel shows
    assert str(extra / "ct-lung-seg") in message and str(BUILTIN_MODELS_DIR / "ct-lung-seg") in message
    assert "comes first in the search order" in message

    assert main(["infer", "--list", "--model-dir", str(extra)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("ct-lung-seg:1.0.0")]
    assert len(lines) == 2  # both copies are listed
    assert "[builtin]" in lines[0] and "[extra, NOT USED" in lines[1] and str(extra / "ct-lung-seg") in lines[1]
    assert str(extra / "ct-lung-seg") in captured.err and "is not used" in captured.err


def test_same_package_reached_twice_is_not_a_duplicate(tmp_path):
    write_package(tmp_path / "models" / "m", name="m")
    registry = ModelRegistry([(tmp_path / "models", "extra"), (tmp_path / "models" / ".." / "models", "user")])
    assert [p.name for p in registry.packages] == ["m"] and registry.duplicates == [] and registry.errors == []


def test_using_a_broken_package_says_why_it_is_unavailable(tmp_path, image_file, capsys):
    models = tmp_path / "models"
    write_package(models / "halfdone", name="halfdone", inference={"patch_size": [16, 16]})
    (models / "nojson").mkdir()
    (models / "nojson" / "model.json").write_text("{")
    code = main(["infer", "-m", "halfdone", image_file, "-o", str(tmp_path / "out"), "--model-dir", str(models)])
    err = capsys.readouterr().err
    assert code == 2
    assert "model 'halfdone' is unavailable: its package could not be loaded" in err
    assert f"{models / 'halfdone' / 'model.json'}: field 'inference.patch_size' must be 3 positive integers" in err
    # A manifest that is not even JSON is found by its folder name.
    assert main(["infer", "-m", "nojson", image_file, "-o", str(tmp_path / "out"), "--model-dir", str(models)]) == 2
    assert "model 'nojson' is unavailable" in capsys.readouterr().err


def test_broken_version_beside_a_good_one(tmp_path):
    write_package(tmp_path / "lungs" / "1.0.0", name="lungs", version="1.0.0")
    write_package(tmp_path / "lungs" / "2.0.0", name="lungs", version="2.0.0", outputs={"labels": []})
    registry = ModelRegistry([(tmp_path, "user")])
    assert registry.find("lungs").version == "1.0.0"
    with pytest.raises(ModelError, match=r"lungs:2\.0\.0 is unavailable: .*field 'outputs.labels'.*loaded versions: 1\.0\.0"):
        registry.find("lungs:2.0.0")
