"""3D view speed: first render, interactive rotation, label surfaces (512 x 512 x 300 CT).

Run under a display with software OpenGL, as CI has it:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/bench_3d.py

Goals (issue 6, Mesa llvmpipe under Xvfb): first render < 2 s, an interactive frame
(rotate) < 200 ms, surfaces of 5 labels < 3 s in the background.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from common import Row, print_table  # also puts the checkout on sys.path

SIZE_XYZ = (512, 512, 300)
SPACING = (0.7, 0.7, 1.0)
VIEW_SIZE = (700, 520)  # about one pane of the 2x2 layout on a 1600x1000 screen


def ct_phantom() -> np.ndarray:
    """A torso-like CT in HU: body, two lungs, a spine, a vessel; int16 (z, y, x)."""
    nx, ny, nz = SIZE_XYZ
    yy, xx = np.mgrid[:ny, :nx].astype(np.float32)
    section = np.full((ny, nx), -1000, np.int16)
    section[((yy - ny / 2) / (ny * 0.36)) ** 2 + ((xx - nx / 2) / (nx * 0.44)) ** 2 < 1] = 40
    for centre_x in (nx * 0.32, nx * 0.68):
        section[((yy - ny * 0.45) / (ny * 0.2)) ** 2 + ((xx - centre_x) / (nx * 0.12)) ** 2 < 1] = -830
    section[(yy - ny * 0.72) ** 2 + (xx - nx / 2) ** 2 < (nx * 0.05) ** 2] = 800
    section[(yy - ny * 0.55) ** 2 + (xx - nx * 0.47) ** 2 < (nx * 0.025) ** 2] = 300
    volume = np.repeat(section[None], nz, axis=0)
    rng = np.random.default_rng(0)
    volume += rng.integers(-20, 20, size=(1, ny, nx), dtype=np.int16)  # some texture, cheaply
    return volume


def label_phantom() -> np.ndarray:
    """Five labelled organs-like blobs on the CT grid, uint8 (z, y, x)."""
    nx, ny, nz = SIZE_XYZ
    zz, yy, xx = np.ogrid[:nz, :ny, :nx]
    labels = np.zeros((nz, ny, nx), np.uint8)
    blobs = [((150, 230, 160), (80, 90, 55)), ((150, 230, 352), (80, 90, 55)), ((150, 370, 256), (140, 25, 25)),
             ((220, 300, 200), (40, 60, 70)), ((80, 280, 300), (30, 50, 60))]
    for value, ((cz, cy, cx), (rz, ry, rx)) in enumerate(blobs, start=1):
        box = (slice(max(cz - rz, 0), cz + rz + 1), slice(cy - ry, cy + ry + 1), slice(cx - rx, cx + rx + 1))
        inside = ((zz[box[0]] - cz) / rz) ** 2 + ((yy[:, box[1]] - cy) / ry) ** 2 + ((xx[:, :, box[2]] - cx) / rx) ** 2 < 1
        labels[box][inside] = value
    return labels


def _wait(app, condition, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the 3D view did not finish in time")
        app.processEvents()
        time.sleep(0.001)


def collect() -> list[Row]:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from medviewer.core import Document, Geometry, LabelMap, Volume
    from medviewer.ui.volume_view import VolumeView
    from medviewer.ui.volume_view.surfaces import extract_label_surfaces

    app = QApplication.instance() or QApplication([])
    geometry = Geometry(SIZE_XYZ, SPACING, (-179.0, -179.0, -150.0))
    ct = ct_phantom()
    labels = label_phantom()
    rows: list[Row] = []

    view = VolumeView()
    if not view.available:
        raise RuntimeError("no OpenGL here: " + view.unavailable_reason)
    view.resize(*VIEW_SIZE)
    view.show()
    _wait(app, lambda: view.vtk_widget.isVisible())
    app.processEvents()
    render_ends: list[tuple[float, bool]] = []  # (time, was it the quick preview frame)
    view.render_window.AddObserver("EndEvent", lambda *_: render_ends.append((time.perf_counter(), view._showing_preview)))

    # ---- first render: set_document -> first image on screen (fast mode), then the full-quality one
    first, full = [], []
    for _ in range(3):
        view.set_document(None)
        app.processEvents()
        document = Document(Volume(ct, geometry, modality="CT"))
        render_ends.clear()
        start = time.perf_counter()
        view.set_document(document)
        _wait(app, lambda: len(render_ends) >= 1)
        first.append(render_ends[0][0] - start)
        _wait(app, lambda: any(not quick for _, quick in render_ends))  # the refined frame
        full.append(next(t for t, quick in render_ends if not quick) - start)
    rows.append(Row("first render 512x512x300 CT (quick frame)", statistics.median(first), "s", goal="< 2 s"))
    rows.append(Row("first render, refined frame shown", statistics.median(full), "s"))

    # ---- interactive rotation through the real interactor (left drag with the trackball style)
    interactor = view.interactor
    width, height = view.render_window.GetSize()
    x, y = width // 2, height // 2
    interactor.SetEventInformation(x, y, 0, 0, "\0", 0, None)
    interactor.LeftButtonPressEvent()
    frame_times = []
    for step in range(1, 16):
        interactor.SetEventInformation(x + 6 * step, y + 2 * step, 0, 0, "\0", 0, None)
        start = time.perf_counter()
        interactor.MouseMoveEvent()
        frame_times.append(time.perf_counter() - start)
    render_ends.clear()
    start = time.perf_counter()
    interactor.LeftButtonReleaseEvent()
    release = time.perf_counter() - start
    _wait(app, lambda: any(not quick for _, quick in render_ends))  # the refined frame after letting go
    refined = [t for t, quick in render_ends if not quick]
    refine_cost = refined[0] - (render_ends[0][0] if render_ends[0][1] else start) - view._refine_timer.interval() / 1000
    rows.append(Row("interactive frame while rotating (median)", 1000 * statistics.median(frame_times[2:]), "ms", goal="< 200 ms"))
    rows.append(Row("interactive frame while rotating (worst)", 1000 * max(frame_times[2:]), "ms"))
    rows.append(Row("frame on mouse release (quick)", 1000 * release, "ms"))
    rows.append(Row("refined still frame, fast mode (shaded)", refine_cost, "s"))
    start = time.perf_counter()
    view.render()
    rows.append(Row("full-quality frame, best mode (shaded)", time.perf_counter() - start, "s"))

    # ---- label surfaces: the worker's job alone, and in the view without blocking the UI
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D

    def raw_surface_nets() -> None:
        image = vtkImageData()
        image.SetDimensions(*SIZE_XYZ)
        image.SetSpacing(*SPACING)
        image.GetPointData().SetScalars(numpy_to_vtk(labels.reshape(-1), deep=False))
        nets = vtkSurfaceNets3D()
        nets.SetInputData(image)
        for index, value in enumerate(range(1, 6)):
            nets.SetLabel(index, value)
        nets.SetOutputMeshTypeToTriangles()
        nets.Update()

    start = time.perf_counter()
    raw_surface_nets()
    raw = time.perf_counter() - start
    jobs = []
    for _ in range(3):
        start = time.perf_counter()
        extract_label_surfaces(labels, geometry)
        jobs.append(time.perf_counter() - start)
    rows.append(Row("surfaces, 5 labels 512x512x300 (job)", statistics.median(jobs), "s", raw, "one vtkSurfaceNets3D pass, no normals/world", "< 3 s"))

    document = view.document
    label_map = LabelMap(labels.copy(), geometry)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    ticker = QTimer()
    ticker.setInterval(5)
    ticker.timeout.connect(tick)
    updated: list[float] = []
    view.surfaces_updated.connect(lambda: updated.append(time.perf_counter()))
    ticker.start()
    start = time.perf_counter()
    document.add_label_map(label_map)
    _wait(app, lambda: bool(updated))
    in_view = updated[0] - start
    ticker.stop()
    _wait(app, lambda: not view.surfaces_busy)
    rows.append(Row("surfaces in the view: edit -> shown (incl. 250 ms debounce)", in_view, "s", goal="< 3 s"))
    rows.append(Row("longest UI-thread stall while surfaces build", 1000 * max(gaps), "ms"))

    # ---- one brush-stroke-sized edit: only the touched label is rebuilt
    region = (slice(140, 160), slice(220, 240), slice(150, 170))
    label_map.write(region, 1)  # written now, announced (and timed) below
    # Let the refined frame after the first surfaces finish, so it is not counted below.
    _wait(app, lambda: not (view._refine_timer.isActive() or view._render_timer.isActive()))
    updated.clear()
    start = time.perf_counter()
    document.notify_labels_changed(label_map, region)
    _wait(app, lambda: bool(updated))
    rows.append(Row("surface update after a 20^3 edit (incl. debounce)", updated[0] - start, "s"))

    view.shutdown()
    view.close()
    return rows


def main() -> None:
    print_table(collect(), "3D view (Mesa llvmpipe under Xvfb)")


if __name__ == "__main__":
    main()
