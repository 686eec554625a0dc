"""The retraining use case as a Qt-free job: events for the curves, registry refresh, cancel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "ai"))
from training_helpers import isolated_training, make_base_package, make_dataset  # noqa: E402, F401 (fixture)

from medviewer.ai.registry import ModelRegistry  # noqa: E402
from medviewer.ai.training.checkpoint import load_checkpoint  # noqa: E402
from medviewer.core.errors import OperationCancelled  # noqa: E402
from medviewer.core.jobs import CancelToken  # noqa: E402
from medviewer.core.paths import datasets_dir, user_models_dir  # noqa: E402
from medviewer.services.training import (  # noqa: E402
    TrainingJob,
    TrainingRequest,
    TrainingSettings,
    known_datasets,
    trainable_models,
)


@pytest.fixture(autouse=True)
def isolated(isolated_training):
    """Own user folders and one torch thread per test (training_helpers.isolated_training)."""


def settings(**changes) -> TrainingSettings:
    values = dict(epochs=3, iterations_per_epoch=4, patch_size=(16, 16, 16), learning_rate=5e-3, device="cpu")
    return TrainingSettings(**{**values, **changes})


def test_job_reports_progress_and_events_and_the_registry_lists_the_new_model(tmp_path):
    dataset = make_dataset(tmp_path / "data", seeds=range(3))
    registry = ModelRegistry([(tmp_path / "models", "extra"), (user_models_dir(), "user")])
    base = make_base_package(tmp_path / "models" / "tiny-balls")
    registry.refresh()
    assert [p.ref for p in trainable_models(registry)] == ["tiny-balls:1.0.0"]
    fractions: list[float] = []
    job = TrainingJob(TrainingRequest(dataset.root, "tiny-balls", "tiny-balls", settings()), registry=registry)
    result = job(lambda fraction, message="": fractions.append(fraction), CancelToken())
    assert result.ref == "tiny-balls:1.1.0" and result.package_folder.parent.parent == user_models_dir()
    assert [p.version for p in registry.versions("tiny-balls")] == ["1.0.0", "1.1.0"]  # refreshed by the job
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    epochs = [e for e in job.events if e.kind == "epoch"]
    assert [e.epoch for e in epochs] == [0, 1, 2, 3] and all(e.score is not None for e in epochs)
    assert all(e.loss is not None and e.seconds > 0 for e in epochs[1:])
    assert set(epochs[-1].validation) == {"ball", "cyst"}
    assert base.is_dir()


def test_cancelled_job_keeps_the_checkpoint_and_writes_no_package(tmp_path):
    dataset = make_dataset(tmp_path / "data", seeds=range(3))
    base = make_base_package(tmp_path / "base")
    cancel = CancelToken()
    job = TrainingJob(TrainingRequest(dataset.root, base, "cancelled", settings(epochs=50)),
                      on_event=lambda e: cancel.cancel() if e.kind == "epoch" and e.epoch == 1 else None)
    with pytest.raises(OperationCancelled):
        job(lambda fraction, message="": None, cancel)
    assert load_checkpoint(user_models_dir() / ".checkpoints" / "cancelled")["info"]["epoch"] == 1
    assert not (user_models_dir() / "cancelled").exists()
    assert "cancelled" not in ModelRegistry.default().names()


def test_known_datasets_lists_the_default_folder():
    dataset = make_dataset(datasets_dir(), seeds=range(1), dataset_id=903, name="Listed")
    assert dataset.root in known_datasets()
