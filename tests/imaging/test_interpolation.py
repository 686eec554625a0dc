"""Fill between slices (shape-based interpolation)."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.errors import OperationCancelled
from medviewer.core.jobs import CancelToken
from medviewer.imaging.interpolation import fill_between_slices


def _disc(shape, centre, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def test_identical_slices_fill_identically():
    labels = np.zeros((11, 40, 40), np.uint8)
    disc = _disc((40, 40), (20, 20), 8)
    labels[0][disc] = 1
    labels[10][disc] = 1
    filled = fill_between_slices(labels, axis=0)
    for z in range(11):
        np.testing.assert_array_equal(filled[z] == 1, disc)


def test_growing_disc_interpolates_radius():
    labels = np.zeros((11, 60, 60), np.uint8)
    labels[0][_disc((60, 60), (30, 30), 10)] = 1
    labels[10][_disc((60, 60), (30, 30), 20)] = 1
    filled = fill_between_slices(labels, axis=0)
    counts = [(filled[z] == 1).sum() for z in range(11)]
    assert all(a < b for a, b in zip(counts, counts[1:]))  # strictly growing
    middle = filled[5] == 1
    # the middle slice is the disc of radius 15, up to one pixel on the boundary
    assert _disc((60, 60), (30, 30), 14).sum() <= middle.sum() <= _disc((60, 60), (30, 30), 16).sum()
    assert middle[30, 30 + 14] and not middle[30, 30 + 16]


def test_fills_only_background_and_other_axes():
    labels = np.zeros((20, 10, 10), np.uint8)
    labels[:, 2:8, 0] = 1  # drawn on sagittal slice x = 0
    labels[:, 2:8, 6] = 1  # and x = 6
    labels[5, 5, 3] = 2  # another label in between is kept
    filled = fill_between_slices(labels, axis=2, values=[1])
    assert filled[5, 5, 3] == 2
    assert (filled[:, 2:8, 0:7] == 1).sum() == 20 * 6 * 7 - 1
    assert not filled[:, :2].any() and not filled[:, 8:].any()
    assert (filled[:, 2:8, 7:] == 0).all()


def test_two_labels_interpolated_independently_with_spacing():
    labels = np.zeros((5, 30, 30), np.uint8)
    square = np.zeros((30, 30), bool)
    square[5:15, 5:15] = True
    labels[0][square] = 1
    labels[4][square] = 1
    labels[0, 20:25, 20:25] = 3
    labels[2, 20:25, 20:25] = 3
    filled = fill_between_slices(labels, axis=0, spacing_zyx=(3.0, 0.5, 0.5))
    assert all((filled[z] == 1).sum() == 100 for z in range(5))
    assert (filled[1] == 3).sum() == 25 and (filled[3] == 3).sum() == 0


def test_cancel():
    labels = np.zeros((5, 10, 10), np.uint8)
    labels[0, 2:5, 2:5] = labels[4, 2:5, 2:5] = 1
    token = CancelToken()
    token.cancel()
    with pytest.raises(OperationCancelled):
        fill_between_slices(labels, 0, cancel=token)
