"""Islands and smoothing of binary masks."""

from __future__ import annotations

import numpy as np

from medviewer.imaging.morphology import (
    closing,
    keep_largest_component,
    label_components,
    median_smooth,
    opening,
    radius_in_voxels,
    remove_small_islands,
)


def _pieces() -> np.ndarray:
    mask = np.zeros((10, 20, 20), bool)
    mask[1:5, 1:6, 1:6] = True  # 100 voxels
    mask[6:8, 10:13, 10:13] = True  # 18 voxels
    mask[9, 18, 18] = True  # 1 voxel
    mask[8, 15, 15] = True  # touches the 18-block only diagonally -> separate (6-connectivity)
    return mask


def test_components_sorted_by_size():
    components, sizes = label_components(_pieces())
    assert list(sizes) == [100, 18, 1, 1]
    assert components[2, 2, 2] == 1


def test_remove_small_islands_exact_counts():
    cleaned = remove_small_islands(_pieces(), min_voxels=10)
    assert cleaned.sum() == 118 and not cleaned[9, 18, 18]
    assert remove_small_islands(_pieces(), min_voxels=1).sum() == 120


def test_keep_largest_component():
    largest = keep_largest_component(_pieces())
    assert largest.sum() == 100 and largest[1:5, 1:6, 1:6].all()


def test_full_connectivity_joins_diagonal_neighbours():
    mask = np.zeros((3, 3, 3), bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True
    assert list(label_components(mask, fully_connected=True)[1]) == [2]
    assert list(label_components(mask)[1]) == [1, 1]


def test_median_removes_spike_and_fills_pinhole():
    mask = np.zeros((1, 20, 20), bool)
    mask[0, 5:15, 5:15] = True
    mask[0, 10, 10] = False  # pinhole
    mask[0, 2, 2] = True  # isolated speck
    smoothed = median_smooth(mask, (1, 1, 0))
    assert smoothed[0, 10, 10] and not smoothed[0, 2, 2]
    # square corners lose one pixel each with a 3x3 median: 100 - 4
    assert smoothed.sum() == 96


def test_closing_fills_gap_opening_removes_bridge():
    mask = np.zeros((1, 20, 30), bool)
    mask[0, 5:15, 5:12] = True
    mask[0, 5:15, 13:20] = True  # one-pixel gap at x = 12
    closed = closing(mask, (1, 1, 0))
    assert closed[0, 5:15, 12].all() and closed.sum() == 150
    bridged = np.zeros((1, 20, 30), bool)
    bridged[0, 5:15, 2:10] = bridged[0, 5:15, 15:23] = True
    bridged[0, 9, 10:15] = True  # thin bridge
    opened = opening(bridged, (1, 1, 0))
    assert not opened[0, 9, 10:15].any() and opened.sum() == 160


def test_radius_in_voxels():
    assert radius_in_voxels(2.0, (0.5, 1.0, 4.0)) == (4, 2, 0)
    assert radius_in_voxels(2.0, (0.5, 1.0, 1.0), in_plane_of=2) == (4, 2, 0)
