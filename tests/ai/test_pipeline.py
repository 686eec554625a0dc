"""The inference pipeline end to end with deterministic networks on small synthetic images."""

import threading
import time

import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference
from scipy.spatial.transform import Rotation

from medviewer.ai import devices
from medviewer.ai.pipeline import InferenceOptions, ModelRunner, count_windows, fit_roi_to_image, run_model
from medviewer.ai.runtime import TorchPredictor
from medviewer.core.errors import ModelError, OperationCancelled
from medviewer.core.geometry import Geometry
from medviewer.core.jobs import CancelToken
from medviewer.core.volume import Volume

CENTRE_INDEX = (20, 18, 10)
RADIUS_MM = 8.0


def oblique_sphere(value: int = 900) -> tuple[Volume, np.ndarray, np.ndarray]:
    """An oblique, anisotropic CT-like image of a bright ball; returns (volume, ball centre in world, distance map)."""
    direction = Rotation.from_euler("xyz", [20, -15, 30], degrees=True).as_matrix()
    geometry = Geometry.from_matrix((40, 36, 20), (0.8, 1.1, 2.5), (10.0, -20.0, 30.0), direction)
    k, j, i = np.indices(geometry.shape)
    world = geometry.index_to_world(np.stack([i, j, k], axis=-1).reshape(-1, 3)).reshape(*geometry.shape, 3)
    centre = geometry.index_to_world(CENTRE_INDEX)
    distance = np.linalg.norm(world - centre, axis=-1)
    array = np.where(distance < RADIUS_MM, value, 0).astype(np.int16)
    return Volume(array, geometry, modality="CT"), centre, distance


@pytest.mark.parametrize(
    "shape, roi, overlap", [((20, 36, 40), (16, 16, 16), 0.25), ((8, 8, 8), (16, 16, 16), 0.5), ((33, 16, 70), (16, 16, 32), 0.5)]
)
def test_count_windows_matches_monai(shape, roi, overlap):
    calls = []

    def predictor(window):
        calls.append(window.shape[0])
        return window

    sliding_window_inference(torch.zeros(1, 1, *shape), roi, 1, predictor, overlap=overlap)
    assert count_windows(shape, roi, overlap) == len(calls)


def test_segmentation_on_the_input_grid_is_exact(package_factory):
    volume, _, distance = oblique_sphere()
    result = run_model(package_factory("segmentation"), volume)
    labels = result.label_map
    assert labels.geometry is volume.geometry
    np.testing.assert_array_equal(labels.array, (distance < RADIUS_MM).astype(np.uint8))
    assert labels.source == "bright-segmentation 1.0.0" == result.source
    assert labels.table[1].name == "bright" and labels.table[1].color == (255, 0, 0)


@pytest.mark.parametrize("spacing, orientation", [([2.0, 2.0, 2.0], "RAS"), ([1.5, 1.0, 3.0], "LPS"), (None, "SLA")])
def test_oblique_anisotropic_prediction_lands_at_the_right_world_position(package_factory, spacing, orientation):
    """The model sees an axis-aligned grid of other spacing; the labels come back where the ball is."""
    volume, centre, distance = oblique_sphere()
    package = package_factory("segmentation", input={"spacing": spacing, "orientation": orientation})
    labels = run_model(package, volume).label_map
    assert labels.geometry == volume.geometry and labels.array.shape == volume.array.shape
    coarse = max(spacing or volume.geometry.spacing)
    # Everything clearly inside is labelled, everything clearly outside is not.
    assert np.all(labels.array[distance < RADIUS_MM - coarse] == 1)
    assert np.all(labels.array[distance > RADIUS_MM + coarse] == 0)
    # The labelled voxels' centroid is the ball's centre in world coordinates.
    k, j, i = np.nonzero(labels.array)
    centroid = volume.geometry.index_to_world(np.stack([i, j, k], axis=1).astype(float)).mean(axis=0)
    assert np.linalg.norm(centroid - centre) < 0.5
    # Known world points: the centre voxel and a corner.
    ci, cj, ck = volume.geometry.world_to_voxel(centre)
    assert labels.array[ck, cj, ci] == 1 and labels.array[0, 0, 0] == 0


@pytest.mark.parametrize("spacing, orientation", [(None, None), ([2.0, 2.0, 2.0], "RAS")])
def test_detection_box_in_world_mm(package_factory, spacing, orientation):
    volume, centre, _ = oblique_sphere()
    package = package_factory("detection", input={"spacing": spacing, "orientation": orientation})
    result = run_model(package, volume)
    assert len(result.detections) == 1
    detection = result.detections[0]
    assert np.linalg.norm(np.asarray(detection.center) - centre) < 0.8
    # Box edges are voxel edges: the ball's 16 mm diameter plus at most two model voxels.
    assert all(2 * RADIUS_MM - 0.5 < s < 2 * RADIUS_MM + 2 * max(spacing or (2.5,)) for s in detection.size)
    assert detection.label == "blob" and detection.score > 0.99
    assert detection.source == "bright-detection 1.0.0"
    # The box's voxel indices (for JSON export) contain the ball's centre voxel.
    low, high = detection.voxel_box(volume.geometry)
    assert np.all(low <= CENTRE_INDEX) and np.all(np.asarray(CENTRE_INDEX) <= high)


def test_detection_nms_score_threshold_and_limit(package_factory):
    geometry = Geometry((48, 16, 16), (1.0, 1.0, 1.0))
    array = np.zeros(geometry.shape, np.int16)
    array[6:10, 6:10, 4:8] = 1000  # strong blob
    array[6:10, 6:10, 20:24] = 560  # weak blob: peak probability sigmoid(0.06 * 20) = 0.77
    array[6:10, 6:10, 36:40] = 700
    package = package_factory("detection", outputs={"score_threshold": 0.8, "max_detections": 1})
    detections = run_model(package, Volume(array, geometry, modality="CT")).detections
    assert len(detections) == 1 and detections[0].score > 0.99
    np.testing.assert_allclose(detections[0].center, (5.5, 7.5, 7.5))
    np.testing.assert_allclose(detections[0].size, (4, 4, 4))


def test_enhancement_identity_round_trips_exactly(package_factory):
    volume, _, _ = oblique_sphere()
    volume.array[volume.array == 0] = -1000
    package = package_factory(
        "enhancement", input={"normalization": {"method": "ct_window", "window": [-1000, 1000], "clip": False}}
    )
    result = run_model(package, volume)
    enhanced = result.volume
    assert enhanced.geometry == volume.geometry and enhanced.array.dtype == np.int16
    np.testing.assert_array_equal(enhanced.array, volume.array)
    assert "copy (bright-enhancement 1.0.0)" in enhanced.name
    assert enhanced.metadata.extra["derived_from_model"] == "bright-enhancement 1.0.0"


def test_enhancement_through_a_resampled_grid_keeps_smooth_images(package_factory):
    geometry = Geometry((24, 20, 12), (0.9, 0.9, 2.0), (5.0, 5.0, 5.0))
    k, j, i = np.indices(geometry.shape)
    array = (10.0 * i + 5.0 * j + 3.0 * k).astype(np.float32)  # a linear ramp survives linear resampling
    package = package_factory(
        "enhancement",
        input={"spacing": [0.45, 0.45, 1.0], "normalization": {"method": "zscore"}},
        outputs={"value_range": [0, 200]},
    )
    enhanced = run_model(package, Volume(array, geometry, modality="CT")).volume
    inner = (slice(1, -1),) * 3
    np.testing.assert_allclose(enhanced.array[inner], np.clip(array, 0, 200)[inner], atol=1e-3)
    assert enhanced.array.max() <= 200


def test_classification_probabilities(package_factory):
    geometry = Geometry((6, 10, 12), (1.0, 1.0, 1.0))
    array = np.full(geometry.shape, 250, np.int16)
    result = run_model(package_factory("classification"), Volume(array, geometry, modality="CT"))
    # The image is padded to 8x8x8 with the background (the image minimum, 250 -> 0.25).
    mean = 0.25
    expected = np.exp([mean, 1 - mean]) / np.exp([mean, 1 - mean]).sum()
    assert result.probabilities == pytest.approx({"bright": expected[0], "dark": expected[1]})


def test_progress_is_reported_per_window_batch(package_factory):
    volume, _, _ = oblique_sphere()
    reports = []
    run_model(package_factory("segmentation"), volume, progress=lambda f, m="": reports.append((f, m)))
    batch_messages = [m for _, m in reports if "window batch" in m]
    assert len(batch_messages) == 9  # 3 x 3 x 2 windows, 2 per batch
    assert batch_messages[-1].endswith("window batch 9/9")
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


class SlowPredictor(TorchPredictor):
    """Records batch sizes and devices; can raise CUDA out-of-memory errors on demand."""

    def __init__(self, module, delay=0.0, oom_when_batch_above=None, oom_on_device=None):
        super().__init__(module)
        self.delay = delay
        self.oom_when_batch_above = oom_when_batch_above
        self.oom_on_device = oom_on_device
        self.batch_sizes = []
        self.devices = []

    def to(self, device):
        self.devices.append(torch.device(device).type)
        if self.oom_on_device and torch.device(device).type == self.oom_on_device:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().to(device)

    def __call__(self, batch):
        if self.oom_when_batch_above is not None and batch.shape[0] > self.oom_when_batch_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        self.batch_sizes.append(batch.shape[0])
        time.sleep(self.delay)
        return super().__call__(batch)


def test_cancel_takes_effect_between_batches(package_factory):
    volume, _, _ = oblique_sphere()
    package = package_factory("segmentation", inference={"batch_size": 1})
    runner = ModelRunner(package)
    predictor = SlowPredictor(runner.predictor.module, delay=0.1)  # 18 windows: 1.8 s uncancelled
    runner = ModelRunner(package, predictor)
    cancel = CancelToken()
    timer = threading.Timer(0.35, cancel.cancel)
    started = time.perf_counter()
    timer.start()
    with pytest.raises(OperationCancelled):
        runner.run(volume, cancel=cancel)
    elapsed = time.perf_counter() - started
    timer.join()
    assert elapsed < 0.35 + 0.5
    assert 1 <= len(predictor.batch_sizes) < 18


def test_out_of_memory_retries_with_smaller_batches(package_factory):
    volume, _, distance = oblique_sphere()
    package = package_factory("segmentation", inference={"batch_size": 8})
    predictor = SlowPredictor(ModelRunner(package).predictor.module, oom_when_batch_above=2)
    result = ModelRunner(package, predictor).run(volume)
    assert set(predictor.batch_sizes) <= {1, 2} and 2 in predictor.batch_sizes
    assert any("retried with 4" in w for w in result.warnings) and any("retried with 2" in w for w in result.warnings)
    np.testing.assert_array_equal(result.label_map.array, (distance < RADIUS_MM).astype(np.uint8))


def test_simulated_cuda_out_of_memory_falls_back_to_the_cpu(package_factory, monkeypatch):
    """A GPU that is full: moving the network there fails at every batch size; the run finishes on the CPU."""
    volume, _, distance = oblique_sphere()
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    package = package_factory("segmentation", inference={"batch_size": 4})
    predictor = SlowPredictor(ModelRunner(package).predictor.module, oom_on_device="cuda")
    result = ModelRunner(package, predictor).run(volume, options=InferenceOptions(device="auto"))
    assert predictor.devices == ["cuda", "cuda", "cuda", "cpu"]  # batch 4, 2, 1, then the CPU
    assert result.device == "cpu"
    assert any("ran on the CPU instead" in w for w in result.warnings)
    np.testing.assert_array_equal(result.label_map.array, (distance < RADIUS_MM).astype(np.uint8))


def test_out_of_memory_on_the_cpu_is_a_clear_error(package_factory):
    volume, _, _ = oblique_sphere()
    package = package_factory("segmentation", inference={"batch_size": 1})
    predictor = SlowPredictor(ModelRunner(package).predictor.module, oom_when_batch_above=0)
    with pytest.raises(ModelError, match="not enough memory"):
        ModelRunner(package, predictor).run(volume)


def test_requested_cuda_without_cuda_runs_on_cpu_with_a_warning(package_factory):
    volume, _, _ = oblique_sphere()
    result = run_model(package_factory("segmentation"), volume, options=InferenceOptions(device="cuda"))
    assert result.device == "cpu" and any("CUDA was requested" in w for w in result.warnings)


def test_wrong_modality_warns_and_wrong_channels_fail(package_factory):
    volume, _, _ = oblique_sphere()
    volume.modality = "MR"
    result = run_model(package_factory("segmentation"), volume)
    assert any("meant for CT" in w for w in result.warnings)
    two_labels = package_factory(
        "segmentation", name="two", outputs={"labels": [{"value": 1, "name": "a"}, {"value": 2, "name": "b"}]}
    )
    with pytest.raises(ModelError, match="returned 2 output channels .* need 3"):
        run_model(two_labels, volume)


def test_cpu_threads_are_restored(package_factory):
    before = torch.get_num_threads()
    volume, _, _ = oblique_sphere()
    run_model(package_factory("segmentation"), volume, options=InferenceOptions(cpu_threads=1))
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "roi, image, expected",
    [
        ((128, 128, 128), (300, 200, 250), (128, 128, 128)),  # large image: the model's patch
        ((128, 128, 128), (48, 240, 240), (48, 128, 128)),  # thin slab: no padding along z
        ((128, 128, 128), (50, 240, 240), (48, 128, 128)),  # ...rounded down to a multiple of 16
        ((8, 512, 512), (5, 300, 300), (8, 288, 288)),  # never below the patch's own multiple
        ((96, 96, 96), (20, 100, 100), (16, 96, 96)),  # 96 = 6 x 16
    ],
)
def test_sliding_window_shrinks_to_thin_images(roi, image, expected):
    assert fit_roi_to_image(roi, image) == expected
