"""AI > Add model folder... with a MONAI bundle: refused until trusted in the panel, then an undoable layer."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.registry import ModelRegistry
from medviewer.services.inference import InferenceService

pytestmark = pytest.mark.gui

_AI_TESTS = Path(__file__).parents[1] / "ai"
_spec = importlib.util.spec_from_file_location("bundle_helpers", _AI_TESTS / "bundle_helpers.py")
bundle_helpers = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bundle_helpers", bundle_helpers)
_spec.loader.exec_module(bundle_helpers)


def test_bundle_refused_then_trusted_in_the_panel_and_run(qtbot, tmp_path, monkeypatch, artifacts_dir):
    import torch

    from medviewer.ai.bundle.runner import BundlePredictor
    from medviewer.ai.bundle.trust import is_trusted
    from medviewer.ui.main_window import MainWindow

    monkeypatch.setenv("MEDVIEWER_HOME", str(tmp_path / "home"))  # the trust list is a setting
    config = copy.deepcopy(bundle_helpers.INFERENCE)
    config["scale_max"] = "$float(300)"  # a Python expression: refused until the user trusts the bundle
    config["preprocessing"]["transforms"][4]["a_max"] = "@scale_max"
    folder = bundle_helpers.make_bundle(tmp_path / "bundles", config=config)
    plain = bundle_helpers.make_bundle(tmp_path / "plain")

    window = MainWindow(persist_settings=False, enable_3d=False)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    panel = window.ai_panel
    panel.set_service(InferenceService(ModelRegistry([(tmp_path / "no-models", "user")])))
    volume = bundle_helpers.phantom_ct()
    window.open_volume(volume)
    qtbot.waitUntil(lambda: panel.engine_ready, timeout=60000)

    panel.add_model_folder(str(folder.parent), remember=False)
    names = [panel.models.item(r).text() for r in range(panel.models.count())]
    assert names == ["Phantom organ segmentation (0.2.1) - segmentation"]
    package = panel.select_model("phantom-organ-segmentation")
    assert package.folder == folder and "ScaleIntensityRanged" in panel.card.toPlainText()
    assert panel.trust_bundle.isVisibleTo(panel) and not panel.trust_bundle.isChecked()

    with qtbot.waitSignal(panel.run_failed, timeout=60000) as blocker:
        panel.run_selected()
    message = str(blocker.args[0])
    assert "scale_max: Python expression '$float(300)'" in message and "trusted" in message
    assert window.document.label_maps == []

    panel.trust_bundle.setChecked(True)  # the user trusts this bundle
    assert is_trusted(folder)
    with qtbot.waitSignal(panel.result_applied, timeout=120000) as blocker:
        panel.run_selected()
    result = blocker.args[0]
    document = window.document
    assert document.label_maps[-1] is result.label_map
    assert result.label_map.geometry == document.geometry
    assert {v: i.name for v, i in result.label_map.table.items()} == {1: "body", 2: "ball"}
    with torch.inference_mode():
        expected, _ = BundlePredictor(plain).predict_volume(volume)  # same bundle without the expression
    np.testing.assert_array_equal(np.asarray(result.label_map.array), expected)
    assert np.bincount(expected.ravel(), minlength=3).min() > 1000
    window.save_screenshot(artifacts_dir / "ai_panel_bundle.png")
    assert window.session.undo_stack.undo() and result.label_map not in document.label_maps

    # the choice is remembered for this bundle; unticking withdraws it
    panel.refresh_models()
    panel.select_model("phantom-organ-segmentation")
    assert panel.trust_bundle.isChecked()
    panel.trust_bundle.setChecked(False)
    assert not is_trusted(folder)
