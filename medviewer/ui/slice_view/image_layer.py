"""The image slice: window/level and colour map from ``DisplaySettings`` applied to the displayed 2D slice only."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from medviewer.imaging.reslice import SlabSliceReader, SliceMapping
from medviewer.imaging.window_level import SliceWindowing, argb32, colormap_lookup_table
from medviewer.services.workspace import DisplaySettings
from medviewer.ui.slice_view.items import Z_IMAGE, ArgbImageItem, pixel_transform, read_plane


class ImageLayer:
    """The image item of one slice view and what makes its pixels."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        self.item = ArgbImageItem()
        self.item.setZValue(Z_IMAGE)
        view_box.addItem(self.item)
        self._windowing = SliceWindowing()
        # Slices across the array's x axis (sagittal) are read a slab of neighbours at a time.
        self.reader = SlabSliceReader()
        self._colors_key: tuple | None = None
        self._colors: np.ndarray | None = None

    def set_mapping(self, mapping: SliceMapping | None) -> None:
        """A new document (or none): forget the slab, place the item on the new grid."""
        self.reader.clear()
        if mapping is None:
            self.item.set_pixels(None)
        else:
            self.item.setTransform(pixel_transform(mapping, 0, 0))

    def render(self, mapping: SliceMapping, slice_index: int, volume: np.ndarray, display: DisplaySettings) -> None:
        colors_key = (display.colormap, display.invert)
        if colors_key != self._colors_key:
            self._colors = argb32(colormap_lookup_table(display.colormap, display.invert))
            self._colors_key = colors_key
        plane = read_plane(mapping, self.reader, volume, slice_index)
        self.item.set_pixels(self._windowing.apply_argb(plane, display.window.center, display.window.width, self._colors))
