"""Viewer speed: slice changes, label redraws and idle CPU, with the real widgets.

On a 512 x 512 x 300 int16 CT with a label map overlay and 10 detections, in the
real main window (1x3 layout, 1500 x 800 window):

* slice change per view: time from the request (``view.step_slice``) until that
  view has been repainted (``viewport().repaint()``, a synchronous paint), median
  of many steps; the other views' crosshairs are repainted too;
* a cursor move that changes all three slices at once, until all three repainted;
* a label edit on the displayed slice (``notify_labels_changed`` with a small
  region) until repainted: what a brush dab costs the views;
* the 90th percentile of the slice changes too: the sagittal view reads a slab of
  neighbouring slices every few steps (``medviewer.imaging.reslice.SlabSliceReader``),
  so its slowest steps are shown beside the median;
* memory: peak resident growth during 100 slice changes (a copy of the volume
  would be 150 MB), and the bytes the sagittal slabs hold (image and labels);
* idle: CPU time used by the process while the event loop runs idle for 3 s.

The machine is shared, so wall-clock medians move with other load; the CPU time of
this process is given next to them (process_time has a coarse clock: a few ms).

Run under a display, e.g. ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/bench_viewer.py``.
Reference: copying one axial slice (512 x 512 int16) with NumPy, measured in the same run.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

from common import Row, median_time, peak_memory_during, print_table  # noqa: E402  (sets sys.path)

SHAPE = (300, 512, 512)
GOAL_SLICE_MS = 5.0


def _build_volume():
    from medviewer.core import Detection, Geometry, LabelMap, Volume, VolumeMetadata

    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    body = ((y - 256) / 200.0) ** 2 + ((x - 256) / 230.0) ** 2 <= 1.0
    array = np.full(SHAPE, -1000, dtype=np.int16)
    array[np.broadcast_to(body, SHAPE)] = 40
    array += rng.integers(-20, 20, size=SHAPE[1:], dtype=np.int16)[None]
    geometry = Geometry((512, 512, 300), (0.7, 0.7, 1.0), (-180.0, -180.0, -150.0))
    volume = Volume(array, geometry, "CT", VolumeMetadata(windows=[(40.0, 400.0)], units="HU"))
    labels = np.zeros(SHAPE, np.uint8)
    labels[50:250, 150:350, 120:250] = 1
    labels[80:200, 200:300, 300:400] = 2
    label_map = LabelMap(labels, geometry, name="lungs")
    detections = [
        Detection.from_index_bounds(geometry, [50 + 40 * n, 100 + 20 * n, 20 + 25 * n], [80 + 40 * n, 130 + 20 * n, 50 + 25 * n],
                                    label="nodule", score=0.5 + n / 20)
        for n in range(10)
    ]
    return volume, label_map, detections


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def collect() -> list[Row]:
    if not os.environ.get("DISPLAY"):
        print("bench_viewer: no DISPLAY; run it under xvfb-run", file=sys.stderr)
        return []
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from medviewer.ui.app import create_application
    from medviewer.ui.main_window import MainWindow

    try:  # the AI panel imports its engine when a document opens; do it before timing
        from medviewer.services.inference import InferenceService

        InferenceService.warm_up()
    except Exception:  # noqa: BLE001 - the viewer bench does not need the AI engine
        pass

    app = create_application()
    volume, label_map, detections = _build_volume()
    window = MainWindow(persist_settings=False, enable_3d=False)
    window.resize(1500, 800)
    window.set_layout("1x3")
    window.show()
    document = window.open_volume(volume)
    document.add_label_map(label_map)
    document.add_detections(detections)
    document.set_cursor_index((256, 256, 150))
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)

    rows: list[Row] = []
    slice_reference = median_time(lambda: volume.array[150].copy(), repeats=50) * 1000.0

    cpu_rows = []
    for view in window.slice_views:
        samples, cpu_samples = [], []
        for step in range(100):
            direction = 1 if (step // 20) % 2 == 0 else -1
            start, cpu_start = time.perf_counter(), time.process_time()
            view.step_slice(direction)
            view.viewport().repaint()
            samples.append(time.perf_counter() - start)
            cpu_samples.append(time.process_time() - cpu_start)
        app.processEvents()
        rows.append(Row(f"slice change, {view.plane} view", _median_ms(samples[5:]), "ms", slice_reference,
                        "copy of one axial slice", f"< {GOAL_SLICE_MS:g} ms per view"))
        cpu_rows.append(Row(f"  same, CPU time of this process", _median_ms(cpu_samples[5:]), "ms", None, "",
                            "(insensitive to other load)"))
        rows.append(cpu_rows[-1])
        rows.append(Row("  same, 90th percentile", float(np.percentile(samples[5:], 90)) * 1000.0, "ms", None, "",
                        "(slowest steps)"))

    samples = []
    for step in range(30):
        offset = 1 if step % 2 == 0 else -1
        index = document.cursor_index + offset
        start = time.perf_counter()
        document.set_cursor_index(index)
        for view in window.slice_views:
            view.viewport().repaint()
        samples.append(time.perf_counter() - start)
    rows.append(Row("cursor move changing all 3 slices", _median_ms(samples[3:]), "ms", slice_reference,
                    "copy of one axial slice", f"< {3 * GOAL_SLICE_MS:g} ms (3 views)"))

    axial = window.slice_views[0]
    k = axial.slice_index
    samples = []
    for step in range(40):
        j, i = 200 + step, 200 + step
        label_map.write(np.s_[k, j - 5 : j + 5, i - 5 : i + 5], 1)  # written now, announced (and timed) below
        start = time.perf_counter()
        document.notify_labels_changed(label_map, (slice(k, k + 1), slice(j - 5, j + 5), slice(i - 5, i + 5)))
        for view in window.slice_views:
            view.viewport().repaint()
        samples.append(time.perf_counter() - start)
    rows.append(Row("label edit (brush dab) redraw, 3 views", _median_ms(samples[3:]), "ms", None, "", "< 10 ms"))

    def many_slice_changes():
        for step in range(100):
            axial.step_slice(1 if (step // 25) % 2 == 0 else -1)
            axial.viewport().repaint()

    _, peak = peak_memory_during(many_slice_changes)
    rows.append(Row("peak memory growth over 100 slice changes", peak / 2**20, "MiB", volume.array.nbytes / 2**20,
                    "volume size", "far below the volume size"))
    sagittal = window.slice_views[2]
    sagittal.step_slice(1)
    slab_bytes = sagittal.slab_cache_nbytes()
    rows.append(Row("sagittal slab cache (image + labels)", slab_bytes / 2**20, "MiB", volume.array.nbytes / 2**20,
                    "volume size", "a few MiB"))

    for _ in range(50):
        app.processEvents()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    QTimer.singleShot(3000, app.quit)
    app.exec()
    idle_cpu = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start) * 100.0
    rows.append(Row("idle window CPU use (3 s)", idle_cpu, "% of a core", None, "", "~0 (no polling timers)"))

    window.close()
    QApplication.processEvents()
    return rows


def main() -> None:
    rows = collect()
    if rows:
        print_table(rows, "Viewer: 512x512x300 CT, label map, 10 detections, 1x3 layout, 1500x800 window")


if __name__ == "__main__":
    main()
