"""nnU-Net v2 result folders: reading, preprocessing, network, prediction, registry and CLI.

The model folder is built in the test (``nnunet_helpers``): real plans.json / dataset.json layout,
checkpoints saved as nnU-Net's trainer saves them. Networks with known behaviour are swapped in
where a test needs to know which voxels must come out labelled.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunet_helpers import DATASET_NAME, INTENSITY, make_trained_model, phantom_ct

from medviewer.ai.nnunet.folder import find_nnunet_models, load_nnunet_model, resolve_configuration
from medviewer.ai.nnunet.network import build_network, load_checkpoint
from medviewer.ai.nnunet.predictor import NnUNetPredictor, _Fold, gaussian_weights, window_starts
from medviewer.ai.nnunet.preprocessing import normalize_channel, preprocess
from medviewer.ai.registry import ModelRegistry
from medviewer.ai.results import InferenceOptions
from medviewer.cli import main
from medviewer.core.errors import ModelError
from medviewer.imaging.sitk_bridge import geometry_from_sitk, sitk_to_array


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """nnUNet_results with Dataset042_Phantom: 3d_fullres (folds 0, 1) and 2d (fold 0)."""
    root = tmp_path_factory.mktemp("nnUNet_results")
    full = make_trained_model(root, "3d_fullres", folds=(0, 1))
    flat = make_trained_model(root, "2d", folds=(0,), seed=7)
    return root, full, flat


def _ball_mask(volume):
    """The phantom's bright ball (180 HU) inside the field of view."""
    array = np.asarray(volume.array)
    return array > 110


class IntensityNet(torch.nn.Module):
    """Logits from the normalised intensity x: background 0, label 1 where x > 1 (the ball), label 2 never."""

    def __init__(self, heads: int = 3, regions: bool = False) -> None:
        super().__init__()
        self.regions = regions
        self.heads = heads
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        if self.regions:  # organ (labels 1, 2) where x > -1, lesion (label 2) where x > 1
            return torch.cat([8 * (x + 1.0), 8 * (x - 1.0)], dim=1)
        return torch.cat([torch.zeros_like(x), 8 * (x - 1.0), torch.full_like(x, -50.0)], dim=1)


def _with_network(predictor: NnUNetPredictor, network: torch.nn.Module) -> NnUNetPredictor:
    predictor.network = network
    predictor.folds = [_Fold("fold_x", network.state_dict())]
    return predictor


# ---------------------------------------------------------------------------- reading the folder
def test_plans_and_dataset_are_read_as_nnunet_does(results):
    _root, full, _flat = results
    model = load_nnunet_model(full)
    assert (model.trainer, model.plans_name, model.configuration_name) == ("nnUNetTrainer", "nnUNetPlans", "3d_fullres")
    assert model.patch_size == (8, 32, 32) and model.spacing == (4.0, 1.2, 1.2)
    assert model.transpose_forward == (2, 0, 1) and model.transpose_backward == (1, 2, 0)
    assert [p.parent.name for p in model.checkpoints] == ["fold_0", "fold_1"]
    assert model.labels.values == (0, 1, 2) and model.labels.heads == 3
    manifest = model.manifest()
    assert manifest.name == "dataset042_phantom" and manifest.version == "nnUNetTrainer__nnUNetPlans__3d_fullres"
    assert manifest.task == "segmentation" and manifest.modality == ("CT",)
    assert [(l.value, l.name) for l in manifest.outputs.labels] == [(1, "liver"), (2, "tumour")]
    # (x, y, z) for display: network axes (x, z, y) at (4.0, 1.2, 1.2) mm
    assert manifest.input.spacing == (4.0, 1.2, 1.2) and manifest.inference.patch_size == (8, 32, 32)
    assert manifest.provenance.license == "CC-BY-4.0"


def test_configuration_inheritance_and_errors(tmp_path):
    plans = {"configurations": {"3d_fullres": {"spacing": [1, 1, 1], "patch_size": [8, 8, 8], "batch_size": 2},
                                "3d_big": {"inherits_from": "3d_fullres", "patch_size": [16, 16, 16]}}}
    merged = resolve_configuration(plans, "3d_big", tmp_path / "plans.json")
    assert merged == {"spacing": [1, 1, 1], "patch_size": [16, 16, 16], "batch_size": 2}
    with pytest.raises(ModelError, match="has no configuration '3d_lowres' \\(it has: 3d_fullres, 3d_big\\)"):
        resolve_configuration(plans, "3d_lowres", tmp_path / "plans.json")


def test_broken_folder_names_the_file(tmp_path):
    folder = make_trained_model(tmp_path)
    (folder / "dataset.json").write_text('{"channel_names": {"0": "CT"}, "labels": {"liver": 1}}')
    with pytest.raises(ModelError, match="background") as error:
        load_nnunet_model(folder)
    assert error.value.path == str(folder / "dataset.json")
    registry = ModelRegistry([(tmp_path, "extra")])
    assert registry.packages == [] and "background" in str(registry.errors[0])
    with pytest.raises(ModelError, match="'dataset042_phantom' is unavailable: its package could not be loaded"):
        registry.find("dataset042_phantom")


# ---------------------------------------------------------------------------- preprocessing
def test_normalisation_values():
    values = np.array([-1000.0, 0.0, 40.0, 200.0, 1000.0], dtype=np.float32)
    ct = normalize_channel(values, "CTNormalization", False, None, INTENSITY)
    np.testing.assert_allclose(ct, [-1.75, -0.5, 0.0, 2.0, 3.25], rtol=0, atol=1e-6)
    z = normalize_channel(values, "ZScoreNormalization", False, None, None)
    np.testing.assert_allclose(z, (values - values.mean()) / values.std(), atol=1e-5)
    mask = np.array([False, True, True, True, False])
    masked = normalize_channel(values, "ZScoreNormalization", True, mask, None)
    inside = values[mask]
    np.testing.assert_allclose(masked[mask], (inside - inside.mean()) / inside.std(), atol=1e-5)
    assert masked[0] == -1000.0 and masked[4] == 1000.0  # outside the mask untouched, as in nnU-Net
    np.testing.assert_allclose(normalize_channel(values, "RescaleTo01Normalization", False, None, None),
                               (values + 1000) / 2000, atol=1e-6)
    with pytest.raises(ModelError, match="CTNormalization needs"):
        normalize_channel(values, "CTNormalization", False, None, {"mean": 1.0})
    with pytest.raises(ModelError, match="'MyNorm' is not one medviewer knows"):
        normalize_channel(values, "MyNorm", False, None, None)


def test_preprocessing_transposes_crops_and_resamples_to_the_target_spacing(results):
    model = load_nnunet_model(results[1])
    volume = phantom_ct()
    prepared = preprocess(np.asarray(volume.array)[None], tuple(volume.geometry.spacing[::-1]), model)
    # network axes are the study's (x, z, y); the zero border (z < 3, x < 1) is cropped away
    assert prepared.shape_before_cropping == (14, 36, 50)
    assert prepared.bbox == [(1, 14), (3, 36), (0, 50)]
    assert prepared.spacing == (3.5, 1.1, 0.9) and prepared.target_spacing == (4.0, 1.2, 1.2)
    # round(13 * 3.5 / 4), round(33 * 1.1 / 1.2), round(50 * 0.9 / 1.2)
    assert prepared.data.shape == (1, 11, 30, 38) and prepared.data.dtype == np.float32
    assert prepared.data.min() >= -1.75 - 1e-3 and prepared.data.max() <= 3.25 + 0.2  # cubic overshoot only


def test_window_layout_and_gaussian():
    assert window_starts(38, 32) == [0, 6] and window_starts(32, 32) == [0] and window_starts(110, 64) == [0, 23, 46]
    weights = gaussian_weights((8, 32, 32))
    assert weights.shape == (8, 32, 32) and weights[4, 16, 16] == 1.0 and weights.min() > 0
    half = gaussian_weights((8, 32, 32), True)
    assert half.dtype == np.float16 and half[4, 16, 16] == 10.0 and half.min() > 0


# ---------------------------------------------------------------------------- network and checkpoints
def test_network_is_built_from_the_plans(results):
    model = load_nnunet_model(results[1])
    network = build_network(model.configuration["architecture"], 1, 3, model.plans_path)
    assert type(network).__name__ == "PlainConvUNet" and len(network.encoder.stages) == 3
    first = network.encoder.stages[0][0].convs[0].conv
    assert first.kernel_size == (1, 3, 3) and first.out_channels == 8
    with torch.no_grad():
        assert tuple(network(torch.zeros(1, 1, 8, 32, 32)).shape) == (1, 3, 8, 32, 32)  # no deep supervision


@pytest.mark.parametrize("field, value, problem", [
    ("network_class_name", "os.system", "network class 'os.system' is refused"),
    ("conv_op", "builtins.eval", "'arch_kwargs.conv_op' 'builtins.eval' is refused"),
])
def test_plans_cannot_name_arbitrary_code(results, field, value, problem):
    model = load_nnunet_model(results[1])
    architecture = json.loads(json.dumps(model.configuration["architecture"]))
    if field == "network_class_name":
        architecture[field] = value
    else:
        architecture["arch_kwargs"][field] = value
    with pytest.raises(ModelError, match=problem):
        build_network(architecture, 1, 3, model.plans_path)


def test_checkpoints_load_with_weights_only_and_the_numpy_allow_list(results):
    path = load_nnunet_model(results[1]).checkpoints[0]
    with pytest.raises(pickle.UnpicklingError):  # the training log's NumPy floats need the allow-list
        torch.load(path, map_location="cpu", weights_only=True)
    checkpoint = load_checkpoint(path)
    assert checkpoint["trainer_name"] == "nnUNetTrainer" and checkpoint["inference_allowed_mirroring_axes"] == (0, 1, 2)
    assert checkpoint["init_args"]["configuration"] == "3d_fullres"


class _Payload:
    """Anything beyond plain types needs arbitrary unpickling."""


def test_unsafe_checkpoint_is_refused_naming_the_file(tmp_path):
    folder = make_trained_model(tmp_path, folds=(0,))
    path = folder / "fold_0" / "checkpoint_final.pth"
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    checkpoint["trainer"] = _Payload()
    torch.save(checkpoint, path)
    with pytest.raises(ModelError, match="checkpoint_final.pth needs arbitrary code to be unpickled and was refused") as error:
        NnUNetPredictor(folder)
    assert error.value.path == str(path)
    # listing it stays cheap and fine; running it is what fails
    registry = ModelRegistry([(tmp_path, "extra")])
    assert [p.name for p in registry.packages] == ["dataset042_phantom"]


# ---------------------------------------------------------------------------- prediction geometry
@pytest.mark.parametrize("configuration", ["3d_fullres", "2d"])
def test_labels_land_on_the_anisotropic_oblique_study_grid(results, configuration):
    volume = phantom_ct()
    network = IntensityNet()
    predictor = _with_network(NnUNetPredictor(results[1] if configuration == "3d_fullres" else results[2]), network)
    labels, probabilities = predictor.predict(np.asarray(volume.array)[None], tuple(volume.geometry.spacing[::-1]),
                                              probabilities=True)
    assert labels.shape == volume.array.shape and probabilities.shape == (3, *volume.array.shape)
    # the network saw windows of the plans' patch in the transposed axis order
    assert set(network.seen) == ({(1, 1, 8, 32, 32)} if configuration == "3d_fullres" else {(1, 1, 32, 32)})
    truth = _ball_mask(volume)
    found = labels == 1
    dice = 2 * (truth & found).sum() / (truth.sum() + found.sum())
    assert dice > 0.9, dice
    assert not (labels == 2).any()
    # the same world position: centroids within half a voxel of the thick axis
    centroid = lambda mask: volume.geometry.index_to_world(np.argwhere(mask)[:, ::-1].mean(axis=0))  # noqa: E731
    assert np.linalg.norm(centroid(found) - centroid(truth)) < 0.5 * 3.5
    # outside the cropped field of view nnU-Net writes background with probability 1
    assert (labels[:3] == 0).all() and (probabilities[0, :3] == 1).all()


def test_region_based_labels_follow_regions_class_order(tmp_path):
    folder = make_trained_model(tmp_path, regions=True, folds=(0,))
    model = load_nnunet_model(folder)
    assert model.labels.region_based and model.labels.regions == ((1, 2), (2,))
    assert model.labels.regions_class_order == (1, 2) and model.labels.names == {1: "organ", 2: "lesion"}
    volume = phantom_ct()
    predictor = _with_network(NnUNetPredictor(folder), IntensityNet(regions=True))
    labels, _ = predictor.predict(np.asarray(volume.array)[None], tuple(volume.geometry.spacing[::-1]))
    array = np.asarray(volume.array)
    ball, body = _ball_mask(volume), array > -500
    body[:3], body[:, :, :1] = False, False  # the zero border outside the field of view is no body
    lesion = labels == 2
    assert 2 * (lesion & ball).sum() / (lesion.sum() + ball.sum()) > 0.9
    organ = labels == 1
    expected = body & ~ball
    assert 2 * (organ & expected).sum() / (organ.sum() + expected.sum()) > 0.95


def test_mirroring_and_folds_change_the_prediction_as_nnunet_does(results):
    volume = phantom_ct()
    predictor = NnUNetPredictor(results[1])
    prepared = preprocess(np.asarray(volume.array)[None], tuple(volume.geometry.spacing[::-1]), predictor.model)
    both = predictor.predict_logits(prepared, mirroring=False, half_precision=False)
    folds = predictor.folds
    per_fold = []
    for fold in folds:
        predictor.folds = [fold]
        per_fold.append(predictor.predict_logits(prepared, mirroring=False, half_precision=False))
    predictor.folds = folds
    np.testing.assert_allclose(both, (per_fold[0] + per_fold[1]) / 2, atol=1e-5)
    mirrored = predictor.predict_logits(prepared, mirroring=True, half_precision=False)
    assert np.abs(mirrored - both).max() > 1e-3  # 8 flips averaged: a different (smoother) answer
    half = predictor.predict_logits(prepared, mirroring=True)
    assert half.dtype == np.float16 and np.abs(half.astype(np.float32) - mirrored).max() < 0.6


# ---------------------------------------------------------------------------- registry, app path and CLI
def test_registry_lists_each_configuration_with_3d_fullres_as_default(results):
    root, full, flat = results
    assert find_nnunet_models(root) == [flat, full]
    assert find_nnunet_models(full) == [full] and find_nnunet_models(root / DATASET_NAME) == [flat, full]
    registry = ModelRegistry([(root, "extra")])
    assert [p.version for p in registry.versions("dataset042_phantom")] == [flat.name, full.name]
    assert registry.find("dataset042_phantom").folder == full
    assert registry.find("dataset042_phantom:2d").folder == flat
    assert registry.find(f"dataset042_phantom:{flat.name}").folder == flat
    assert [p.folder for p in ModelRegistry([(full, "extra")]).packages] == [full]  # the folder itself added


def test_add_model_folder_then_run_and_apply_as_an_undoable_layer(results, tmp_path):
    from medviewer.core.document import Document
    from medviewer.core.undo import UndoStack
    from medviewer.services.inference import InferenceService, apply_result

    registry = ModelRegistry([(tmp_path / "empty", "user")])
    registry.add_folder(results[0] / DATASET_NAME)  # what AI > Add model folder... does
    service = InferenceService(registry)
    volume = phantom_ct()
    assert [p.name for p in service.models_for("CT")] == ["dataset042_phantom"]
    result = service.run("dataset042_phantom", volume, options=InferenceOptions(device="cpu", mirroring=False))
    assert result.source == "dataset042_phantom nnUNetTrainer__nnUNetPlans__3d_fullres"
    label_map = result.label_map
    assert label_map.geometry == volume.geometry
    assert {v: i.name for v, i in label_map.table.items()} == {1: "liver", 2: "tumour"}
    expected, _ = NnUNetPredictor(results[1]).predict(np.asarray(volume.array)[None],
                                                      tuple(volume.geometry.spacing[::-1]), mirroring=False)
    np.testing.assert_array_equal(np.asarray(label_map.array), expected)
    document, undo = Document(volume), UndoStack()
    apply_result(document, result, undo)
    assert document.label_maps[-1] is label_map
    undo.undo()
    assert label_map not in document.label_maps


def test_infer_cli_runs_an_nnunet_folder_end_to_end(results, tmp_path, capsys):
    from medviewer.io import read_volume, write_volume

    root, full, flat = results
    source = tmp_path / "ct.nii.gz"
    write_volume(phantom_ct(), source)
    out = tmp_path / "out"
    assert main(["infer", "--model-dir", str(full), str(source), "--out", str(out), "--device", "cpu"]) == 0
    written = out / "ct_dataset042_phantom_labels.nii.gz"
    image = sitk.ReadImage(str(written))
    volume = read_volume(source)
    assert geometry_from_sitk(image).is_close(volume.geometry, 1e-5)
    labels = sitk_to_array(image)
    expected, _ = NnUNetPredictor(full).predict(np.asarray(volume.array)[None], tuple(volume.geometry.spacing[::-1]))
    np.testing.assert_array_equal(labels, expected)  # mirroring on by default
    summary = json.loads((out / "ct_dataset042_phantom_labels.json").read_text())
    assert summary["model"] == "dataset042_phantom:nnUNetTrainer__nnUNetPlans__3d_fullres"
    names = json.dumps(summary["labels"])
    assert "liver" in names and "tumour" in names
    counts = summary["voxel_counts"]
    assert sum(counts.values()) == int((labels > 0).sum()) and set(counts) <= {"liver", "tumour"}
    # another configuration of the dataset folder, without mirroring
    out2 = tmp_path / "out2"
    assert main(["infer", "--model-dir", str(root / DATASET_NAME), "--model", "dataset042_phantom:2d", str(source),
                 "--out", str(out2), "--device", "cpu", "--no-mirroring"]) == 0
    flat_labels = sitk_to_array(sitk.ReadImage(str(out2 / "ct_dataset042_phantom_labels.nii.gz")))
    expected_2d, _ = NnUNetPredictor(flat).predict(np.asarray(volume.array)[None], tuple(volume.geometry.spacing[::-1]),
                                                   mirroring=False)
    np.testing.assert_array_equal(flat_labels, expected_2d)
    assert "nnUNetTrainer__nnUNetPlans__2d" in (out2 / "ct_dataset042_phantom_labels.json").read_text()


# ---------------------------------------------------------------------------- nnU-Net's own predictor
@pytest.mark.parametrize("kind", ["3d_fullres", "2d", "regions"])
def test_same_prediction_as_nnunetv2s_own_predictor(results, tmp_path, kind):
    """Voxel for voxel and to 1e-4 in probabilities, with mirroring and (3d_fullres) two folds."""
    try:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    except ImportError:
        pytest.skip("nnunetv2 is not installed: the comparison with nnU-Net's own predictor needs it "
                    "(pip install --no-deps nnunetv2 acvl-utils batchgenerators batchgeneratorsv2 ...)")
    folder = {"3d_fullres": results[1], "2d": results[2]}.get(kind)
    if kind == "regions":
        folder = make_trained_model(tmp_path, regions=True, folds=(0,), seed=11)
    volume = phantom_ct()
    array = np.asarray(volume.array, dtype=np.float32)[None]
    spacing = [float(s) for s in volume.geometry.spacing[::-1]]
    theirs = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                             perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                             allow_tqdm=False)
    theirs.initialize_from_trained_model_folder(str(folder), None, "checkpoint_final.pth")
    their_labels, their_probabilities = theirs.predict_single_npy_array(array, {"spacing": spacing}, None, None, True)
    labels, probabilities = NnUNetPredictor(folder).predict(array, tuple(spacing), probabilities=True)
    assert len(np.unique(labels)) >= 2  # a meaningful comparison: several classes win somewhere
    np.testing.assert_array_equal(labels, their_labels)
    difference = np.abs(probabilities - their_probabilities).max()
    print(f"{kind}: voxel agreement {np.mean(labels == their_labels):.6f}, max probability difference {difference:.2e}")
    assert difference < 1e-4


def test_nibabel_reorienting_plans_see_the_image_in_ras_axes(tmp_path):
    """Plans made with NibabelIOWithReorient were trained on RAS-canonical arrays: the image is turned likewise."""
    from medviewer.core.geometry import Geometry
    from medviewer.core.volume import Volume

    folder = make_trained_model(tmp_path, folds=(0,))
    plans = json.loads((folder / "plans.json").read_text())
    plain = phantom_ct()
    volume = Volume(plain.array, Geometry(plain.geometry.size, plain.geometry.spacing, plain.geometry.origin),
                    modality="CT")  # LPS axes: RAS canonical flips i and j
    spacing = tuple(volume.geometry.spacing[::-1])
    array = np.asarray(volume.array)
    direct, _ = NnUNetPredictor(folder).predict(np.flip(array, (1, 2))[None], spacing, mirroring=False)
    expected = np.flip(direct, (1, 2))
    plans["image_reader_writer"] = "NibabelIOWithReorient"
    (folder / "plans.json").write_text(json.dumps(plans))
    labels = NnUNetPredictor(folder).predict_volume(volume, mirroring=False)
    np.testing.assert_array_equal(labels, expected)
    plain_labels, _ = NnUNetPredictor(folder).predict(array[None], spacing, mirroring=False)
    assert (plain_labels != labels).mean() > 0.01  # the orientation matters to this network
    plans["image_reader_writer"] = "MyOwnIO"
    (folder / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(ModelError, match="'image_reader_writer' is 'MyOwnIO'"):
        NnUNetPredictor(folder).predict_volume(volume)


def test_no_mirroring_trainers_and_cancel(tmp_path):
    """A trainer that allows no mirroring (axes None, e.g. nnUNetTrainerNoMirroring) never flips; cancel stops a run."""
    from medviewer.core.errors import OperationCancelled
    from medviewer.core.jobs import CancelToken

    folder = make_trained_model(tmp_path, folds=(0,), mirror_axes=None)
    predictor = NnUNetPredictor(folder)
    assert predictor.mirror_axes is None
    volume = phantom_ct()
    array, spacing = np.asarray(volume.array)[None], tuple(volume.geometry.spacing[::-1])
    with_tta, _ = predictor.predict(array, spacing, mirroring=True)
    without, _ = predictor.predict(array, spacing, mirroring=False)
    np.testing.assert_array_equal(with_tta, without)
    cancel = CancelToken()
    seen = []

    def progress(fraction, message=""):
        seen.append(fraction)
        if "window 1/" in message:
            cancel.cancel()

    with pytest.raises(OperationCancelled):
        predictor.predict(array, spacing, progress=progress, cancel=cancel)
    assert seen == sorted(seen) and len(seen) >= 2
