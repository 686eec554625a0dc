"""The Qt side of ``medviewer smoke-test``: the real viewer driven step by step from a timer in its event loop.

``medviewer.commands.smoke_test`` parses the options and calls ``run_smoke_test``;
this module does the steps (window and welcome screen, demo CT, its labels, the 3D
view, optionally a model run, a screenshot that is not blank) through the same code
paths as ``medviewer --demo``. Each step prints one line; any failure, timeout or
uncaught exception makes the exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication


def picture_is_blank(grey_levels, minimum_std: float = 4.0, minimum_levels: int = 16) -> bool:
    """True when an image (array of grey levels) is flat: too little contrast or too few distinct levels."""
    values = np.asarray(grey_levels)
    return float(values.std()) < minimum_std or len(np.unique(values)) < minimum_levels


class _SmokeTest:
    """The steps, run one after the other from a timer inside the real event loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.failures: list[str] = []
        self.window = None
        self.demo = None
        self.labels_before = 0
        self.deadline = time.monotonic() + args.timeout
        self.steps: list[tuple[str, Callable[[], None], Callable[[], bool]]] = [
            ("window and welcome screen", self.start_window, self.window_ready),
            ("demo chest CT opened", self.open_demo, self.demo_open),
            ("ground-truth labels loaded", self.load_labels, lambda: True),
        ]
        if not args.no_3d:
            self.steps.append(("3D view", self.show_3d, self.view_3d_drawn))
        if args.model:
            self.steps.append((f"model {args.model} run from the AI panel", self.run_model, self.model_done))
        self.steps.append(("screenshot", self.screenshot, lambda: True))
        self.step = -1
        self.step_started = 0.0
        self.model_handle = None
        self.model_error: BaseException | None = None

    # ------------------------------------------------------------------ driver
    def tick(self) -> None:
        try:
            if self.step >= 0:
                name, _start, done = self.steps[self.step]
                if not done():
                    if time.monotonic() > self.deadline:
                        self.fail(f"{name}: timed out")
                    return
                print(f"smoke-test: {name}: ok ({time.monotonic() - self.step_started:.1f} s)", flush=True)
            self.step += 1
            if self.step == len(self.steps):
                self.finish()
                return
            name, start, _done = self.steps[self.step]
            self.step_started = time.monotonic()
            start()
        except Exception as error:  # noqa: BLE001 - report which step broke, then quit
            import traceback

            traceback.print_exc()
            self.fail(f"{self.steps[self.step][0]}: {type(error).__name__}: {error}")
        if self.failures:
            self.timer.stop()
            self.close()
            QApplication.instance().quit()

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"smoke-test: FAILED: {message}", file=sys.stderr, flush=True)

    def finish(self) -> None:
        self.timer.stop()
        self.close()
        QApplication.instance().quit()

    def close(self) -> None:
        if self.window is not None:
            import medviewer.ui.edit_actions as edit_actions

            edit_actions.ask_unsaved_changes = lambda parent: "discard"  # never block on a question when quitting
            self.window.close()

    # ------------------------------------------------------------------ steps
    def start_window(self) -> None:
        from medviewer.ui.edit_actions import install_editing
        from medviewer.ui.main_window import MainWindow
        from medviewer.ui.welcome import install_welcome

        self.window = MainWindow(persist_settings=False)
        install_editing(self.window, autosave=False)
        install_welcome(self.window)
        self.window.set_layout("1x3")
        self.window.resize(1500, 900)
        self.window.show()

    def window_ready(self) -> bool:
        return self.window.isVisible() and self.window.welcome.isVisible()

    def open_demo(self) -> None:
        from medviewer.ui.app import open_demo

        open_demo(self.window)

    def demo_open(self) -> bool:
        from medviewer.services.demo import DEMO_CT_SHAPE

        document = self.window.document
        if document is None or self.window.loading_job is not None:
            return False
        if document.volume.array.shape != DEMO_CT_SHAPE:
            raise AssertionError(f"the demo CT has shape {document.volume.array.shape}, expected {DEMO_CT_SHAPE}")
        if self.window.welcome.isVisible():
            raise AssertionError("the welcome screen is still shown over an open study")
        return True

    def load_labels(self) -> None:
        from medviewer.services.demo import ensure_demo_data

        self.demo = ensure_demo_data()  # cached by now: returns at once
        label_map = self.window.load_label_map(str(self.demo.ct_labels_path))
        if label_map is None or not label_map.array.any():
            raise AssertionError(f"the demo labels were not loaded from {self.demo.ct_labels_path}")

    def show_3d(self) -> None:
        self.window.set_layout("2x2")

    def view_3d_drawn(self) -> bool:
        view = self.window.volume_view
        if type(view).__name__ != "VolumeView":
            raise AssertionError(f"the 3D view could not be created ({view.text() if hasattr(view, 'text') else view})")
        if not view.available:
            print(f"smoke-test: note: no OpenGL here, the 3D view says: {view.unavailable_reason}", flush=True)
            return True
        if time.monotonic() - self.step_started < 3.0:  # let the first frames render
            return False
        if picture_is_blank(view.render_to_array()[..., :3].mean(axis=-1)):
            raise AssertionError("the 3D view rendered an empty picture")
        return True

    def run_model(self) -> None:
        panel = self.window.ai_panel
        if panel is None:
            raise AssertionError("the AI panel is missing")
        errors = panel.service.registry.errors
        if errors:
            raise AssertionError(f"broken model packages: {'; '.join(str(e) for e in errors)}")
        self.labels_before = len(self.window.document.label_maps)
        panel.select_model(self.args.model)
        self.model_handle = panel.run_selected()
        self.model_handle.failed.connect(lambda error: setattr(self, "model_error", error))

    def model_done(self) -> bool:
        if self.model_error is not None:
            raise AssertionError(f"the model failed: {self.model_error}")
        if not self.model_handle.is_done:
            return False
        result = self.window.ai_panel.last_result
        if result is None:
            raise AssertionError("the model run ended without a result")
        print(f"smoke-test: note: {self.args.model} took {result.seconds:.1f} s on {result.device}", flush=True)
        return True

    def screenshot(self) -> None:
        import tempfile

        image = self.window.grab_views()
        width, height = image.width(), image.height()
        grey = image.convertToFormat(QImage.Format.Format_Grayscale8)
        stride = grey.bytesPerLine()
        levels = np.frombuffer(grey.constBits(), np.uint8, count=stride * height).reshape(height, stride)[:, :width]
        if picture_is_blank(levels):
            raise AssertionError("the screenshot of the views is blank")
        out = self.args.out or os.path.join(tempfile.mkdtemp(prefix="medviewer-smoke-"), "smoke.png")
        saved = self.window.save_screenshot(out)
        print(f"smoke-test: screenshot {width}x{height} saved to {saved}", flush=True)


def run_smoke_test(args: argparse.Namespace) -> int:
    """Run the steps in a new QApplication; 0 when all worked, 1 otherwise (the problems printed)."""
    from medviewer.ui.app import create_application  # imported when run: ui.app pulls in the whole window

    app = create_application()
    test = _SmokeTest(args)
    uncaught: list[str] = []
    previous_hook = sys.excepthook

    def record(kind, value, trace) -> None:  # exceptions raised in Qt slots end up here
        uncaught.append(f"{kind.__name__}: {value}")
        previous_hook(kind, value, trace)

    sys.excepthook = record
    test.timer = QTimer()
    test.timer.setInterval(50)
    test.timer.timeout.connect(test.tick)
    test.timer.start()
    started = time.monotonic()
    try:
        app.exec()
    finally:
        sys.excepthook = previous_hook
    failures = test.failures + [f"uncaught exception: {text}" for text in uncaught]
    if test.step < len(test.steps) and not failures:
        failures.append("the event loop ended before the test finished")
    if failures:
        print(f"smoke-test: FAILED ({len(failures)} problem(s)): {'; '.join(failures)}", file=sys.stderr)
        return 1
    print(f"smoke-test: passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0
