"""The demo-model scripts train, evaluate and package through ai/training, on tiny phantoms and patches.

Full training takes about 45 CPU minutes (``make demo-models``); here each script runs
a few iterations on a coarse phantom grid with small patches, through the same
``main`` and the same sampler, augmentation, losses, schedule and metrics. The
numbers are meaningless, the path is not: a package that the registry loads and the
pipeline runs, weights that moved, metrics and a model card written from them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medviewer.ai.architectures import build_architecture
from medviewer.ai.demo_models import common, denoise, lung_seg, nodule_det
from medviewer.ai.pipeline import ModelRunner, load_package
from medviewer.ai.training import augment, metrics, sampling
from medviewer.ai.training.loop import learning_rate_factor, schedule_position

TINY_ARGS = ["--iterations", "3", "--minutes", "0", "--train-cases", "1", "--held-out", "1", "--batch", "2"]


@pytest.fixture
def tiny_grid(monkeypatch):
    """Coarse phantoms (the demo patient's extent at about 4 x 4 x 6 mm) and small patches."""
    monkeypatch.setattr(common, "DEMO_SHAPE", (48, 96, 96))
    monkeypatch.setattr(common, "DEMO_SPACING", (3.7, 3.7, 6.2))
    monkeypatch.setattr(lung_seg, "TRAIN_PATCH", (32, 32, 32))
    monkeypatch.setattr(nodule_det, "TRAIN_PATCH", (32, 32, 32))
    monkeypatch.setattr(denoise, "CROP", (12, 48, 48))
    monkeypatch.setattr(denoise, "CROPS_PER_CASE", 2)
    monkeypatch.setattr(denoise, "TRAIN_PATCH", (8, 32, 32))


def initial_weights(script) -> dict[str, torch.Tensor]:
    common.set_seeds(script.SEED, common.threads_from_env())
    return build_architecture(script.MODEL.architecture, script.MODEL.arguments).state_dict()


@pytest.mark.parametrize("script", [lung_seg, nodule_det, denoise], ids=lambda s: s.NAME)
def test_a_tiny_demo_training_run_writes_a_package_the_pipeline_runs(script, tiny_grid, tmp_path):
    out = tmp_path / script.NAME
    assert script.main([*TINY_ARGS, "--out", str(out)]) == 0

    package = load_package(out)
    manifest = json.loads((out / "model.json").read_text(encoding="utf-8"))
    recorded = manifest["provenance"]["metrics"]
    assert recorded["training_iterations"] == recorded["training_iterations_requested"] == 3
    assert np.isfinite(recorded["final_training_loss"]) and recorded["final_training_loss"] > 0
    assert recorded["held_out_seeds"] == [9000]
    assert recorded["training_toolkit"] == "medviewer.ai.training"
    assert manifest["provenance"]["training_command"] == f"python -m medviewer.ai.demo_models.{script.__name__.rsplit('.', 1)[1]}"
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert card.startswith(f"# ") and f"{script.NAME} {script.VERSION}" in card and "3 iterations" in card
    assert "Trained with `medviewer.ai.training`" in card

    # Training moved the weights away from the seeded initialisation.
    trained = torch.load(out / "weights.pt", weights_only=True)
    start = initial_weights(script)
    assert trained.keys() == start.keys()
    assert any(not torch.equal(trained[k], start[k]) for k in start if start[k].is_floating_point())

    # The package runs on a phantom the way the app runs it.
    case = common.generate_case(9001)
    result = ModelRunner(package).run(case.volume)
    if script is lung_seg:
        assert result.label_map.array.shape == case.labels.array.shape
        for name, value in recorded["dice_mean"].items():
            assert value is None or 0.0 <= value <= 1.0, name
    elif script is nodule_det:
        assert set(recorded["froc_sensitivity"]) == {"0.125 FP/scan", "0.25 FP/scan", "0.5 FP/scan", "1 FP/scan",
                                                     "2 FP/scan", "4 FP/scan", "8 FP/scan"}
        assert recorded["held_out_nodules"] == len(common.generate_case(9000).nodule_records())
    else:
        assert result.volume.array.shape == case.volume.array.shape
        assert set(recorded["rmse_hu_in_body"]) == {"normal dose", "quarter dose"}


def test_evaluate_only_keeps_the_weights_and_the_training_record(tiny_grid, tmp_path):
    out = tmp_path / "lung"
    assert lung_seg.main([*TINY_ARGS, "--out", str(out)]) == 0
    weights = (out / "weights.pt").read_bytes()
    before = json.loads((out / "model.json").read_text(encoding="utf-8"))["provenance"]
    assert lung_seg.main(["--evaluate-only", "--held-out", "1", "--out", str(out)]) == 0
    after = json.loads((out / "model.json").read_text(encoding="utf-8"))["provenance"]
    assert (out / "weights.pt").read_bytes() == weights
    assert after["metrics"] == before["metrics"]  # same weights, same phantoms, same metrics: deterministic
    assert after["created"] == before["created"]

    # The package is re-scored as shipped: its own manifest, even where it differs from the script's.
    manifest = json.loads((out / "model.json").read_text(encoding="utf-8"))
    manifest["inference"]["overlap"] = 0.5
    (out / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert lung_seg.main(["--evaluate-only", "--held-out", "1", "--out", str(out)]) == 0
    rescored = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert rescored["inference"]["overlap"] == 0.5 and rescored["runtime"] == manifest["runtime"]
    assert (out / "weights.pt").read_bytes() == weights


def test_demo_models_and_fine_tuning_share_one_dice():
    # Two empty masks have no Dice (not 1.0): the structure says nothing about the model.
    empty = np.zeros((4, 4, 4), bool)
    assert metrics.dice(empty, empty) is None
    half = empty.copy()
    half[:2] = True
    assert metrics.dice(half, empty) == 0.0 and metrics.dice(half, half) == 1.0
    # The demo scripts have no toolkit of their own any more.
    assert not hasattr(common, "dice") and not hasattr(common, "train_loop") and not hasattr(common, "froc_points")
    assert common.PatchSampler is sampling.PatchSampler and common.random_flips is augment.random_flips
    assert metrics.mean_scores([{"airway": None}, {"airway": 0.5}]) == {"airway": 0.5}


def test_froc_counts_each_nodule_once_and_every_miss_as_a_false_positive():
    nodule = {"center": [0.0, 0.0, 0.0], "diameter_mm": 10.0}
    hit, near_miss, far = np.array([4.0, 0, 0]), np.array([6.0, 0, 0]), np.array([50.0, 0, 0])
    assert metrics.centre_hits(hit, nodule) and not metrics.centre_hits(near_miss, nodule)
    assert metrics.centre_hits([2.9, 0, 0], {"center": [0, 0, 0], "diameter_mm": 2.0})  # at least 3 mm
    per_scan = [([(0.9, hit), (0.8, hit), (0.7, far)], [nodule]), ([(0.6, far)], [dict(nodule, center=[99, 0, 0])])]
    curve = metrics.froc_points(per_scan, fp_rates=(0.0, 0.5, 1.0))
    assert curve == {0.0: 0.5, 0.5: 0.5, 1.0: 0.5}
    assert metrics.masked_rmse(np.array([1.0, 3.0, 100.0]), np.array([0.0, 0.0, 0.0]), np.array([True, True, False])) \
        == pytest.approx(np.sqrt(5.0))


def test_fine_tuning_and_demo_training_follow_one_schedule():
    assert learning_rate_factor(0.0) == 1.0 and learning_rate_factor(1.0) == pytest.approx(0.05)
    assert learning_rate_factor(0.5) == pytest.approx(0.525)
    assert schedule_position(10, 100, 0.0, None) == 0.1
    assert schedule_position(10, 100, 30.0, 60.0) == 0.5  # the time budget is further along
