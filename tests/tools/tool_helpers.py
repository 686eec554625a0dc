"""Helpers for tool tests: a small document and pointer events in voxel indices (imported by name)."""

from __future__ import annotations

import numpy as np

from medviewer.core import Document, Geometry, Volume
from medviewer.tools.base import PointerAction, PointerEvent
from medviewer.tools.session import EditSession


def make_session(size=(40, 30, 12), spacing=(1.0, 1.0, 1.0), image: np.ndarray | None = None) -> EditSession:
    geometry = Geometry(size, spacing, (-20.0, 10.0, 100.0))
    array = image if image is not None else np.zeros(geometry.shape, np.int16)
    return EditSession(Document(Volume(array, geometry, "CT")))


def pointer(session: EditSession, action: str, i: float, j: float, k: float, view_axis: int = 2,
            button: str = "left") -> PointerEvent:
    """A PointerEvent at continuous index (i, j, k) on the slice of ``view_axis`` through it."""
    index = np.array([i, j, k], float)
    slice_index = int(round(index[view_axis]))
    return PointerEvent(PointerAction(action), session.document.geometry.index_to_world(index), index, view_axis,
                        slice_index, button)


def drag(tool, session: EditSession, points, view_axis: int = 2, button: str = "left") -> None:
    """Press at the first point, move through the others, release at the last."""
    first, *rest = points
    tool.handle(pointer(session, "press", *first, view_axis=view_axis, button=button))
    for point in rest:
        tool.handle(pointer(session, "move", *point, view_axis=view_axis, button=button))
    tool.handle(pointer(session, "release", *(rest[-1] if rest else first), view_axis=view_axis, button=button))
