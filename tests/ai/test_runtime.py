import json
import pickle

import pytest
import torch
from conftest import manifest_for

from medviewer.ai.architectures import build_architecture
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.runtime import load_predictor, load_state_dict_safely
from medviewer.core.errors import ModelError

UNET_ARGS = {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [4, 8], "strides": [2]}


def _builtin_package(folder, arguments=UNET_ARGS):
    folder.mkdir(parents=True, exist_ok=True)
    manifest = manifest_for(
        "segmentation",
        runtime={"type": "builtin", "file": "weights.pt", "architecture": "monai.UNet", "arguments": arguments},
    )
    (folder / "model.json").write_text(json.dumps(manifest))
    return ModelManifest.from_dict(manifest, str(folder / "model.json"))


def test_builtin_state_dict_loads_and_predicts_like_the_original(tmp_path):
    manifest = _builtin_package(tmp_path)
    torch.manual_seed(0)
    original = build_architecture("monai.UNet", UNET_ARGS).eval()
    torch.save(original.state_dict(), tmp_path / "weights.pt")
    predictor = load_predictor(manifest, tmp_path)
    batch = torch.rand(1, 1, 16, 16, 16)
    with torch.inference_mode():
        assert torch.equal(predictor(batch), original(batch))


class Payload:
    """An object whose unpickling would run code (here: create a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_unsafe_pickle_is_refused_and_never_executed(tmp_path):
    manifest = _builtin_package(tmp_path)
    marker = tmp_path / "payload-ran"
    state = build_architecture("monai.UNet", UNET_ARGS).state_dict()
    state["extra"] = Payload(marker)
    torch.save(state, tmp_path / "weights.pt")
    with pytest.raises(ModelError, match="arbitrary code .* refused"):
        load_predictor(manifest, tmp_path)
    assert not marker.exists()


def test_whole_pickled_module_is_refused(tmp_path):
    manifest = _builtin_package(tmp_path)
    torch.save(build_architecture("monai.UNet", UNET_ARGS), tmp_path / "weights.pt")  # pickles the class
    with pytest.raises(ModelError, match="refused"):
        load_predictor(manifest, tmp_path)


def test_plain_pickle_file_is_refused(tmp_path):
    (tmp_path / "weights.pt").write_bytes(pickle.dumps({"w": Payload(tmp_path / "ran")}))
    with pytest.raises(ModelError):
        load_state_dict_safely(tmp_path / "weights.pt")
    assert not (tmp_path / "ran").exists()


def test_weights_that_do_not_fit_the_architecture(tmp_path):
    manifest = _builtin_package(tmp_path, {**UNET_ARGS, "channels": [8, 16]})
    torch.save(build_architecture("monai.UNet", UNET_ARGS).state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ModelError, match="do not fit architecture monai.UNet"):
        load_predictor(manifest, tmp_path)


def test_bad_architecture_arguments(tmp_path):
    manifest = _builtin_package(tmp_path, {"spatial_dims": 3, "no_such_argument": 1})
    torch.save({}, tmp_path / "weights.pt")
    with pytest.raises(ModelError, match="runtime.arguments"):
        load_predictor(manifest, tmp_path)


def test_non_tensor_content_is_refused(tmp_path):
    manifest = _builtin_package(tmp_path)
    torch.save([1, 2, 3], tmp_path / "weights.pt")
    with pytest.raises(ModelError, match="does not hold a state dict"):
        load_predictor(manifest, tmp_path)


def test_missing_weights_file(tmp_path):
    manifest = _builtin_package(tmp_path)
    with pytest.raises(ModelError, match="weights.pt.*missing"):
        load_predictor(manifest, tmp_path)


def test_file_that_is_not_torchscript(tmp_path):
    manifest = ModelManifest.from_dict(manifest_for("segmentation"))
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.ts")
    with pytest.raises(ModelError, match="not a TorchScript file"):
        load_predictor(manifest, tmp_path)


def test_onnx_without_onnxruntime_gives_a_clear_error(tmp_path):
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("onnxruntime is installed")
    manifest = ModelManifest.from_dict(manifest_for("segmentation", runtime={"type": "onnx", "file": "model.onnx"}))
    (tmp_path / "model.onnx").write_bytes(b"not really onnx")
    with pytest.raises(ModelError, match=r"needs onnxruntime.*medviewer\[onnx\]"):
        load_predictor(manifest, tmp_path)
