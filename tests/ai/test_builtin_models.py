"""The built-in demo models ship valid packages and work on (small) held-out phantoms.

The phantoms here use seeds outside the training range (1000-1039) and are rendered
on coarse grids to keep the tests fast; the full-size metrics are in the model cards.
"""

import dataclasses

import numpy as np
import pytest

from medviewer.ai.pipeline import ModelRunner
from medviewer.ai.registry import BUILTIN_MODELS_DIR, ModelRegistry
from medviewer.ai.training.metrics import dice
from medviewer.core.volume import Volume
from medviewer.demo.phantoms import ChestPhantomParams, generate_chest_ct


@pytest.fixture(scope="module")
def builtin():
    registry = ModelRegistry([(BUILTIN_MODELS_DIR, "builtin")])
    assert registry.errors == []
    return {p.name: p for p in registry.packages}


def test_builtin_models_are_valid_and_documented(builtin):
    assert {"ct-lung-seg", "ct-nodule-det", "ct-denoise"} <= set(builtin)
    assert {p.task for p in builtin.values()} >= {"segmentation", "detection", "enhancement"}
    total_bytes = 0
    for package in builtin.values():
        assert package.weights_path.is_file()
        total_bytes += sum(f.stat().st_size for f in package.folder.iterdir())
        card = package.model_card()
        assert f"python -m medviewer.ai.demo_models." in card  # how to retrain it
        assert "synthetic" in card and "Not for clinical use" in card
        assert package.manifest.provenance.metrics and package.manifest.provenance.license
    assert total_bytes < 20 * 2**20
    # They are what the default registry offers for CT.
    assert {p.name for p in ModelRegistry.default().for_modality("CT")} >= set(builtin)


@pytest.fixture(scope="module")
def coarse_phantom():
    """A held-out phantom on a coarse grid (2.8 x 2.8 x 4.7 mm, the same patient extent as the demo CT)."""
    return generate_chest_ct(ChestPhantomParams.from_seed(9100), shape=(64, 128, 128), spacing=(2.8, 2.8, 4.7))


def test_lung_segmentation_on_a_held_out_phantom(builtin, coarse_phantom):
    volume, truth = coarse_phantom.volume, coarse_phantom.labels.array
    result = ModelRunner(builtin["ct-lung-seg"]).run(volume)
    labels = result.label_map
    assert labels.geometry == volume.geometry and labels.source == "ct-lung-seg 1.0.0"
    for value in (1, 2):  # right and left lung (nodules are left out of the truth here)
        score = dice(labels.array == value, truth == value)
        assert score > 0.85, f"{labels.table[value].name}: Dice {score:.3f}"
    # Right lung is on the patient's right: smaller world x (LPS) than the left lung.
    k, j, i = np.nonzero(labels.array == 1)
    right_x = volume.geometry.index_to_world(np.stack([i, j, k], 1).mean(0))[0]
    k, j, i = np.nonzero(labels.array == 2)
    left_x = volume.geometry.index_to_world(np.stack([i, j, k], 1).mean(0))[0]
    assert right_x < left_x


def test_nodule_detection_finds_a_large_nodule(builtin):
    """A slab of a held-out phantom at the demo CT's resolution (the resolution the model was made for)."""
    phantom = generate_chest_ct(ChestPhantomParams.from_seed(9100))  # 512 x 512 x 200 at 0.7 x 0.7 x 1.5 mm
    geometry = phantom.volume.geometry
    nodule = max(phantom.nodule_records(), key=lambda r: r["diameter_mm"])
    assert nodule["diameter_mm"] >= 20
    centre = np.asarray(nodule["nodule_center_mm"])
    k = int(round(geometry.world_to_index(centre)[2]))
    first, last = max(0, k - 24), min(geometry.size[2], k + 24)  # +-36 mm around the nodule
    slab = Volume(
        np.ascontiguousarray(phantom.volume.array[first:last]),
        geometry.replace(size=(geometry.size[0], geometry.size[1], last - first),
                         origin=tuple(geometry.index_to_world((0, 0, first)))),
        modality="CT",
    )
    result = ModelRunner(builtin["ct-nodule-det"]).run(slab)
    hits = [d for d in result.detections if np.linalg.norm(np.asarray(d.center) - centre) <= nodule["diameter_mm"] / 2]
    assert len(hits) == 1, f"{len(hits)} boxes on the {nodule['diameter_mm']:.0f} mm nodule at {centre}"
    box = hits[0]
    # The box holds the nodule's centre and is no larger than the nodule.
    assert np.all(np.abs(centre - np.asarray(box.center)) <= np.asarray(box.size) / 2), (box.center, box.size)
    assert np.all(np.asarray(box.size) <= nodule["diameter_mm"] + 3.0), box.size
    assert all(d.source == "ct-nodule-det 1.0.0" and 0.5 <= d.score <= 1 for d in result.detections)
    assert len(result.detections) <= 5  # a few false positives at most on a 7 cm slab


def test_denoising_reduces_noise_on_a_held_out_phantom(builtin):
    params = ChestPhantomParams.from_seed(9102)
    shape, spacing = (12, 96, 96), (0.7, 0.7, 1.5)  # a small block of the chest at the demo resolution
    clean = generate_chest_ct(dataclasses.replace(params, noise_hu=0.0), shape, spacing).volume
    noisy = generate_chest_ct(dataclasses.replace(params, noise_hu=40.0), shape, spacing).volume
    result = ModelRunner(builtin["ct-denoise"]).run(noisy)
    denoised = result.volume
    assert denoised.geometry == noisy.geometry and denoised.array.dtype == noisy.array.dtype
    inner = (slice(2, -2), slice(8, -8), slice(8, -8))

    def rmse(array):
        return float(np.sqrt(np.mean((array[inner].astype(float) - clean.array[inner]) ** 2)))

    assert rmse(denoised.array) < 0.7 * rmse(noisy.array)
