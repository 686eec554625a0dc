"""Editing speed and undo memory on a 512 x 512 x 300 CT + label map.

Goals (issue 5): brush dab (radius 5 mm) < 10 ms including the views' update;
3D sphere brush radius 10 mm < 20 ms; fill between slices across 50 slices < 2 s;
undo of a stroke < 10 ms; 100 brush strokes < 200 MB of history.

The Qt-free part (tools + undo + document notification) runs everywhere. With a
display (or under ``xvfb-run``) and the viewer present, the full path is measured
too: the same dab with real SliceViews subscribed to the document and the Qt
event queue processed until they have repainted.

Run: ``python bench/bench_editing.py`` (add ``--no-gui`` to skip the GUI rows).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from common import Row, median_time, print_table

from medviewer.core import Document, Geometry, LabelMap, Volume
from medviewer.tools import operations
from medviewer.tools.base import PointerAction, PointerEvent
from medviewer.tools.paint import PaintBrushTool
from medviewer.tools.session import EditSession

SHAPE_XYZ = (512, 512, 300)
SPACING = (0.7, 0.7, 1.0)


def make_document() -> Document:
    geometry = Geometry(SHAPE_XYZ, SPACING, (-180.0, -180.0, -150.0))
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: geometry.shape[0], : geometry.shape[1], : geometry.shape[2]]
    body = ((y - 256) ** 2 + (x - 256) ** 2 < 200**2) & (z >= 0)
    array = np.where(body, 40, -1000).astype(np.int16)
    array += rng.integers(-20, 20, size=array.shape[1:], dtype=np.int16)[None]
    document = Document(Volume(array, geometry, "CT"))
    document.add_label_map(LabelMap.empty(geometry))
    return document


def event(document: Document, action: str, i: float, j: float, k: float, view_axis: int = 2) -> PointerEvent:
    index = np.array([i, j, k], float)
    return PointerEvent(PointerAction(action), document.geometry.index_to_world(index), index, view_axis,
                        int(round(index[view_axis])), "left")


def stroke(tool: PaintBrushTool, document: Document, points) -> None:
    tool.handle(event(document, "press", *points[0]))
    for point in points[1:]:
        tool.handle(event(document, "move", *point))
    tool.handle(event(document, "release", *points[-1]))


def dab_during_drag(session: EditSession, tool: PaintBrushTool, repeats: int = 41):
    """Median time of one move event of a drag (one dab + notification)."""
    document = session.document
    tool.handle(event(document, "press", 100, 200, 150))
    positions = iter(range(101, 101 + 10 * repeats))
    timing = median_time(lambda: tool.handle(event(document, "move", next(positions), 200, 150)), repeats=repeats - 1)
    tool.handle(event(document, "release", 100 + repeats, 200, 150))
    return timing


def collect(include_gui: bool = True) -> list[Row]:
    rows: list[Row] = []
    document = make_document()
    session = EditSession(document)
    label_map = document.active_label_map
    label_array = label_map.array  # read-only: the set-ups below write with label_map.write

    # reference: the bare numpy write of the same disc (the least any brush can cost)
    brush = PaintBrushTool(session, radius_mm=5.0)
    kernel = brush.kernel(2)
    block = (slice(150, 151), slice(200 - 7, 200 + 8), slice(300 - 7, 300 + 8))
    with label_map.writing() as writable:
        bare = median_time(lambda: writable[block].__setitem__(kernel, 1), repeats=51)

    dab = dab_during_drag(session, brush)
    rows.append(Row("brush dab r=5 mm, Qt-free (tool+undo record+notify)", dab * 1e3, "ms", bare * 1e3,
                    "bare numpy write", "< 10 ms with views"))
    click = median_time(lambda: stroke(brush, document, [(300, 300, 150)]), repeats=21)
    rows.append(Row("brush click r=5 mm (press+release, pushes undo)", click * 1e3, "ms", goal="< 10 ms"))

    sphere = PaintBrushTool(session, radius_mm=10.0, sphere=True)
    sphere_dab = dab_during_drag(session, sphere, repeats=21)
    rows.append(Row("3D sphere dab r=10 mm, Qt-free", sphere_dab * 1e3, "ms", goal="< 20 ms"))

    # undo of a stroke of 40 dabs across the slice
    line = [(50 + 10 * n, 300, 120) for n in range(40)]
    stroke(PaintBrushTool(session, radius_mm=5.0), document, line)
    undo_times, redo_times = [], []
    for _ in range(11):
        start = time.perf_counter()
        session.undo()
        undo_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        session.redo()
        redo_times.append(time.perf_counter() - start)
    rows.append(Row("undo of a 40-dab stroke", float(np.median(undo_times)) * 1e3, "ms",
                    float(np.median(redo_times)) * 1e3, "redo", "< 10 ms"))
    whole_copy = median_time(lambda: label_array.copy(), repeats=5)
    rows.append(Row("(reference) copy of the whole label map", whole_copy * 1e3, "ms",
                    goal="what whole-volume undo would cost"))

    # fill between slices: discs on slices 100 and 150, interpolated across the 49 between
    label_map.write(np.s_[:], 0)
    z = np.arange(512)
    rows_, cols_ = np.meshgrid(z, z, indexing="ij")
    label_map.write(np.s_[100:101], 1, ((rows_ - 256) ** 2 + (cols_ - 256) ** 2 <= 60**2)[None])
    label_map.write(np.s_[150:151], 1, ((rows_ - 266) ** 2 + (cols_ - 250) ** 2 <= 90**2)[None])
    snapshot = label_array.copy()

    def fill() -> None:
        label_map.write(np.s_[:], snapshot)
        operations.fill_between_slices(session, view_axis=2)

    fill_time = median_time(fill, repeats=3)
    rows.append(Row("fill between slices across 50 slices", fill_time, "s", goal="< 2 s"))

    # grow from seeds: three seed squares on one slice, watershed over their box + 20 mm
    label_map.write(np.s_[:], 0)
    label_map.write(np.s_[150, 240:260, 240:260], 1)
    label_map.write(np.s_[150, 100:110, 100:110], 2)
    label_map.write(np.s_[150, 400:410, 400:410], 2)
    seeds = label_array.copy()

    def grow() -> None:
        label_map.write(np.s_[:], seeds)
        operations.grow_from_seeds(session, margin_mm=20.0)

    grow_time = median_time(grow, repeats=1, warmup=0)
    block = operations.labels_region(document.active_label_map)
    voxels = int(np.prod([s.stop - s.start for s in block]))
    rows.append(Row(f"grow from seeds (watershed), {voxels / 1e6:.1f} M-voxel block", grow_time, "s",
                    goal="(no goal; runs on a worker thread)"))

    # history memory of 100 strokes of 20 dabs each
    label_map.write(np.s_[:], 0)
    session.undo_stack.clear()
    rng = np.random.default_rng(1)
    tool = PaintBrushTool(session, radius_mm=5.0)
    for n in range(100):
        start = rng.uniform(60, 450, size=2)
        end = start + rng.uniform(-50, 50, size=2)
        k = int(rng.integers(0, 300))
        points = [(*(start + (end - start) * t), k) for t in np.linspace(0, 1, 20)]
        stroke(tool, document, points)
    rows.append(Row("undo history of 100 brush strokes", session.undo_stack.nbytes / 2**20, "MB",
                    label_array.nbytes * 100 / 2**20, "100 whole-volume copies", "< 200 MB"))

    if include_gui:
        rows.extend(collect_gui(document, session))
    return rows


def collect_gui(document: Document, session: EditSession) -> list[Row]:
    """Full path: the dab with real SliceViews redrawing (needs a display and the viewer)."""
    try:
        from PySide6.QtWidgets import QApplication

        from medviewer.ui.main_window import MainWindow
    except Exception as error:  # noqa: BLE001 - the viewer or a display is missing
        print(f"(GUI rows skipped: {error})", file=sys.stderr)
        return []
    app = QApplication.instance() or QApplication([])
    try:
        from medviewer.services.inference import InferenceService

        InferenceService.warm_up()  # the AI panel would otherwise import torch on a thread meanwhile
    except Exception:  # noqa: BLE001 - only a warm-up
        pass
    try:
        window = MainWindow(persist_settings=False, enable_3d=False)
        window.resize(1400, 900)
        window.show()
        window.set_document(document)
        app.processEvents()
    except Exception as error:  # noqa: BLE001
        print(f"(GUI rows skipped: {error})", file=sys.stderr)
        return []
    rows = []
    document.set_cursor_index([256, 256, 150])
    app.processEvents()
    for radius, sphere, goal in ((5.0, False, "< 10 ms"), (10.0, True, "< 20 ms")):
        tool = PaintBrushTool(session, radius_mm=radius, sphere=sphere)
        tool.handle(event(document, "press", 100, 250, 150))
        app.processEvents()
        positions = iter(range(101, 400))

        def dab_and_repaint() -> None:
            tool.handle(event(document, "move", next(positions), 250, 150))
            app.processEvents()

        timing = median_time(dab_and_repaint, repeats=30, warmup=2)
        tool.handle(event(document, "release", 140, 250, 150))
        kind = "3D sphere r=10 mm" if sphere else "brush dab r=5 mm"
        rows.append(Row(f"{kind} with 3 SliceViews repainting", timing * 1e3, "ms", goal=goal))
    window.close()
    return rows


def main() -> None:
    print_table(collect(include_gui="--no-gui" not in sys.argv), "Editing (512 x 512 x 300, spacing 0.7 x 0.7 x 1 mm)")


if __name__ == "__main__":
    main()
