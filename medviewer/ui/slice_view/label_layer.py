"""Label maps over the slice: one premultiplied-ARGB item per label map, fill or outline, per-map opacity."""

from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np
import pyqtgraph as pg

from medviewer.core.labels import LabelMap
from medviewer.imaging.overlays import label_argb_table, label_outline
from medviewer.imaging.reslice import SlabSliceReader, SliceMapping
from medviewer.services.workspace import DisplaySettings
from medviewer.ui.slice_view.items import Z_LABELS, ArgbImageItem, pixel_transform, read_plane


class LabelLayer:
    """The label items of one slice view, stacked in the document's layer order."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        self._view_box = view_box
        self._items: "weakref.WeakKeyDictionary[LabelMap, ArgbImageItem]" = weakref.WeakKeyDictionary()
        self._tables: "weakref.WeakKeyDictionary[LabelMap, tuple]" = weakref.WeakKeyDictionary()
        self._readers: "weakref.WeakKeyDictionary[LabelMap, SlabSliceReader]" = weakref.WeakKeyDictionary()

    def clear(self) -> None:
        """Drop every item and slab (another document); lookup tables are keyed on content and stay."""
        for item in list(self._items.values()):
            self._view_box.removeItem(item)
        self._items = weakref.WeakKeyDictionary()
        self._readers = weakref.WeakKeyDictionary()

    def __contains__(self, label_map: LabelMap) -> bool:
        return label_map in self._items

    @property
    def slab_nbytes(self) -> int:
        """Bytes held by the label maps' cached slabs."""
        return sum(reader.slab_nbytes for reader in self._readers.values())

    def sync(self, label_maps: Sequence[LabelMap], mapping: SliceMapping, slice_index: int, display: DisplaySettings) -> None:
        """One item per label map of the document, in its order: new ones drawn, removed ones dropped."""
        present = set(label_maps)
        for label_map in list(self._items.keys()):
            if label_map not in present:
                self._view_box.removeItem(self._items.pop(label_map))
        for order, label_map in enumerate(label_maps):
            item = self._items.get(label_map)
            if item is None:
                item = ArgbImageItem()
                item.setTransform(pixel_transform(mapping, 0, 0))
                self._view_box.addItem(item)
                self._items[label_map] = item
                item.setZValue(Z_LABELS + order * 0.01)
                self.render(label_map, mapping, slice_index, display)
            item.setZValue(Z_LABELS + order * 0.01)

    def labels_changed(self, label_map: LabelMap, region, mapping: SliceMapping | None, slice_index: int, display: DisplaySettings) -> None:
        """Voxels changed in ``region``: grow the map's bounds, redraw only when the region holds this slice."""
        label_map.bounds.grow(region)
        reader = self._readers.get(label_map)
        if reader is not None:
            reader.update(region)
        if mapping is not None and mapping.region_hits_slice(region, slice_index):
            self.render(label_map, mapping, slice_index, display)

    def table_changed(self, label_map: LabelMap, mapping: SliceMapping | None, slice_index: int, display: DisplaySettings) -> None:
        self._tables.pop(label_map, None)  # names/colours/visibility changed
        self.render(label_map, mapping, slice_index, display)

    def render(self, label_map: LabelMap, mapping: SliceMapping | None, slice_index: int, display: DisplaySettings) -> None:
        item = self._items.get(label_map)
        if item is None or mapping is None:
            return
        settings = display.label_display(label_map)
        if not settings.visible:
            item.hide()
            return
        # Read only the labelled block of the slice (the label map's running bounding box),
        # then draw only the box of the labelled pixels in it: most slices hold small regions.
        box = label_map.bounds.box(label_map.array)
        if box is None or not mapping.region_hits_slice(box, slice_index):
            item.hide()
            return
        block_row, block_col, _rows, _cols = mapping.region_display_rect(box)
        reader = self._readers.get(label_map)
        if reader is None:
            reader = self._readers[label_map] = SlabSliceReader()
        plane = read_plane(mapping, reader, label_map.array, slice_index, box)
        rows = np.flatnonzero(plane.any(axis=1))
        if rows.size == 0:
            item.hide()
            return
        cols = np.flatnonzero(plane[rows[0] : rows[-1] + 1].any(axis=0))
        row0, col0 = block_row + int(rows[0]), block_col + int(cols[0])
        plane = plane[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        if settings.outline:
            plane = label_outline(np.pad(plane, 1))[1:-1, 1:-1]
        # Keyed on the table's content: tools may add labels and only notify a voxel change.
        entries = tuple((value, info.color, info.visible) for value, info in label_map.table.entries.items())
        key = (entries, settings.opacity, plane.dtype.str)
        table = self._tables.get(label_map)
        if table is None or table[0] != key:
            table = (key, label_argb_table(label_map.table, settings.opacity, plane.dtype))
            self._tables[label_map] = table
        item.set_pixels(np.take(table[1], plane))
        item.setTransform(pixel_transform(mapping, row0, col0))
        item.show()
