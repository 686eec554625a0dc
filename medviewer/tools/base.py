"""The contract between slice views and editing tools.

Slice views (Qt, in ``medviewer.ui``) translate mouse events into ``PointerEvent``s
in image space and hand them to the active ``Tool``. Tools are Qt-free: they change
the document (through undoable commands) and never draw anything themselves; views
redraw from the document's signals. A tool may expose a ``preview`` (a transient
mask or outline) that views draw on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class PointerAction(str, Enum):
    PRESS = "press"
    MOVE = "move"  # with a button held (drag) or hovering (buttons empty)
    RELEASE = "release"
    DOUBLE_CLICK = "double_click"


@dataclass(frozen=True)
class PointerEvent:
    """A mouse event mapped to the image.

    Attributes
    ----------
    action:
        Press, move (drag or hover), release or double click.
    world:
        Position in world LPS mm, on the displayed slice plane.
    index:
        Continuous voxel index (i, j, k) of ``world``.
    view_axis:
        Index axis normal to the displayed slice: 2 for an axial view of a standard
        stack (k), 1 for coronal (j), 0 for sagittal (i). Tools working in 2D use it
        to know which plane to edit.
    slice_index:
        The integer index along ``view_axis`` of the displayed slice.
    button:
        "left", "right", "middle", or "" for hover moves.
    modifiers:
        Subset of {"shift", "ctrl", "alt"}.
    """

    action: PointerAction
    world: np.ndarray
    index: np.ndarray
    view_axis: int
    slice_index: int
    button: str = "left"
    modifiers: frozenset[str] = field(default_factory=frozenset)

    @property
    def voxel(self) -> np.ndarray:
        """Nearest integer voxel (i, j, k)."""
        return np.rint(self.index).astype(np.int64)


class Tool:
    """Base class for editing tools. Subclasses override the handlers they need."""

    #: Identifier, e.g. "paint".
    name: str = ""
    #: Text for buttons and menus.
    title: str = ""
    #: Keyboard shortcut familiar to 3D Slicer / ITK-SNAP users, e.g. "P".
    shortcut: str = ""

    def handle(self, event: PointerEvent) -> bool:
        """Dispatch an event; return True when the tool consumed it."""
        handler = {
            PointerAction.PRESS: self.press,
            PointerAction.MOVE: self.move,
            PointerAction.RELEASE: self.release,
            PointerAction.DOUBLE_CLICK: self.double_click,
        }[event.action]
        return bool(handler(event))

    def press(self, event: PointerEvent) -> bool:
        return False

    def move(self, event: PointerEvent) -> bool:
        return False

    def release(self, event: PointerEvent) -> bool:
        return False

    def double_click(self, event: PointerEvent) -> bool:
        return False

    def cancel(self) -> None:
        """Abandon an interaction in progress (Escape, or another tool chosen)."""

    def preview(self):
        """A transient overlay views may draw (a ``ToolPreview``), or None."""
        return None


@dataclass
class ToolPreview:
    """What ``Tool.preview()`` may return: a transient overlay the slice views draw on top.

    Views draw it only on the slice it belongs to (same ``view_axis`` and
    ``slice_index``) and ask for it again after every event they hand to the tool.

    Attributes
    ----------
    view_axis, slice_index:
        The slice the preview belongs to (as in ``PointerEvent``).
    mask:
        Optional 2D boolean array in *array order* of that slice, i.e. the (z, y, x)
        label array with the ``view_axis`` dimension removed: ``(y, x)`` for view
        axis 2, ``(z, x)`` for 1, ``(z, y)`` for 0 -- exactly ``labels[k]``,
        ``labels[:, j, :]`` or ``labels[:, :, i]``. It may be a sub-block of that
        plane starting at ``mask_origin`` (keep brush previews small).
    mask_origin:
        (row, column) of ``mask[0, 0]`` in that array-order plane.
    polylines:
        Optional outlines, each an (N, 3) array of continuous voxel indices (i, j, k)
        on the slice (e.g. a brush circle, a lasso, a box being drawn).
    closed:
        Whether polylines are closed loops.
    color:
        RGB 0..255 of the mask (drawn half transparent) and the lines.
    """

    view_axis: int
    slice_index: int
    mask: np.ndarray | None = None
    mask_origin: tuple[int, int] = (0, 0)
    polylines: list[np.ndarray] = field(default_factory=list)
    closed: bool = True
    color: tuple[int, int, int] = (255, 255, 0)
