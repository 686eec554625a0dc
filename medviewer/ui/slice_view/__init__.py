"""SliceView: one anatomical plane of the open document (pyqtgraph), drawn in layers.

What it shows, one module per layer: the image slice through the linked cursor
(``image_layer``: window/level and colour map from ``DisplaySettings``), label maps
(``label_layer``: RGBA lookup table, fill or outline), detection boxes where they cross
the slice (``boxes``), measurements (``measurement_layer``), the crosshair
(``crosshair``), the active tool's preview (``preview``), orientation letters and
slice/window text (``overlay_text``). ``widget.SliceView`` composes them; the colours
of planes and boxes come from ``medviewer.ui.overlay_colors``, shared with the 3D view.

Screen space: the view's coordinates are millimetres, ``x = col * col_spacing``
and ``y = row * row_spacing`` with display pixel centres at integer (col, row)
(``medviewer.imaging.reslice``), so the physical aspect ratio is kept by locking
the ViewBox aspect to 1.

Mouse and keys (when no tool consumes the event; ``interaction.DragMode`` names the drags):

* left click/drag: move the crosshair (crosshair mode), window/level (W/L mode or
  Shift+drag), pan or zoom (pan/zoom modes); a click on a detection box selects it;
* middle drag or Space+left drag: pan; right drag or Ctrl+wheel: zoom;
* wheel, Page Up/Down, arrow keys: change slice; R: reset view; Escape: cancel tool.

Tools: with ``set_tool(tool)``, left press/drag/release, double clicks and hover
moves over the image become ``medviewer.tools.base.PointerEvent`` passed to
``tool.handle``; if it returns True the view does nothing else with the event.
After each event the view draws ``tool.preview()`` (a ``ToolPreview``) if it
belongs to the displayed slice.

Redraws follow the document's psygnal events: ``cursor_moved`` (slice change:
image, labels, boxes, measurements; otherwise only the crosshair),
``labels_changed(label_map, region)`` (only the current slice, only when the region
contains it; the region also grows the label map's ``bounds``), ``detections_changed``,
``selection_changed``, ``label_maps_changed``, ``label_table_changed``. Slices are
NumPy views of the volume; window/level is a lookup on the 2D slice only. Callers
must change the document on the UI thread.
"""

from medviewer.ui.overlay_colors import MEASUREMENT_COLOR, PLANE_COLORS, STATUS_COLORS
from medviewer.ui.slice_view.interaction import INTERACTION_MODES, DragMode
from medviewer.ui.slice_view.items import ArgbImageItem
from medviewer.ui.slice_view.widget import HoverInfo, SliceView

__all__ = [
    "INTERACTION_MODES",
    "MEASUREMENT_COLOR",
    "PLANE_COLORS",
    "STATUS_COLORS",
    "ArgbImageItem",
    "DragMode",
    "HoverInfo",
    "SliceView",
]
