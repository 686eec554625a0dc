"""Region growing, 2D flood fill and grow-from-seeds on phantoms with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.imaging.region_growing import (
    confidence_connected,
    connected_threshold,
    flood_fill_2d,
    grow_from_seeds,
)


@pytest.fixture
def two_boxes() -> np.ndarray:
    """Two bright boxes (100) in a dark background (0), separated by a 2-voxel gap."""
    image = np.zeros((10, 30, 30), np.int16)
    image[2:8, 5:15, 5:15] = 100  # 6 x 10 x 10 = 600 voxels
    image[2:8, 5:15, 17:25] = 100  # 6 x 10 x 8 = 480 voxels
    return image


def test_connected_threshold_stays_in_connected_component(two_boxes):
    mask = connected_threshold(two_boxes, (4, 8, 8), 50, 150)
    assert mask.sum() == 600
    assert mask[4, 8, 8] and not mask[4, 8, 20]
    bridged = two_boxes.copy()
    bridged[4, 8, 15:17] = 100  # a 2-voxel bridge joins the boxes
    assert connected_threshold(bridged, (4, 8, 8), 50, 150).sum() == 600 + 480 + 2


def test_connected_threshold_seed_outside_range_is_empty(two_boxes):
    assert not connected_threshold(two_boxes, (0, 0, 0), 50, 150).any()


def test_confidence_connected_grows_noisy_box():
    rng = np.random.default_rng(3)
    image = rng.uniform(-5, 5, (12, 40, 40)).astype(np.float32)  # bounded noise: exact answer
    image[3:9, 10:30, 10:30] += 200
    mask = confidence_connected(image, (6, 20, 20), multiplier=3.0, iterations=2, initial_radius=2)
    assert mask.sum() == 6 * 20 * 20


def test_flood_fill_2d_by_label_and_intensity():
    labels = np.zeros((8, 8), np.uint8)
    labels[:, 4] = 1  # a wall splits the slice
    mask = flood_fill_2d(labels, (2, 1))
    assert mask.sum() == 8 * 4 and not mask[:, 4:].any()
    # diagonal gaps do not leak (4-connectivity)
    diagonal = np.eye(6, dtype=np.uint8)[::-1]
    assert flood_fill_2d(diagonal, (0, 0)).sum() == 15
    intensity = np.zeros((8, 8), np.int16)
    intensity[:4, :4] = 500
    bounded = flood_fill_2d(labels, (0, 0), intensity, (400, 600))
    assert bounded.sum() == 16
    assert not flood_fill_2d(labels, (6, 6), intensity, (400, 600)).any()


def test_grow_from_seeds_splits_along_the_edge():
    image = np.zeros((6, 20, 40), np.float32)
    image[:, :, 20:] = 1000  # an edge at x = 20
    seeds = np.zeros(image.shape, np.uint8)
    seeds[3, 10, 5] = 1
    seeds[3, 10, 35] = 2
    result = grow_from_seeds(image, seeds, (1.0, 1.0, 1.0))
    assert (result != 0).all()
    assert (result[:, :, :20] == 1).sum() + (result[:, :, 20:] == 2).sum() >= result.size - 6 * 20 * 2
    assert (result[:, :, :19] == 1).all() and (result[:, :, 21:] == 2).all()


def test_grow_from_seeds_needs_two_labels():
    with pytest.raises(ValueError, match="two labels"):
        grow_from_seeds(np.zeros((3, 3, 3)), np.ones((3, 3, 3), np.uint8))
