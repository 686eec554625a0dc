"""Regenerate the README's screenshots in docs/screenshots/ from the real app and the demo data.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py

Uses a throw-away MEDVIEWER_HOME (the demo data is generated there, about 10 s), then:

* ``welcome.png``: the main window on first start (welcome screen, two recent studies);
* ``ct-ai-2x2.png``: the demo chest CT after running the built-in lung segmentation and
  nodule detection models from the AI panel, 2x2 layout with the 3D view, cursor on the
  first nodule found;
* ``mr-brain.png`` and ``chest-xray.png``: ``medviewer screenshot`` of the demo MR and X-ray.

Takes about a minute on 2 CPU cores (the two model runs dominate).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "screenshots"
REPO = Path(__file__).resolve().parents[1]


def wait(app, predicate, timeout: float = 300.0) -> None:
    """Process events until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for the app")
        app.processEvents()
        time.sleep(0.02)


def grab_window(window):
    """The whole window as shown, with the 3D view's OpenGL picture painted in (a widget grab misses it)."""
    from PySide6.QtGui import QPainter

    image = window.grab().toImage()
    pane = window.volume_view
    if pane is not None and pane.isVisible() and hasattr(pane, "screenshot"):
        painter = QPainter(image)
        painter.drawImage(pane.mapTo(window, pane.rect().topLeft()), pane.screenshot())
        painter.end()
    return image


def main() -> int:
    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-screenshots-")
    OUT.mkdir(exist_ok=True)
    from medviewer.services.demo import ensure_demo_data
    from medviewer.ui.app import create_application
    from medviewer.ui.edit_actions import install_editing
    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.welcome import install_welcome

    demo = ensure_demo_data()
    app = create_application()
    window = MainWindow(persist_settings=False)
    install_editing(window, autosave=False)
    window.settings.recent_files = [str(demo.ct_dicom_dir), str(demo.mr_nifti_path)]
    install_welcome(window)
    window.set_layout("1x3")
    window.resize(1600, 960)
    window.show()
    wait(app, window.welcome.isVisible)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    grab_window(window).save(str(OUT / "welcome.png"))

    window.open_path(str(demo.ct_dicom_dir))
    wait(app, lambda: window.document is not None and window.loading_job is None)
    panel = window.ai_panel
    for model in ("ct-lung-seg", "ct-nodule-det"):
        panel.select_model(model)
        handle = panel.run_selected()
        wait(app, lambda h=handle: h.is_done)
    document = window.document
    if document.detections:
        best = max(document.detections, key=lambda d: d.score or 0.0)
        document.select_detection(best, move_cursor=True)
        window.detections_dock.raise_()
    panel.select_model("ct-nodule-det")
    window.set_layout("2x2")
    start = time.monotonic()
    wait(app, lambda: time.monotonic() - start > 6.0)  # 3D: first frames and label surfaces
    wait(app, lambda: not getattr(window.volume_view, "surfaces_busy", False), timeout=120)
    for _ in range(30):
        app.processEvents()
        time.sleep(0.03)
    grab_window(window).save(str(OUT / "ct-ai-2x2.png"))
    import medviewer.ui.edit_actions as edit_actions

    edit_actions.ask_unsaved_changes = lambda parent: "discard"  # the model results are unsaved edits
    window.close()

    command = [sys.executable, "-m", "medviewer", "screenshot"]
    subprocess.run(command + [str(demo.mr_dicom_dir), "--out", str(OUT / "mr-brain.png"), "--size", "1500x560"], check=True)
    subprocess.run(command + [str(demo.radiograph_path), "--out", str(OUT / "chest-xray.png"), "--layout", "1x1",
                              "--size", "700x760"], check=True)
    print(f"screenshots written to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
