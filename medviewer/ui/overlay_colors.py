"""One colour table for what the 2D slice views and the 3D view both draw: slice planes and detection boxes.

Qt-free (plain 0-255 RGB tuples) so both renderers read the same values: the slice
views turn them into QColors, the 3D view into VTK's 0-1 floats with ``unit_rgb``.
A box's colour says its review status in both views; the selected box is drawn in
the same colour, only thicker.
"""

from __future__ import annotations

from medviewer.core.detection import DetectionStatus

RGB = tuple[int, int, int]

#: Colours of the three planes (as 3D Slicer: axial red, coronal green, sagittal yellow): the
#: 2D view's title and the crosshair line of the other planes, the 3D view's plane outlines.
PLANE_COLORS: dict[str, RGB] = {"axial": (230, 70, 70), "coronal": (90, 200, 90), "sagittal": (235, 210, 70)}

#: Detection box colours by review status.
STATUS_COLORS: dict[DetectionStatus, RGB] = {
    DetectionStatus.PROPOSED: (255, 200, 0),
    DetectionStatus.ACCEPTED: (40, 220, 60),
    DetectionStatus.REJECTED: (235, 50, 50),
    DetectionStatus.EDITED: (0, 200, 255),
}

#: Rulers, ellipses and rectangles (drawn in the slice views only).
MEASUREMENT_COLOR: RGB = (0, 230, 255)


def unit_rgb(rgb: RGB) -> tuple[float, float, float]:
    """The 0-1 float form VTK takes (``int(unit * 255)`` gives the 0-255 value back exactly)."""
    return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)
