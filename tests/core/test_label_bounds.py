"""Each label map owns the running bounding box of its labelled voxels (no module-level cache)."""

from __future__ import annotations

import numpy as np

from medviewer.core import Geometry, LabelMap
from medviewer.core.labels import LabelBounds


def test_each_label_map_owns_its_bounds():
    geometry = Geometry((10, 8, 6), (1.0, 1.0, 2.0))
    labels = np.zeros(geometry.shape, np.uint8)
    labels[2:4, 3:5, 6:9] = 1
    first, second = LabelMap(labels, geometry), LabelMap.empty(geometry)
    assert isinstance(first.bounds, LabelBounds) and first.bounds is not second.bounds
    assert first.bounds.box(first.array) == (slice(2, 4), slice(3, 5), slice(6, 9))
    assert second.bounds.box(second.array) is None
    # An edit reported on the first map grows only its box.
    first.bounds.grow((slice(5, 6), slice(0, 1), slice(0, 1)))
    assert first.bounds.box(first.array) == (slice(2, 6), slice(0, 5), slice(0, 9))
    assert second.bounds.box(second.array) is None
    # A copy starts from its own array, not from the grown (conservative) box.
    copy = first.copy()
    assert copy.bounds is not first.bounds
    assert copy.bounds.box(copy.array) == (slice(2, 4), slice(3, 5), slice(6, 9))
