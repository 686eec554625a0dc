"""The Retrain dialog (AI > Retrain model...): background training, live curves, Cancel, before/after table."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "ai"))
from training_helpers import isolated_training, make_base_package, make_dataset  # noqa: E402, F401 (fixture)

from medviewer.ai.registry import ModelRegistry  # noqa: E402
from medviewer.ai.training.checkpoint import load_checkpoint  # noqa: E402
from medviewer.core.paths import user_models_dir  # noqa: E402
from medviewer.services.inference import InferenceService  # noqa: E402
from medviewer.services.training import TrainingSettings  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def isolated(isolated_training):
    """Own user folders and one torch thread per test (training_helpers.isolated_training)."""


@pytest.fixture
def setup(tmp_path):
    """A dataset of 4 corrected cases and a registry with one tiny base model."""
    dataset = make_dataset(tmp_path / "data", seeds=range(4))
    make_base_package(tmp_path / "models" / "tiny-balls")
    registry = ModelRegistry([(tmp_path / "models", "extra"), (user_models_dir(), "user")])
    return dataset, registry


@pytest.fixture
def panel(qtbot, setup):
    from medviewer.ui.ai_panel import AIPanel

    _, registry = setup
    panel = AIPanel(None, InferenceService(registry))
    qtbot.addWidget(panel)
    return panel


def curve_points(curve) -> int:
    x, _y = curve.getData()
    return 0 if x is None else len(x)


def colour_pixels(widget, rgb, tolerance=40) -> int:
    image = widget.grab().toImage()
    width, height = image.width(), image.height()
    count = 0
    for y in range(0, height, 2):
        for x in range(0, width, 2):
            colour = image.pixelColor(x, y)
            if all(abs(c - r) <= tolerance for c, r in zip((colour.red(), colour.green(), colour.blue()), rgb)):
                count += 1
    return count


def test_dialog_trains_in_the_background_with_curves_and_a_before_after_table(qtbot, setup, panel, artifacts_dir):
    dataset, _ = setup
    dialog = panel.open_retrain_dialog()
    dialog.resize(1000, 760)
    dialog.set_dataset(dataset.root)
    dialog.select_base("tiny-balls:1.0.0")
    assert dialog.name.text() == "tiny-balls"  # a new version of the base by default
    dialog.by_epochs.setChecked(True)
    dialog.epochs.setValue(4)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.template = TrainingSettings(iterations_per_epoch=25, learning_rate=5e-3, patience=0)
    qtbot.mouseClick(dialog.start_button, qtbot_left())
    assert dialog.running and not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()

    # The UI stays live while the curves fill: the base model's point (epoch 0) and the first epoch.
    qtbot.waitUntil(lambda: curve_points(dialog.score_curve) >= 2, timeout=60000)
    assert curve_points(dialog.epoch_loss_curve) >= 1 and curve_points(dialog.loss_curve) >= 1
    qtbot.waitUntil(lambda: not dialog.running, timeout=90000)

    result = dialog.result
    assert result is not None and result.ref == "tiny-balls:1.1.0"
    x, y = dialog.score_curve.getData()
    assert list(x) == [0, 1, 2, 3, 4] and y[-1] > y[0] + 0.3  # validation Dice went up
    assert list(dialog.epoch_loss_curve.getData()[0]) == [1, 2, 3, 4]
    rows = dialog.table_rows()
    assert dialog.table.isVisible() and [r[0] for r in rows] == ["Dice ball", "Dice cyst", "mean Dice"]
    assert rows[2][1] == f"{result.before['mean_dice']:.3f}" and rows[2][2] == f"{result.after['mean_dice']:.3f}"
    assert float(rows[2][3]) > 0.3
    assert "tiny-balls:1.1.0" in dialog.table.horizontalHeaderItem(2).text()
    # The panel lists the new version (its registry was refreshed).
    listed = [panel.models.item(i).text() for i in range(panel.models.count())]
    assert any("(1.1.0)" in text for text in listed)
    # The mean-Dice curve is drawn in its colour.
    assert colour_pixels(dialog.score_plot, (80, 200, 120)) > 50
    path = artifacts_dir / "retrain_dialog.png"
    dialog.grab().save(str(path))
    print(f"screenshot: {path}")


def test_cancel_stops_training_keeps_the_checkpoint_and_writes_no_package(qtbot, setup, panel):
    dataset, _ = setup
    dialog = panel.open_retrain_dialog()
    dialog.set_dataset(dataset.root)
    dialog.name.setText("cancelled-model")
    dialog.by_epochs.setChecked(True)
    dialog.epochs.setValue(500)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.template = TrainingSettings(iterations_per_epoch=5, patience=0)
    stopped = []
    dialog.training_stopped.connect(stopped.append)
    dialog.start()
    qtbot.waitUntil(lambda: curve_points(dialog.epoch_loss_curve) >= 1, timeout=60000)
    qtbot.mouseClick(dialog.cancel_button, qtbot_left())
    qtbot.waitUntil(lambda: not dialog.running, timeout=30000)
    assert dialog.handle.state == "cancelled" and stopped == [None]
    assert "Cancelled after" in dialog.status.text() and dialog.start_button.isEnabled()
    assert dialog.result is None and not dialog.table.isVisible()
    assert not (user_models_dir() / "cancelled-model").exists()
    assert load_checkpoint(user_models_dir() / ".checkpoints" / "cancelled-model")["info"]["epoch"] >= 1


def test_a_broken_dataset_is_reported_with_the_case(qtbot, setup, panel, errors):
    dataset, _ = setup
    (dataset.root / "labelsTr" / "ball-2.nii.gz").unlink()
    dialog = panel.open_retrain_dialog()
    dialog.set_dataset(dataset.root)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=30000)
    assert errors and errors[0][0] == "Retraining failed" and "case ball-2" in errors[0][1]
    assert "case ball-2" in dialog.status.text()


def test_ai_menu_opens_the_retrain_dialog(qtbot, viewer):
    from medviewer.ui.retrain_dialog import RetrainDialog

    action = next(a for a in viewer.menu("AI").actions() if a.text() == "Retrain model...")
    action.trigger()
    dialogs = [w for w in viewer.ai_panel.findChildren(RetrainDialog)]
    assert len(dialogs) == 1 and dialogs[0].isVisible()
    bases = [dialogs[0].base.itemData(i) for i in range(dialogs[0].base.count())]
    assert all(p.task in ("segmentation", "detection") and p.manifest.runtime.type == "builtin" for p in bases)
    dialogs[0].close()


def qtbot_left():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


def test_curve_colour_helper_sees_nothing_on_an_empty_plot(qtbot):
    """The pixel check above is meaningful: an empty plot has no curve-coloured pixels."""
    import pyqtgraph as pg

    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    plot.resize(300, 200)
    assert colour_pixels(plot, (80, 200, 120)) == 0
    plot.plot([0, 1, 2], [0.1, 0.5, 0.9], pen=pg.mkPen((80, 200, 120), width=3))
    assert colour_pixels(plot, (80, 200, 120)) > 10
    assert np.isfinite(1.0)
