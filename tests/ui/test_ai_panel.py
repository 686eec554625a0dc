"""The AI panel in the real main window: runs in the background, results drawn in the views, UI stays live."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QElapsedTimer, QTimer

from medviewer.ai.registry import ModelRegistry
from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume
from medviewer.services.inference import InferenceService

pytestmark = pytest.mark.gui

_spec = importlib.util.spec_from_file_location("ai_test_models", Path(__file__).parents[1] / "ai" / "conftest.py")
ai_test_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ai_test_models)

BALL_INDEX = (30, 26, 12)


def ball_ct() -> Volume:
    """A 64 x 56 x 24 CT-like image: soft tissue background with one bright ball."""
    geometry = Geometry((64, 56, 24), (1.0, 1.0, 2.0), (-30.0, -20.0, 0.0))
    k, j, i = np.indices(geometry.shape)
    inside = (i - BALL_INDEX[0]) ** 2 + (j - BALL_INDEX[1]) ** 2 + ((k - BALL_INDEX[2]) * 2) ** 2 < 64
    return Volume(np.where(inside, 900, 40).astype(np.int16), geometry, modality="CT", name="ball")


@pytest.fixture
def service(tmp_path):
    ai_test_models.write_package(tmp_path / "seg", "segmentation", name="bright", title="Bright voxels")
    ai_test_models.write_package(tmp_path / "det", "detection", name="blobs", title="Blobs")
    ai_test_models.write_package(tmp_path / "cls", "classification", name="meanclass", title="Mean classifier")
    ai_test_models.write_package(
        tmp_path / "enh", "enhancement", name="copy", title="Copy",
        input={"normalization": {"method": "ct_window", "window": [-1000, 1000], "clip": False}},
    )
    ai_test_models.write_package(tmp_path / "mr", "segmentation", name="mr-only", modality=["MR"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text(json.dumps(ai_test_models.manifest_for("segmentation", version="x.y")))
    return InferenceService(ModelRegistry([(tmp_path, "extra")]))


@pytest.fixture
def window(qtbot, service):
    from medviewer.ui.main_window import MainWindow

    window = MainWindow(persist_settings=False, enable_3d=False)
    qtbot.addWidget(window)
    window.resize(1400, 800)
    window.show()
    panel = window.ai_panel
    panel.set_service(service)
    window.ai_panel_for_test = panel
    window.open_volume(ball_ct())
    # Opening an image makes the panel load the inference engine (torch, MONAI) in the
    # background; imports hold the interpreter lock in long stretches, so that happens
    # before any run, not during one.
    qtbot.waitUntil(lambda: panel.engine_ready, timeout=60000)
    qtbot.waitExposed(window)
    return window


def _run(qtbot, panel, name, timeout=20000):
    panel.select_model(name)
    with qtbot.waitSignal(panel.result_applied, timeout=timeout) as blocker:
        panel.run_selected()
    return blocker.args[0]


def _pixel(view, world) -> tuple[int, int, int]:
    image = view.grab().toImage()
    point = view.world_to_widget(world)
    ratio = image.devicePixelRatio()
    colour = image.pixelColor(int(point.x() * ratio), int(point.y() * ratio))
    return colour.red(), colour.green(), colour.blue()


def test_lists_models_for_the_modality_and_shows_cards_and_errors(window):
    panel = window.ai_panel_for_test
    names = [panel.models.item(r).text() for r in range(panel.models.count())]
    assert len(names) == 4 and not any("mr-only" in n for n in names)
    assert panel.heading.text() == "Models for CT (4)"
    panel.select_model("blobs")
    assert "A test network" in panel.card.toPlainText()
    assert panel.errors.isVisible() and "field 'version'" in panel.errors.text()


def test_segmentation_overlay_and_detection_boxes_appear(qtbot, window, artifacts_dir):
    panel = window.ai_panel_for_test
    document = window.document
    centre = document.geometry.index_to_world(BALL_INDEX)
    document.set_cursor(centre)
    view = window.slice_views[0]
    # Inside the ball but off the crosshair lines drawn through the cursor.
    inside = document.geometry.index_to_world(np.add(BALL_INDEX, (3, -3, 0)))
    qtbot.wait(100)
    grey_before = _pixel(view, inside)
    assert grey_before[0] == grey_before[1] == grey_before[2]  # plain grey image

    result = _run(qtbot, panel, "bright")
    assert result.label_map is document.label_maps[-1] and document.label_maps[-1].source == "bright 1.0.0"
    qtbot.wait(200)
    red, green, blue = _pixel(view, inside)
    assert red > green + 40 and red > blue + 40  # the red overlay of label "bright" over the ball
    far = document.geometry.index_to_world((3, 3, BALL_INDEX[2]))
    r, g, b = _pixel(view, far)
    assert r == g == b  # no overlay away from the ball

    # A second run replaces the first result (default) instead of adding a layer...
    _run(qtbot, panel, "bright")
    assert len(document.label_maps) == 1
    # ...and each applied result is one undo step of the study's history, without the editing part installed.
    undo_stack = window.session.undo_stack
    replaced = document.label_maps[0]
    assert undo_stack.undo() and document.label_maps == [result.label_map]
    assert undo_stack.redo() and document.label_maps == [replaced]

    result = _run(qtbot, panel, "blobs")
    assert len(result.detections) == 1 and document.detections == result.detections
    box = result.detections[0]
    assert np.linalg.norm(np.asarray(box.center) - centre) < 1.0
    qtbot.wait(200)
    for view in window.slice_views:
        assert view.detection_at(view.world_to_widget(box.center)) is box  # a box is drawn in every view
    window.save_screenshot(artifacts_dir / "ai_panel_segmentation_and_detection.png")
    print(f"screenshot: {artifacts_dir / 'ai_panel_segmentation_and_detection.png'}")


def test_classification_probabilities_and_enhancement_series(qtbot, window):
    panel = window.ai_panel_for_test
    result = _run(qtbot, panel, "meanclass")
    assert panel.probabilities.isVisible() and panel.probabilities.rowCount() == 2
    top = max(result.probabilities, key=result.probabilities.get)
    assert panel.probabilities.item(0, 0).text() == top
    assert panel.probabilities.item(0, 1).text() == f"{result.probabilities[top]:.1%}"

    result = _run(qtbot, panel, "copy")
    listed = window.study_browser.series
    assert [s.description for s in listed][-1] == result.volume.name
    np.testing.assert_array_equal(result.volume.array, window.document.volume.array)
    # The derived series opens like any other.
    with qtbot.waitSignal(window.document_changed, timeout=10000):
        window.load_series(listed[-1])
    assert window.document.volume is result.volume



def test_ctrl_z_undoes_a_model_result_whatever_was_installed_first(qtbot, window, tmp_path, monkeypatch):
    """The AI panel is built with the window, the editing part afterwards: both use the session's history."""
    from medviewer.ui import edit_actions

    monkeypatch.setattr(edit_actions, "ask_unsaved_changes", lambda parent: "discard")
    editing = edit_actions.install_editing(window, recovery_root=tmp_path / "recovery", autosave=False)
    panel = window.ai_panel_for_test
    result = _run(qtbot, panel, "bright")
    assert window.document.label_maps == [result.label_map]
    assert editing.undo_action.isEnabled() and editing.undo_action.text() == f"&Undo Add {result.label_map.name}"
    editing.undo_action.trigger()
    assert window.document.label_maps == []
    editing.redo_action.trigger()
    assert window.document.label_maps == [result.label_map]


def _slow_package(tmp_path: Path):
    """A random MONAI UNet with small windows: enough work for a few seconds of CPU."""
    from medviewer.ai.architectures import build_architecture

    folder = tmp_path / "slow"
    arguments = {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [16, 32], "strides": [2]}
    manifest = ai_test_models.manifest_for(
        "segmentation", name="slow", title="Slow UNet",
        inference={"patch_size": [32, 32, 32], "overlap": 0.5, "batch_size": 1},
        runtime={"type": "builtin", "file": "weights.pt", "architecture": "monai.UNet", "arguments": arguments},
    )
    folder.mkdir()
    torch.manual_seed(0)
    torch.save(build_architecture("monai.UNet", arguments).state_dict(), folder / "weights.pt")
    (folder / "model.json").write_text(json.dumps(manifest))
    return folder


class Heartbeat:
    """A 10 ms timer on the UI thread that records how long each tick really waited, and what ran then."""

    def __init__(self) -> None:
        self.gaps: list[tuple[int, str]] = []
        self.phase = "start"
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.timeout.connect(self._beat)

    def __enter__(self) -> "Heartbeat":
        self._clock.start()
        self._last = 0
        self._timer.start(10)
        return self

    def __exit__(self, *exc) -> None:
        self._timer.stop()

    def _beat(self) -> None:
        now = self._clock.elapsed()
        self.gaps.append((now - self._last, self.phase))
        self._last = now

    @property
    def longest(self) -> int:
        return max(gap for gap, _ in self.gaps)

    def report(self) -> str:
        slow = [f"{gap} ms ({phase})" for gap, phase in self.gaps if gap >= 30]
        return f"longest UI gap {self.longest} ms; gaps >= 30 ms: {', '.join(slow) or 'none'}"


def _run_cancel_and_queue(qtbot, panel, package) -> Heartbeat:
    """Queue two runs, cancel the first mid-way, let the second finish, with a heartbeat running."""
    started = time.perf_counter()
    with Heartbeat() as heartbeat, qtbot.waitSignal(panel.result_applied, timeout=60000):
        first = panel.run_model(package)
        second = panel.run_model(package)  # queued behind the first
        assert second.state == "queued" and panel.queue_list.count() == 2
        heartbeat.phase = "first run"
        qtbot.waitUntil(lambda: first.state == "running" and first.fraction > 0.05, timeout=20000)
        assert panel.progress.value() > 0 and "window batch" in panel.status.text()
        cancel_at = time.perf_counter()
        heartbeat.phase = "cancelling"
        panel.cancel_current()
        qtbot.waitUntil(lambda: first.is_done, timeout=5000)
        cancel_took = time.perf_counter() - cancel_at
        heartbeat.phase = "second run"
    print(f"run + cancel + queued run: {time.perf_counter() - started:.2f} s, {heartbeat.report()}")
    assert first.state == "cancelled" and cancel_took < 1.0
    assert second.state == "finished"
    assert time.perf_counter() - started > 0.5  # there was real work to keep the UI alive through
    assert panel.window.document.label_maps[-1].source == "slow 1.0.0"
    return heartbeat


def test_ui_never_stalls_and_cancel_and_queue_work(qtbot, window, tmp_path):
    panel = window.ai_panel_for_test
    rng = np.random.default_rng(0)
    window.open_volume(Volume(rng.normal(0, 300, (64, 128, 128)).astype(np.int16), Geometry((128, 128, 64)), modality="CT"))
    panel.add_model_folder(str(_slow_package(tmp_path).parent), remember=False)
    package = panel.select_model("slow")

    # The UI thread must never wait more than 50 ms while runs go on. A shared CI machine
    # can pause the whole process once in a while; a stall caused by our code (work on the
    # UI thread, a worker holding the interpreter lock) happens on every attempt, so one
    # clean attempt out of two is required.
    first = _run_cancel_and_queue(qtbot, panel, package)
    if first.longest >= 50:
        second = _run_cancel_and_queue(qtbot, panel, package)
        assert second.longest < 50, f"UI thread stalled twice: {first.report()}; then {second.report()}"
