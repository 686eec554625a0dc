"""What a mouse drag in a slice view is doing, and Qt modifiers as the names tools read."""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import Qt

#: What a left drag does without a tool (``SliceView.set_interaction_mode``).
INTERACTION_MODES = ("crosshair", "window_level", "pan", "zoom")


class DragMode(Enum):
    """The drag in progress, decided at the press and kept until the release.

    The values of the four left-drag modes are the interaction mode names, so a mode
    picked in the toolbar maps straight onto its drag.
    """

    CROSSHAIR = "crosshair"  # move the linked cursor
    WINDOW_LEVEL = "window_level"  # horizontal: width, vertical: level
    PAN = "pan"
    ZOOM = "zoom"  # vertical motion, around the press point
    TOOL = "tool"  # the active tool consumed the press: moves and the release go to it


def modifier_names(modifiers) -> frozenset[str]:
    names = set()
    if modifiers & Qt.KeyboardModifier.ShiftModifier:
        names.add("shift")
    if modifiers & Qt.KeyboardModifier.ControlModifier:
        names.add("ctrl")
    if modifiers & Qt.KeyboardModifier.AltModifier:
        names.add("alt")
    return frozenset(names)
