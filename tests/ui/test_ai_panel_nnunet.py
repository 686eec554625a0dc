"""AI > Add model folder... with an nnU-Net v2 result folder: listed, run in the background, an undoable layer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.registry import ModelRegistry
from medviewer.services.inference import InferenceService

pytestmark = pytest.mark.gui

_AI_TESTS = Path(__file__).parents[1] / "ai"
_spec = importlib.util.spec_from_file_location("nnunet_helpers", _AI_TESTS / "nnunet_helpers.py")
nnunet_helpers = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("nnunet_helpers", nnunet_helpers)
_spec.loader.exec_module(nnunet_helpers)


def test_add_nnunet_dataset_folder_and_run_it(qtbot, tmp_path, artifacts_dir):
    from medviewer.ai.nnunet.predictor import NnUNetPredictor
    from medviewer.ui.main_window import MainWindow

    full = nnunet_helpers.make_trained_model(tmp_path / "results", "3d_fullres", folds=(0, 1))
    nnunet_helpers.make_trained_model(tmp_path / "results", "2d", folds=(0,))
    window = MainWindow(persist_settings=False, enable_3d=False)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    panel = window.ai_panel
    panel.set_service(InferenceService(ModelRegistry([(tmp_path / "no-models", "user")])))
    volume = nnunet_helpers.phantom_ct()
    window.open_volume(volume)
    qtbot.waitUntil(lambda: panel.engine_ready, timeout=60000)

    panel.add_model_folder(str(full.parent), remember=False)  # the Dataset042_Phantom folder
    names = [panel.models.item(r).text() for r in range(panel.models.count())]
    assert names == ["Dataset042_Phantom (nnU-Net 3d_fullres) (nnUNetTrainer__nnUNetPlans__3d_fullres) - segmentation"]
    package = panel.select_model("dataset042_phantom")
    assert package.folder == full
    card = panel.card.toPlainText()
    assert "2 fold(s) (fold_0, fold_1)" in card and "tumour" in card

    with qtbot.waitSignal(panel.result_applied, timeout=120000) as blocker:
        panel.run_selected()
    result = blocker.args[0]
    document = window.document
    assert document.label_maps[-1] is result.label_map
    assert result.label_map.geometry == document.geometry
    assert {v: i.name for v, i in result.label_map.table.items()} == {1: "liver", 2: "tumour"}
    expected, _ = NnUNetPredictor(full).predict(np.asarray(volume.array)[None], tuple(volume.geometry.spacing[::-1]))
    np.testing.assert_array_equal(np.asarray(result.label_map.array), expected)
    window.save_screenshot(artifacts_dir / "ai_panel_nnunet.png")
    assert window.session.undo_stack.undo() and result.label_map not in document.label_maps

    panel.mirroring.setChecked(False)  # faster runs without test-time mirroring
    with qtbot.waitSignal(panel.result_applied, timeout=120000) as blocker:
        panel.run_selected()
    quick = blocker.args[0]
    assert any("mirroring" in w for w in quick.warnings)
    expected, _ = NnUNetPredictor(full).predict(np.asarray(volume.array)[None], tuple(volume.geometry.spacing[::-1]),
                                                mirroring=False)
    np.testing.assert_array_equal(np.asarray(quick.label_map.array), expected)
