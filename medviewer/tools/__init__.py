"""Qt-free editing tools over abstract pointer events, and the undoable edits they make.

Pointer tools (``medviewer.tools.base.Tool``) receive ``PointerEvent``s from the
slice views; one-shot operations are functions in ``medviewer.tools.operations``
and ``medviewer.tools.detections``. All of them edit through an
``medviewer.tools.session.EditSession`` (active label, overwrite rule, undo stack).

SHORTCUTS (letters follow ITK-SNAP where it has one - B paintbrush, P polygon -
and 3D Slicer's effect names otherwise; Ctrl+Z / Ctrl+Y as in both):

==========================  =================  ===============================================
Tool / action               Shortcut           Where
==========================  =================  ===============================================
Paint brush                 B                  tools.paint.PaintBrushTool (right button erases)
Eraser                      E                  tools.paint.EraserTool
Threshold paint             T                  tools.paint.ThresholdPaintTool
Fill (2D flood fill)        F                  tools.fill.FloodFill2DTool
Polygon / lasso             P                  tools.fill.PolygonTool
Region growing              G                  tools.fill.RegionGrowTool
Boxes (detections)          D                  tools.detections.BoxTool
Grow from seeds             Shift+G            tools.operations.grow_from_seeds
Fill between slices         I                  tools.operations.fill_between_slices
Remove small islands        Shift+I            tools.operations.remove_small_islands
Keep largest component      Shift+L            tools.operations.keep_largest_component
Smooth label                Shift+S            tools.operations.smooth_label
Brush smaller / larger      [ / ]  (- / +)     brush radius
Toggle 2D disc / 3D ball    Shift+B            PaintBrushTool.sphere
Next / previous box         N / Shift+N        tools.detections.step_detection
Accept / reject box         A / X              tools.detections.accept_detection / reject_detection
Delete box                  Delete             tools.detections.delete_detection
Undo                        Ctrl+Z
Redo                        Ctrl+Shift+Z, Ctrl+Y
Cancel interaction          Escape             Tool.cancel
==========================  =================  ===============================================
"""

#: Action name -> keyboard shortcut (Qt key sequence syntax), as in the table above.
SHORTCUTS: dict[str, str | tuple[str, ...]] = {
    "paint": "B",
    "erase": "E",
    "threshold_paint": "T",
    "fill": "F",
    "polygon": "P",
    "grow": "G",
    "box": "D",
    "grow_from_seeds": "Shift+G",
    "fill_between_slices": "I",
    "remove_small_islands": "Shift+I",
    "keep_largest_component": "Shift+L",
    "smooth": "Shift+S",
    "brush_smaller": ("[", "-"),
    "brush_larger": ("]", "+"),
    "toggle_sphere": "Shift+B",
    "next_box": "N",
    "previous_box": "Shift+N",
    "accept_box": "A",
    "reject_box": "X",
    "delete_box": "Delete",
    "undo": "Ctrl+Z",
    "redo": ("Ctrl+Shift+Z", "Ctrl+Y"),
    "cancel": "Escape",
}
