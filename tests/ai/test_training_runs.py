"""Retraining (issue 7): fine-tuning on an annotation dataset, packages, checkpoints and resume, errors.

The datasets are tiny synthetic CTs with a bright "ball" and a dark "cyst" saved with
``NnUNetDataset.save_case`` (as the app saves corrected cases); the base models are
tiny UNets with random weights, so only real training makes them good.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from training_helpers import (  # noqa: F401 (isolated_training is a fixture)
    ball_case, base_manifest, isolated_training, make_base_package, make_dataset, read_manifest,
)

from medviewer.ai.pipeline import ModelRunner, load_package
from medviewer.ai.registry import ModelRegistry
from medviewer.ai.training import IGNORE_VALUE, TrainingEvent, TrainingRequest, TrainingSettings
from medviewer.ai.training.checkpoint import checkpoint_path, load_checkpoint
from medviewer.ai.training.data import box_targets, detection_plan, segmentation_plan, split_cases
from medviewer.ai.training.metrics import dice
from medviewer.ai.training.package import choose_version
from medviewer.ai.training.trainer import run_training
from medviewer.core.detection import Detection, DetectionStatus
from medviewer.core.errors import DatasetError, ModelError, OperationCancelled
from medviewer.core.geometry import Geometry
from medviewer.core.jobs import CancelToken
from medviewer.core.paths import user_models_dir
from medviewer.io.nnunet_dataset import NnUNetDataset


@pytest.fixture(autouse=True)
def isolated(isolated_training):
    """Own user folders and one torch thread per test (training_helpers.isolated_training)."""


def quick_settings(**changes) -> TrainingSettings:
    values = dict(epochs=8, iterations_per_epoch=20, patch_size=(16, 16, 16), learning_rate=5e-3, device="cpu",
                  patience=0)
    values.update(changes)
    return TrainingSettings(**values)


def state_of(folder) -> dict[str, torch.Tensor]:
    return torch.load(folder / "weights.pt", weights_only=True)


# ---------------------------------------------------------------------------- the main path
def test_fine_tuning_learns_and_writes_a_package_the_engine_loads_and_runs(tmp_path):
    dataset = make_dataset(tmp_path / "data")
    base_folder = make_base_package(tmp_path / "base")
    events: list[TrainingEvent] = []
    result = run_training(TrainingRequest(dataset.root, base_folder, "tiny-balls", quick_settings()),
                          on_event=events.append)

    # The loss went down and the validation Dice went up a lot (the base has random weights).
    losses = [record.loss for record in result.history]
    assert len(losses) == 8 and losses[-1] < 0.5 * losses[0]
    assert result.before["mean_dice"] < 0.2
    assert result.after["dice"]["ball"] > 0.85 and result.after["dice"]["cyst"] > 0.8
    assert set(result.training_cases).isdisjoint(result.validation_cases)
    assert sorted(result.training_cases + result.validation_cases) == dataset.case_ids()

    # A new version of the same name in the user's models folder, with provenance and a model card.
    assert result.package_folder == user_models_dir() / "tiny-balls" / "1.1.0"
    manifest = read_manifest(result.package_folder)
    provenance = manifest["provenance"]
    assert provenance["parent"] == "tiny-balls:1.0.0"
    metrics = provenance["metrics"]
    assert metrics["training_cases"] == result.training_cases and metrics["validation_cases"] == result.validation_cases
    assert metrics["validation_before"]["mean_dice"] == result.before["mean_dice"]
    assert metrics["validation_after"]["dice"] == result.after["dice"]
    assert metrics["settings"]["patch_size"] == [16, 16, 16] and metrics["dataset"] == "Balls"
    card = (result.package_folder / "MODEL_CARD.md").read_text()
    assert "tiny-balls:1.0.0" in card and "Dice ball" in card and "ball-" in card
    assert f"{result.after['dice']['ball']:.3f}" in card and f"{result.before['dice']['ball']:.3f}" in card

    # The weights really changed, and no checkpoint or temporary folder is left behind.
    base_state, new_state = state_of(base_folder), state_of(result.package_folder)
    assert base_state.keys() == new_state.keys()
    assert any(not torch.equal(base_state[k], new_state[k]) for k in base_state)
    assert not checkpoint_path(user_models_dir() / ".checkpoints" / "tiny-balls").exists()
    assert [p.name for p in (user_models_dir() / "tiny-balls").iterdir()] == ["1.1.0"]

    # The registry lists it as the newest version; the engine runs it on a case it never saw.
    registry = ModelRegistry.default()
    package = registry.find("tiny-balls")
    assert package.version == "1.1.0" and package.origin == "user"
    volume, labels, _ = ball_case(seed=50)
    predicted = ModelRunner(package).run(volume).label_map.array
    assert dice(predicted == 1, labels.array == 1) > 0.85
    assert dice(predicted == 2, labels.array == 2) > 0.8

    # The GUI's curve gets a starting point and one point per epoch; before/after come as events.
    epochs = [e.epoch for e in events if e.kind == "epoch"]
    assert epochs == list(range(0, 9))
    assert any(e.kind == "iteration" and e.loss is not None for e in events)
    evaluations = [e for e in events if e.kind == "evaluation"]
    assert evaluations[-1].validation["after"]["mean_dice"] == result.after["mean_dice"]


def test_resume_continues_at_the_next_epoch_and_matches_an_uninterrupted_run(tmp_path):
    dataset = make_dataset(tmp_path / "data", seeds=range(4))
    base_folder = make_base_package(tmp_path / "base")
    settings = quick_settings(epochs=3, iterations_per_epoch=6)
    straight = run_training(TrainingRequest(dataset.root, base_folder, "straight", settings))

    cancel = CancelToken()

    def stop_after_second_epoch(event: TrainingEvent) -> None:
        if event.kind == "epoch" and event.epoch == 2:
            cancel.cancel()

    with pytest.raises(OperationCancelled):
        run_training(TrainingRequest(dataset.root, base_folder, "resumed", settings), cancel=cancel,
                     on_event=stop_after_second_epoch)
    checkpoint_folder = user_models_dir() / ".checkpoints" / "resumed"
    assert load_checkpoint(checkpoint_folder)["info"]["epoch"] == 2
    assert not (user_models_dir() / "resumed").exists()  # no package, not even a partial one

    events: list[TrainingEvent] = []
    resumed = run_training(TrainingRequest(dataset.root, base_folder, "resumed", settings, resume=True),
                           on_event=events.append)
    assert [e.epoch for e in events if e.kind == "epoch"] == [3]  # only the missing epoch was trained
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    assert resumed.before["dice"] == straight.before["dice"]
    assert [r.loss for r in resumed.history] == [r.loss for r in straight.history]
    a, b = state_of(straight.package_folder), state_of(resumed.package_folder)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not checkpoint_path(checkpoint_folder).exists()


def test_time_budget_and_early_stopping(tmp_path):
    dataset = make_dataset(tmp_path / "data", seeds=range(3))
    base_folder = make_base_package(tmp_path / "base")
    timed = run_training(TrainingRequest(dataset.root, base_folder, "timed",
                                         quick_settings(epochs=1000, minutes=0.03, iterations_per_epoch=4)))
    assert timed.stopped_because.startswith("time budget") and 1 <= len(timed.history) < 1000
    # A learning rate too small to change anything: no epoch beats the base, training stops early.
    stalled = run_training(TrainingRequest(dataset.root, base_folder, "stalled",
                                           quick_settings(epochs=20, iterations_per_epoch=2, learning_rate=1e-12,
                                                          patience=2)))
    assert stalled.stopped_because.startswith("early stopping") and len(stalled.history) == 2
    assert any("no epoch beat the base model" in w for w in stalled.warnings)


def test_detection_fine_tuning_from_corrected_boxes(tmp_path):
    dataset = make_dataset(tmp_path / "data", with_boxes=True)
    base_folder = make_base_package(tmp_path / "base", task="detection", name="tiny-det")
    result = run_training(TrainingRequest(dataset.root, base_folder, "tiny-det-ft",
                                          quick_settings(epochs=12, learning_rate=1e-2)))
    assert result.task == "detection"
    assert result.after["boxes"] == len(result.validation_cases)  # one accepted box (the ball) per case
    assert result.after["sensitivity"] == 1.0 and result.after["false_positives_per_scan"] == 0.0
    assert (result.before["sensitivity"], -result.before["false_positives_per_scan"]) < (1.0, 0.0)
    # The rejected box (the cyst) is not found by the new model on a case it never saw.
    volume, _, boxes = ball_case(seed=60)
    ball, cyst = boxes
    found = ModelRunner(load_package(result.package_folder)).run(volume).detections
    centres = [volume.geometry.world_to_index(d.center) for d in found]
    inside = [lambda c, b=b: np.all((c >= b.index_bounds(volume.geometry)[0]) & (c <= b.index_bounds(volume.geometry)[1]))
              for b in (ball, cyst)]
    assert sum(inside[0](c) for c in centres) == 1 and sum(inside[1](c) for c in centres) == 0
    metrics = read_manifest(result.package_folder)["provenance"]["metrics"]
    assert metrics["validation_after"]["sensitivity"] == 1.0 and "false_positives_per_scan" in metrics["validation_before"]


def test_training_from_scratch_predicts_the_dataset_labels(tmp_path):
    dataset = make_dataset(tmp_path / "data")
    liver_base = make_base_package(tmp_path / "base", name="tiny-liver", labels=("liver",))
    result = run_training(TrainingRequest(dataset.root, liver_base, "balls-from-scratch",
                                          quick_settings(epochs=6, learning_rate=None), from_scratch=True))
    manifest = read_manifest(result.package_folder)
    assert [(l["value"], l["name"]) for l in manifest["outputs"]["labels"]] == [(1, "ball"), (2, "cyst")]
    assert manifest["runtime"]["arguments"]["out_channels"] == 3 and manifest["provenance"]["metrics"]["from_scratch"]
    assert result.before["dice"] == {"ball": 0.0, "cyst": 0.0}  # the base predicts neither
    assert result.after["dice"]["ball"] > 0.8 and result.after["dice"]["cyst"] > 0.7


# ---------------------------------------------------------------------------- pieces
def test_labels_are_matched_by_name_and_unknown_ones_are_left_out():
    plan = segmentation_plan({"background": 0, "Ball": 1, "tumour": 2}, base_manifest())
    assert plan.dataset_to_class == {1: 1, 2: IGNORE_VALUE}
    assert plan.ignored == ["tumour"] and plan.missing == ["cyst"]
    assert plan.lookup(3).tolist() == [0, 1, IGNORE_VALUE, IGNORE_VALUE]
    assert any("'tumour'" in w for w in plan.warnings()) and any("'cyst'" in w for w in plan.warnings())


def test_box_targets_inscribe_ellipsoids_and_keep_rejected_and_unreviewed_apart():
    geometry = Geometry((30, 30, 30), (1.0, 2.0, 1.0), (0.0, 0.0, 0.0))
    plan = detection_plan(type("M", (), {"outputs": type("O", (), {"classes": ("nodule",)})()})())

    def box(centre, status):
        return Detection.from_index_bounds(geometry, np.asarray(centre) - 3.5, np.asarray(centre) + 3.5,
                                           label="nodule", status=status)

    detections = [box((8, 8, 8), DetectionStatus.ACCEPTED), box((20, 20, 8), DetectionStatus.REJECTED),
                  box((8, 20, 20), DetectionStatus.PROPOSED)]
    target, negatives, notes = box_targets(detections, geometry, plan)
    # Voxels whose offsets from the centre (in voxels) satisfy dx^2 + dy^2 + dz^2 <= 3.5^2.
    expected = sum(1 for dx in range(-3, 4) for dy in range(-3, 4) for dz in range(-3, 4) if dx * dx + dy * dy + dz * dz <= 12.25)
    assert np.count_nonzero(target == 1) == expected
    assert target[8, 8, 8] == 1 and target[8, 8, 12] == 0  # (z, y, x): 4 voxels away in x is outside
    assert np.count_nonzero(negatives) == expected and negatives[8, 20, 20] and target[8, 20, 20] == 0
    assert np.count_nonzero(target == IGNORE_VALUE) == expected and target[20, 20, 8] == IGNORE_VALUE
    assert notes == []


def test_validation_split_is_fixed_and_disjoint():
    cases = [f"case-{n}" for n in range(10)]
    training, validation, notes = split_cases(cases, 0.2)
    assert len(validation) == 2 and set(training) | set(validation) == set(cases) and not notes
    assert split_cases(list(reversed(cases)), 0.2)[1] == validation  # order does not matter
    assert split_cases(cases, 0.2, ["case-3"])[1] == ["case-3"]
    single = split_cases(["only"], 0.2)
    assert single[0] == single[1] == ["only"] and "optimistic" in single[2][0]
    with pytest.raises(DatasetError, match="no cases"):
        split_cases([], 0.2)
    with pytest.raises(DatasetError, match="case-99"):
        split_cases(cases, 0.2, ["case-99"])


def test_versions_follow_the_parent(tmp_path):
    registry = ModelRegistry([])
    base = load_package(make_base_package(tmp_path / "base")).manifest
    assert choose_version("tiny-balls", base, registry, tmp_path / "models") == "1.1.0"
    assert choose_version("other-name", base, registry, tmp_path / "models") == "1.0.0"
    (tmp_path / "models" / "tiny-balls" / "1.1.0").mkdir(parents=True)
    assert choose_version("tiny-balls", base, registry, tmp_path / "models") == "1.2.0"


# ---------------------------------------------------------------------------- errors a user can cause
def _request(dataset, base, name="new-model", epochs=1, **changes):
    return TrainingRequest(dataset, base, name, quick_settings(epochs=epochs, iterations_per_epoch=1), **changes)


def test_label_with_wrong_geometry_names_the_case(tmp_path):
    dataset = make_dataset(tmp_path / "data", seeds=range(3))
    label_path = dataset.root / "labelsTr" / "ball-1.nii.gz"
    image = sitk.ReadImage(str(label_path))
    image.SetSpacing((2.0, 2.0, 2.5))
    sitk.WriteImage(image, str(label_path))
    with pytest.raises(DatasetError, match=r"case ball-1: the label does not match its image: spacing"):
        run_training(_request(dataset.root, make_base_package(tmp_path / "base")))
    assert not (user_models_dir() / "new-model").exists()


@pytest.mark.parametrize("folder, case, message", [
    ("labelsTr", "ball-2", r"case ball-2: labelsTr/ball-2.nii.gz is missing"),
    ("imagesTr", "ball-0", r"labelsTr/ball-0.nii.gz has no image"),
])
def test_missing_files_name_the_case(tmp_path, folder, case, message):
    dataset = make_dataset(tmp_path / "data", seeds=range(3))
    suffix = "_0000.nii.gz" if folder == "imagesTr" else ".nii.gz"
    (dataset.root / folder / f"{case}{suffix}").unlink()
    with pytest.raises(DatasetError, match=message):
        run_training(_request(dataset.root, make_base_package(tmp_path / "base")))


def test_empty_dataset_and_unmatched_labels(tmp_path):
    empty = NnUNetDataset.create_or_open(tmp_path / "data", 902, "Empty", "CT")
    base = make_base_package(tmp_path / "base")
    with pytest.raises(DatasetError, match="no cases"):
        run_training(_request(empty.root, base))
    dataset = make_dataset(tmp_path / "data", seeds=range(2))
    other = make_base_package(tmp_path / "liver", name="tiny-liver", labels=("liver",))
    with pytest.raises(DatasetError, match=r"none of the dataset's labels \(ball, cyst\) is an output of tiny-liver:1.0.0"):
        run_training(_request(dataset.root, other))
    with pytest.raises(DatasetError, match="not an nnU-Net dataset"):
        run_training(_request(tmp_path, base))


def test_base_models_that_cannot_be_retrained(tmp_path, package_factory):
    dataset = make_dataset(tmp_path / "data", seeds=range(2))
    classifier = package_factory("classification")
    with pytest.raises(ModelError, match="is a classification model; only segmentation and detection"):
        run_training(_request(dataset.root, classifier.folder))
    torchscript = package_factory("segmentation")
    with pytest.raises(ModelError, match="only packages with a built-in architecture"):
        run_training(_request(dataset.root, torchscript.folder))
    with pytest.raises(ModelError, match="no model named 'no-such-model'"):
        run_training(_request(dataset.root, "no-such-model"))
    base = make_base_package(tmp_path / "base")
    with pytest.raises(ModelError, match="must start with a lower-case letter"):
        run_training(_request(dataset.root, base, name="My Model"))
    with pytest.raises(ModelError, match="no training checkpoint to resume from"):
        run_training(_request(dataset.root, base, resume=True))


def test_checkpoint_of_another_run_is_refused(tmp_path):
    dataset = make_dataset(tmp_path / "data", seeds=range(3))
    base = make_base_package(tmp_path / "base")
    cancel = CancelToken()
    with pytest.raises(OperationCancelled):
        run_training(_request(dataset.root, base, name="half", epochs=2), cancel=cancel,
                     on_event=lambda e: cancel.cancel() if e.kind == "epoch" and e.epoch == 1 else None)
    other_base = make_base_package(tmp_path / "other", name="other-base")
    with pytest.raises(ModelError, match="belongs to another run"):
        run_training(_request(dataset.root, other_base, name="half", resume=True))
    info = json.loads(json.dumps(load_checkpoint(user_models_dir() / ".checkpoints" / "half")["info"]))
    assert info["epoch"] == 1 and info["base"] == "tiny-balls:1.0.0"
