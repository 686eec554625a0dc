"""Tasks are an enum with one hooks table; the progress count is MONAI's own window count."""

import json
import time
from dataclasses import fields

import numpy as np
import pytest
import torch
from conftest import manifest_for, write_package
from monai.inferers import sliding_window_inference

from medviewer.ai.manifest import TASKS, ModelManifest, load_manifest
from medviewer.ai.pipeline import ModelRunner, count_window_batches, fit_roi_to_image, load_package
from medviewer.ai.results import InferenceResult
from medviewer.ai.runtime import TorchPredictor
from medviewer.ai.tasks import TASK_HOOKS, Task, TaskHooks, task_hooks, trainable_tasks
from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume


def test_the_hooks_table_covers_every_task():
    assert set(TASK_HOOKS) == set(Task)
    for task in Task:
        hooks = TASK_HOOKS[task]
        assert isinstance(hooks, TaskHooks) and hooks.title
        for field in fields(TaskHooks):
            value = getattr(hooks, field.name)
            assert value is not None, (task, field.name)
            if field.type.startswith(("Callable", "Finisher", "Writer")):
                assert callable(value), (task, field.name)
    assert TASKS == tuple(t.value for t in Task)
    assert trainable_tasks() == (Task.SEGMENTATION, Task.DETECTION)


@pytest.mark.parametrize("task", list(Task))
def test_every_task_reads_and_writes_its_outputs(task, tmp_path):
    """A manifest of each task loads with a Task, and its outputs survive a write and re-read."""
    (tmp_path / "model.json").write_text(json.dumps(manifest_for(task.value)))
    manifest = load_manifest(tmp_path)
    assert manifest.task is task and task_hooks(task.value) is TASK_HOOKS[task]
    data = manifest.to_dict()
    assert json.loads(json.dumps(data))["task"] == task.value
    assert ModelManifest.from_dict(data) == manifest
    assert manifest.derive(task=task.value).task is task  # a manifest built in code may pass the value


def test_results_and_packages_carry_the_enum():
    assert InferenceResult("m", "1", "detection").task is Task.DETECTION
    assert Task.SEGMENTATION == "segmentation" and f"{Task.ENHANCEMENT}" == "enhancement"
    with pytest.raises(ValueError):
        Task("segmentaton")


def _monai_predictor_calls(shape, roi, overlap, batch_size):
    calls = []

    def predictor(window_batch):
        calls.append(window_batch.shape[0])
        return window_batch

    sliding_window_inference(torch.zeros(1, 1, *shape), roi, batch_size, predictor, overlap=overlap)
    return calls


CASES = [
    ((20, 36, 40), (16, 16, 16), 0.25, 1),
    ((20, 36, 40), (16, 16, 16), 0.25, 2),
    ((8, 8, 8), (16, 16, 16), 0.5, 1),  # smaller than the patch: padded, one window
    ((33, 16, 70), (16, 16, 32), 0.5, 3),
    ((17, 40, 41), (16, 32, 32), 0.0, 4),
    ((64, 50, 90), (32, 48, 48), 0.75, 5),  # many windows, last batch partial
    ((5, 100, 7), (4, 16, 8), 0.6, 7),
]


_RANDOM = np.random.default_rng(12)
CASES += [
    (tuple(int(v) for v in _RANDOM.integers(3, 41, 3)), tuple(int(v) for v in _RANDOM.integers(2, 25, 3)),
     float(_RANDOM.choice([0.0, 0.1, 0.25, 0.5, 0.6, 0.75, 0.9])), int(_RANDOM.integers(1, 7)))
    for _ in range(30)
]


@pytest.mark.parametrize("shape, roi, overlap, batch_size", CASES)
def test_window_batches_equal_monais_predictor_calls(shape, roi, overlap, batch_size):
    calls = _monai_predictor_calls(shape, roi, overlap, batch_size)
    assert count_window_batches(shape, roi, overlap, batch_size) == len(calls)


def test_counting_the_windows_of_a_large_ct_is_quick():
    started = time.perf_counter()
    assert count_window_batches((300, 512, 512), (16, 16, 16), 0.25, 2) == 23113  # 25 x 43 x 43 windows, 2 per call
    assert time.perf_counter() - started < 2.0  # running the whole grid (even on a meta tensor) took 10 s


class CountingPredictor(TorchPredictor):
    def __init__(self, module):
        super().__init__(module)
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        return super().__call__(batch)


@pytest.mark.parametrize("shape, patch, overlap, batch_size", [
    ((20, 36, 40), (16, 16, 16), 0.25, 2),
    ((9, 30, 50), (32, 16, 16), 0.5, 3),  # patch (x, y, z) larger than the image along z: shrunk
    ((24, 24, 24), (16, 16, 16), 0.0, 1),
])
def test_the_progress_count_is_the_number_of_network_calls(tmp_path, shape, patch, overlap, batch_size):
    package = load_package(write_package(tmp_path / "seg", name="bright",
                                         inference={"patch_size": list(patch), "overlap": overlap,
                                                    "batch_size": batch_size}))
    predictor = CountingPredictor(ModelRunner(package).predictor.module)
    array = np.zeros(shape, np.int16)
    array[2:6, 3:9, 4:12] = 900
    reports = []
    ModelRunner(package, predictor).run(Volume(array, Geometry(shape[::-1], (1.0, 1.0, 1.0)), modality="CT"),
                                        progress=lambda f, m="": reports.append(m))
    batches = [m for m in reports if "window batch" in m]
    assert len(batches) == predictor.calls
    assert batches[-1].endswith(f"window batch {predictor.calls}/{predictor.calls}")
    roi = fit_roi_to_image(patch[::-1], shape)
    assert predictor.calls == len(_monai_predictor_calls(shape, roi, overlap, batch_size))
