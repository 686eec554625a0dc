"""Label overlay helpers: running bounds, outlines and premultiplied lookup tables."""

from __future__ import annotations

import numpy as np

from medviewer.core.labels import LabelTable
from medviewer.imaging.overlays import LabelBounds, label_argb_table, label_outline


def test_label_bounds_track_edits_conservatively():
    labels = np.zeros((6, 8, 10), np.uint8)
    bounds = LabelBounds()
    assert bounds.box(labels) is None
    labels[2:4, 3:5, 6:9] = 1
    bounds.reset()
    assert bounds.box(labels) == (slice(2, 4), slice(3, 5), slice(6, 9))
    labels[5, 0, 0] = 2
    bounds.grow((slice(5, 6), slice(0, 1), slice(0, 1)))
    assert bounds.box(labels) == (slice(2, 6), slice(0, 5), slice(0, 9))
    labels[:] = 0  # erasing keeps the (still correct) larger box until a reset
    bounds.grow((slice(0, 6), slice(0, 8), slice(0, 10)))
    assert bounds.box(labels) == (slice(0, 6), slice(0, 8), slice(0, 10))
    bounds.grow(None)
    assert bounds.box(labels) is None
    widened = labels.astype(np.uint16)
    widened[1, 1, 1] = 300
    assert bounds.box(widened) == (slice(1, 2), slice(1, 2), slice(1, 2))  # a new array is rescanned
    square = np.zeros((5, 5), np.uint8)
    square[1:4, 1:4] = 7
    outline = label_outline(square)
    assert outline[2, 2] == 0 and outline[1, 1] == 7 and np.count_nonzero(outline) == 8


def test_label_argb_table_is_premultiplied_and_hides_hidden_labels():
    table = LabelTable()
    table.add(1, "lung", (200, 100, 50))
    table.add(2, "hidden", (10, 20, 30)).visible = False
    argb = label_argb_table(table, 0.5, np.uint8)
    assert argb.shape == (256,) and argb[0] == 0 and argb[2] == 0 and argb[3] == 0
    alpha, red, green, blue = (int(argb[1]) >> 24) & 255, (int(argb[1]) >> 16) & 255, (int(argb[1]) >> 8) & 255, int(argb[1]) & 255
    assert (alpha, red, green, blue) == (128, 100, 50, 25)
    assert label_argb_table(table, 1.0, np.uint16).shape == (65536,)
