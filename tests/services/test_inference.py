"""Running a model through the service and applying its result to a document as one undo step."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.registry import ModelRegistry
from medviewer.core.detection import Detection, DetectionStatus
from medviewer.core.document import Document
from medviewer.core.geometry import Geometry
from medviewer.core.jobs import CancelToken
from medviewer.core.undo import UndoStack
from medviewer.core.volume import Volume
from medviewer.services.inference import InferenceService, apply_result, run_inference

# The deterministic test networks of the AI engine tests ("label the bright voxels").
_spec = importlib.util.spec_from_file_location("ai_test_models", Path(__file__).parents[1] / "ai" / "conftest.py")
ai_test_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ai_test_models)


@pytest.fixture
def registry(tmp_path):
    ai_test_models.write_package(tmp_path / "seg-1", "segmentation", name="bright", version="1.0.0")
    ai_test_models.write_package(tmp_path / "seg-2", "segmentation", name="bright", version="1.1.0")
    ai_test_models.write_package(tmp_path / "det", "detection", name="blobs")
    return ModelRegistry([(tmp_path, "extra")])


def ball_volume() -> Volume:
    geometry = Geometry((24, 20, 16), (1.0, 1.2, 2.0), (-5.0, 3.0, 7.0))
    k, j, i = np.indices(geometry.shape)
    array = np.where((i - 10) ** 2 + (j - 9) ** 2 + (k - 7) ** 2 < 16, 800, 0).astype(np.int16)
    return Volume(array, geometry, modality="CT")


def test_run_by_name_and_version(registry):
    volume = ball_volume()
    newest = run_inference("bright", volume, registry=registry)
    older = run_inference("bright:1.0.0", volume, registry=registry)
    assert newest.label_map.source == "bright 1.1.0" and older.label_map.source == "bright 1.0.0"
    np.testing.assert_array_equal(newest.label_map.array, (volume.array > 500).astype(np.uint8))


def test_service_keeps_networks_loaded_and_makes_jobs(registry):
    service = InferenceService(registry, keep_loaded=1)
    runner = service.runner("bright")
    assert service.runner("bright:1.1.0") is runner
    reports = []
    result = service.job("bright", ball_volume())(lambda f, m="": reports.append(f), CancelToken())
    assert result.label_map is not None and reports[-1] == 1.0
    service.runner("blobs")  # evicts the segmentation network (keep_loaded=1)
    assert service.runner("bright") is not runner
    assert [p.name for p in service.models_for("CT")] == ["blobs", "bright"]
    assert service.models_for("MR") == []


def test_segmentation_is_one_undo_step_and_can_replace_the_previous_result(registry):
    volume = ball_volume()
    document = Document(volume)
    undo = UndoStack()
    first = apply_result(document, run_inference("bright:1.0.0", volume, registry=registry), undo)
    assert document.label_maps == [first.label_map] and document.active_label_map is first.label_map
    second = apply_result(document, run_inference("bright", volume, registry=registry), undo, replace_previous=True)
    assert second.replaced is first.label_map
    assert document.label_maps == [second.label_map]
    third = apply_result(document, run_inference("bright", volume, registry=registry), undo, replace_previous=False)
    assert document.label_maps == [second.label_map, third.label_map]
    assert undo.count == 3
    undo.undo()
    assert document.label_maps == [second.label_map]
    undo.undo()
    assert document.label_maps == [first.label_map]
    undo.undo()
    assert document.label_maps == []
    undo.redo()
    assert document.label_maps == [first.label_map]


def test_detections_replace_only_the_models_own_proposals(registry):
    volume = ball_volume()
    document = Document(volume)
    manual = Detection((0, 0, 0), (5, 5, 5), source="manual")
    document.set_detections([manual])
    undo = UndoStack()
    first = apply_result(document, run_inference("blobs", volume, registry=registry), undo)
    assert len(first.detections) == 1 and document.detections == [manual, *first.detections]
    first.detections[0].status = DetectionStatus.ACCEPTED  # the user accepted the first box
    second = apply_result(document, run_inference("blobs", volume, registry=registry), undo, replace_previous=True)
    assert second.removed_detections == []  # accepted boxes are kept
    third = apply_result(document, run_inference("blobs", volume, registry=registry), undo, replace_previous=True)
    assert third.removed_detections == second.detections
    assert document.detections == [manual, first.detections[0], *third.detections]
    box = third.detections[0]
    centre = volume.geometry.index_to_world((10, 9, 7))
    assert np.linalg.norm(np.asarray(box.center) - centre) < 0.6 and box.source == "blobs 1.0.0"
    undo.undo()
    assert document.detections == [manual, first.detections[0], *second.detections]
    undo.undo()
    undo.undo()
    assert document.detections == [manual]


class _NaNDetector(ai_test_models.nn.Module):
    def forward(self, x):
        return x * float("nan")


class _TupleSegmenter(ai_test_models.nn.Module):
    def forward(self, x):
        return (ai_test_models.torch.cat([x, x], dim=1) * 0.0, x)


@pytest.mark.parametrize("task, network, piece", [
    ("segmentation", _TupleSegmenter, "returned a tuple of 2 values"),
    ("detection", _NaNDetector, "returned NaN values"),
])
def test_a_bad_model_output_is_a_message_and_nothing_is_applied(tmp_path, task, network, piece):
    """What the AI panel does: run the job, apply its result; a model error must leave the study untouched."""
    from medviewer.core.errors import ModelError

    ai_test_models.write_package(tmp_path / "bad", task, name="badnet", network=network())
    service = InferenceService(ModelRegistry([(tmp_path, "extra")]))
    volume = ball_volume()
    document = Document(volume)
    manual = Detection((0, 0, 0), (5, 5, 5), source="manual")
    document.set_detections([manual])
    undo = UndoStack()
    message = None
    try:
        result = service.job("badnet", volume)(lambda f, m="": None, CancelToken())
        apply_result(document, result, undo)
    except ModelError as error:
        message = str(error)
    assert message is not None and "model badnet:1.0.0" in message and piece in message
    assert document.label_maps == [] and document.detections == [manual]
    assert undo.count == 0
