"""Everything editing needs for one open document, ready for the GUI, the CLI and tests.

An :class:`EditingController` binds a ``Document`` to an ``UndoStack`` (through an
``EditSession``; the document's modified flag then follows the stack's clean point,
which saving sets), creates the editing tools, remembers model proposals for
provenance (``ProposalTracker``) and autosaves unsaved edits (``Autosaver``).
The brush tools share one radius and one 2D/3D setting, as in ITK-SNAP.
"""

from __future__ import annotations

from pathlib import Path

from psygnal import Signal

from medviewer.core.document import Document
from medviewer.core.undo import UndoStack
from medviewer.io.nnunet_dataset import CaseRecord
from medviewer.services.annotations import ProposalTracker, SaveTarget, save_annotations
from medviewer.services.recovery import Autosaver
from medviewer.tools.base import Tool
from medviewer.tools.detections import BoxTool
from medviewer.tools.fill import FloodFill2DTool, PolygonTool, RegionGrowTool
from medviewer.tools.paint import EraserTool, PaintBrushTool, ThresholdPaintTool
from medviewer.tools.session import EditSession

#: Brush radius limits and the factor one "smaller/larger" step changes it by.
MIN_BRUSH_MM, MAX_BRUSH_MM, BRUSH_STEP = 0.25, 100.0, 1.25

#: Pointer tools in toolbar order.
TOOL_ORDER = ("paint", "erase", "threshold_paint", "fill", "polygon", "grow", "box")


class EditingController:
    """Session, tools, proposal tracker and autosaver of one document.

    Parameters
    ----------
    document:
        The open study.
    undo_stack:
        History shared with other edits of this document (e.g. applying model results).
    autosave:
        Create an ``Autosaver`` (into ``recovery_root`` or the user's recovery folder).
    """

    #: The shared brush radius (mm) or 2D/3D setting changed: ()
    brush_changed = Signal()

    def __init__(
        self,
        document: Document,
        undo_stack: UndoStack | None = None,
        autosave: bool = True,
        recovery_root: Path | None = None,
    ) -> None:
        self.document = document
        self.session = EditSession(document, undo_stack)
        self.tracker = ProposalTracker(document)
        self.autosaver = Autosaver(document, self.tracker, recovery_root) if autosave else None
        self.tools: dict[str, Tool] = {
            "paint": PaintBrushTool(self.session),
            "erase": EraserTool(self.session),
            "threshold_paint": ThresholdPaintTool(self.session, *self._default_threshold()),
            "fill": FloodFill2DTool(self.session),
            "polygon": PolygonTool(self.session),
            "grow": RegionGrowTool(self.session),
            "box": BoxTool(self.session),
        }

    def _default_threshold(self) -> tuple[float, float]:
        """A soft-tissue range for CT (HU); the middle half of the value range otherwise."""
        volume = self.document.volume
        if volume.modality == "CT":
            return -100.0, 300.0
        low, high = volume.value_range()
        return low + (high - low) * 0.25, low + (high - low) * 0.75

    @property
    def undo_stack(self) -> UndoStack:
        return self.session.undo_stack

    def tool(self, name: str) -> Tool:
        return self.tools[name]

    # ------------------------------------------------------------------ shared brush
    def _brushes(self) -> list[PaintBrushTool]:
        return [t for t in self.tools.values() if isinstance(t, PaintBrushTool)]

    @property
    def brush_radius_mm(self) -> float:
        return self._brushes()[0].radius_mm

    def set_brush_radius(self, radius_mm: float) -> float:
        radius_mm = float(min(max(radius_mm, MIN_BRUSH_MM), MAX_BRUSH_MM))
        for brush in self._brushes():
            brush.radius_mm = radius_mm
        self.brush_changed.emit()
        return radius_mm

    def grow_brush(self, steps: int = 1) -> float:
        """Multiply the brush radius by 1.25 per step (negative steps shrink it)."""
        return self.set_brush_radius(self.brush_radius_mm * BRUSH_STEP**steps)

    @property
    def brush_sphere(self) -> bool:
        return self._brushes()[0].sphere

    def set_brush_sphere(self, sphere: bool) -> None:
        for brush in self._brushes():
            brush.sphere = bool(sphere)
        self.brush_changed.emit()

    # ------------------------------------------------------------------ saving and closing
    def save_annotations(self, target: SaveTarget | None = None, annotator: str = "") -> CaseRecord:
        """Save the active label map and the boxes as an nnU-Net case (recovery files are dropped).

        The history's present point becomes its clean point: undoing back here later
        clears the modified flag again, undoing past it sets it.
        """
        record = save_annotations(self.document, target, annotator=annotator, tracker=self.tracker)
        self.mark_saved()
        return record

    def mark_saved(self) -> None:
        """The document as it is now is on disk (e.g. saved by another command): set the clean point."""
        self.undo_stack.set_clean()
        self.document.mark_saved()

    def discard_unsaved_edits(self) -> None:
        """The user chose Discard: drop the recovery autosave and mark the document unchanged.

        The voxels are left as they are (the document is about to be replaced or closed);
        an edit made afterwards is unsaved again and autosaved as usual.
        """
        for tool in self.tools.values():
            tool.cancel()
        if self.autosaver is not None:
            self.autosaver.discard()
        self.mark_saved()

    def close(self) -> None:
        """Forget the document: cancel interactions and drop its recovery files (a clean close)."""
        for tool in self.tools.values():
            tool.cancel()
        if self.autosaver is not None:
            self.autosaver.close()
        if self.document.history is self.undo_stack:
            self.document.bind_history(None)  # the stack may be reused for the next document
