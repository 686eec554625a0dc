"""Rulers and ROI statistics in mm (or pixels for uncalibrated images)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medviewer.core import Geometry
from medviewer.imaging import measurements as measure


def test_ruler_length_uses_spacing_and_direction():
    geometry = Geometry((50, 50, 20), (0.5, 0.8, 3.0), (5, 6, 7), (0, 1, 0, -1, 0, 0, 0, 0, 1))
    assert measure.ruler_length(geometry, [0, 0, 0], [10, 0, 0]) == pytest.approx(5.0)
    assert measure.ruler_length(geometry, [0, 0, 0], [0, 10, 0]) == pytest.approx(8.0)
    assert measure.ruler_length(geometry, [1, 1, 1], [4, 5, 1]) == pytest.approx(math.hypot(1.5, 3.2))
    ruler = measure.Measurement(measure.RULER, 2, 1, [0, 0, 1], [10, 0, 1])
    assert measure.describe(ruler, np.zeros((20, 50, 50)), geometry) == "5.0 mm"
    assert measure.describe(ruler, np.zeros((20, 50, 50)), geometry, calibrated=False) == "5.0 px"


def test_rectangle_roi_statistics_on_known_values():
    geometry = Geometry((20, 10, 5), (0.5, 2.0, 1.0))
    array = np.zeros((5, 10, 20), np.int16)
    array[2, 3:6, 4:8] = np.arange(12).reshape(3, 4)  # 12 voxels: 0..11
    roi = measure.Measurement(measure.RECTANGLE, 2, 2, [4, 3, 2], [7, 5, 2])
    stats = measure.roi_statistics(array, geometry, roi)
    assert stats.voxel_count == 12
    assert stats.mean == pytest.approx(5.5) and stats.minimum == 0 and stats.maximum == 11
    assert stats.std == pytest.approx(np.std(np.arange(12)))
    assert stats.area == pytest.approx((3 * 0.5) * (2 * 2.0))
    # Corners may be given in any order and on another slice they see other voxels.
    flipped = measure.Measurement(measure.RECTANGLE, 2, 2, [7, 5, 2], [4, 3, 2])
    assert measure.roi_statistics(array, geometry, flipped).mean == pytest.approx(5.5)
    assert measure.roi_statistics(array, geometry, measure.Measurement(measure.RECTANGLE, 2, 1, [4, 3, 1], [7, 5, 1])).maximum == 0


def test_ellipse_roi_counts_voxels_inside_and_geometric_area():
    geometry = Geometry((41, 41, 3), (1.0, 1.0, 1.0))
    array = np.ones((3, 41, 41), np.float32)
    # Axial ROI (view axis 2): a disk of radius 10 voxels centred on (20, 20).
    disk = measure.Measurement(measure.ELLIPSE, 2, 1, [10, 10, 1], [30, 30, 1])
    stats = measure.roi_statistics(array, geometry, disk)
    yy, xx = np.mgrid[0:41, 0:41]
    expected = int(np.count_nonzero((yy - 20) ** 2 + (xx - 20) ** 2 <= 100))
    assert stats.voxel_count == expected
    assert stats.area == pytest.approx(math.pi * 100)
    assert stats.mean == 1.0 and stats.std == 0.0


def test_roi_outside_the_image_has_no_voxels_and_other_views_use_their_plane():
    geometry = Geometry((10, 10, 10))
    array = np.arange(1000, dtype=np.float64).reshape(10, 10, 10)
    outside = measure.Measurement(measure.RECTANGLE, 2, 0, [20, 20, 0], [25, 25, 0])
    assert measure.roi_statistics(array, geometry, outside).voxel_count == 0
    coronal = measure.Measurement(measure.RECTANGLE, 1, 4, [2, 4, 3], [2, 4, 3])  # single voxel i=2, k=3 at j=4
    assert measure.roi_statistics(array, geometry, coronal).mean == array[3, 4, 2]


def test_measurement_list_emits_changes():
    items = measure.MeasurementList()
    events = []
    items.changed.connect(lambda: events.append(len(items)))
    ruler = items.add(measure.Measurement(measure.RULER, 2, 0, [0, 0, 0], [1, 1, 0]))
    items.add(measure.Measurement(measure.ELLIPSE, 1, 3, [0, 3, 0], [2, 3, 2]))
    assert items.on_slice(2, 0) == [ruler] and items.on_slice(2, 1) == []
    items.remove(ruler)
    items.clear()
    assert events == [1, 2, 1, 0]
    with pytest.raises(ValueError):
        measure.Measurement("angle", 2, 0, [0, 0, 0], [1, 1, 0])
