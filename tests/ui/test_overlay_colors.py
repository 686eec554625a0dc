"""Planes and detection boxes have one colour table, read by the slice views and the 3D view alike."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication
from vtkmodules.util.numpy_support import vtk_to_numpy

from medviewer.core import Detection, DetectionStatus, Document, Geometry, Volume
from medviewer.ui import overlay_colors
from medviewer.ui import slice_view as slice_view_package
from medviewer.ui.volume_view import VolumeView
from medviewer.ui.volume_view import widget as volume_widget

pytestmark = pytest.mark.gui

#: one box per status, side by side on axial slice 8
BOXES = {
    DetectionStatus.PROPOSED: ([4, 4, 6], [12, 12, 10]),
    DetectionStatus.ACCEPTED: ([16, 4, 6], [24, 12, 10]),
    DetectionStatus.REJECTED: ([4, 18, 6], [12, 26, 10]),
    DetectionStatus.EDITED: ([16, 18, 6], [24, 26, 10]),
}


def to_255(rgb) -> tuple[int, int, int]:
    return tuple(int(round(c * 255)) for c in rgb)


def add_boxes(document: Document) -> dict[DetectionStatus, Detection]:
    detections = {
        status: Detection.from_index_bounds(document.geometry, low, high, label="x", score=0.5, status=status)
        for status, (low, high) in BOXES.items()
    }
    document.add_detections(list(detections.values()))
    document.set_cursor_index((16, 16, 8))
    return detections


def test_the_2d_and_3d_views_share_one_table():
    assert slice_view_package.PLANE_COLORS is overlay_colors.PLANE_COLORS
    assert slice_view_package.STATUS_COLORS is overlay_colors.STATUS_COLORS
    # The 3D view's 0-1 floats are the same 0-255 values, plane by plane and status by status.
    assert [to_255(rgb) for rgb in volume_widget.PLANE_COLORS] == [
        overlay_colors.PLANE_COLORS[plane] for plane in ("axial", "coronal", "sagittal")
    ]
    assert set(volume_widget.STATUS_COLORS) == set(DetectionStatus) == set(overlay_colors.STATUS_COLORS)
    for status, rgb in volume_widget.STATUS_COLORS.items():
        assert to_255(rgb) == overlay_colors.STATUS_COLORS[status]


def test_boxes_and_planes_are_drawn_in_the_table_colours_in_2d_and_3d(qtbot, viewer):
    geometry = Geometry((32, 32, 16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    document = viewer.open_volume(Volume(np.full(geometry.shape, -1000, np.int16), geometry, modality="CT"))
    detections = add_boxes(document)
    document.select_detection(detections[DetectionStatus.EDITED])

    # 2D: each box's edge is drawn in its status colour; the crosshair lines in their planes' colours.
    axial = viewer.slice_views[0]
    assert {d.status for d, _rect in axial.boxes.drawn} == set(DetectionStatus)
    vertical, horizontal = axial.crosshair.vertical.pen().color(), axial.crosshair.horizontal.pen().color()
    assert vertical.getRgb()[:3] == overlay_colors.PLANE_COLORS["sagittal"]
    assert horizontal.getRgb()[:3] == overlay_colors.PLANE_COLORS["coronal"]
    viewer.display.set_crosshair_visible(False)
    for _ in range(3):
        QApplication.processEvents()
    image = axial.grab().toImage()
    for status, (low, high) in BOXES.items():
        edge = axial.index_to_widget([low[0], (low[1] + high[1]) / 2, 8])  # middle of the left edge
        seen = {image.pixelColor(int(edge.x()) + dx, int(edge.y()) + dy).getRgb()[:3] for dx in (-1, 0, 1) for dy in (-2, 0, 2)}
        assert overlay_colors.STATUS_COLORS[status] in seen, (status, seen)

    # 3D: the same values go to VTK (box cell colours, plane outlines, the selected box).
    volume = VolumeView()
    assert volume.available, volume.unavailable_reason
    qtbot.addWidget(volume)
    volume.set_document(document)
    scalars = vtk_to_numpy(volume.boxes_actor.GetMapper().GetInput().GetCellData().GetScalars()).reshape(-1, 12, 3)
    others = [d for d in document.detections if d is not document.selected_detection]
    assert [tuple(int(c) for c in box[0]) for box in scalars] == [overlay_colors.STATUS_COLORS[d.status] for d in others]
    assert (scalars == scalars[:, :1]).all()  # all 12 edges of a box alike
    planes = [to_255(actor.GetProperty().GetColor()) for actor in volume.plane_actors]
    assert planes == [overlay_colors.PLANE_COLORS[plane] for plane in ("axial", "coronal", "sagittal")]
    assert to_255(volume.selected_box_actor.GetProperty().GetColor()) == overlay_colors.STATUS_COLORS[DetectionStatus.EDITED]
    document.select_detection(detections[DetectionStatus.REJECTED])
    assert to_255(volume.selected_box_actor.GetProperty().GetColor()) == overlay_colors.STATUS_COLORS[DetectionStatus.REJECTED]
