"""Warnings found while loading pixels reach the user: a yellow bar above the views and a status-bar icon, no dialog."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.ui.conftest import make_ct_phantom
from tests.ui.test_viewer import settle

pytestmark = pytest.mark.gui
nib = pytest.importorskip("nibabel")

PIXDIM_WARNING = ("the header gives no voxel size along z (pixdim z = 0): 1 mm was assumed, so distances and volumes "
                  "along it are invented")
NAN_WARNING = "3 voxels are NaN/Inf (not a number or infinite; 0.094% of the image): value ranges leave them out"


def _doubtful_nifti(path):
    data = np.arange(20 * 16 * 10, dtype=np.float32).reshape(20, 16, 10)
    data[2, 3, 4] = data[5, 6, 7] = np.nan
    data[0, 0, 0] = np.inf
    image = nib.Nifti1Image(data, np.diag([0.9, 0.9, 3.0, 1.0]))
    image.header["pixdim"][3] = 0.0
    nib.save(image, str(path))
    return path


def test_load_warnings_show_in_a_bar_and_the_status_bar_without_a_dialog(viewer, qtbot, tmp_path, artifacts_dir):
    path = _doubtful_nifti(tmp_path / "doubtful.nii.gz")
    with qtbot.waitSignal(viewer.document_changed, timeout=20000):
        viewer.open_path(path)  # the real scan and load
    settle()
    assert QApplication.activeModalWidget() is None, "no dialog on open"
    bar = viewer.load_warnings
    assert viewer.document.volume.metadata.warnings == [PIXDIM_WARNING, NAN_WARNING]
    assert bar.isVisible() and bar.geometry().bottom() <= viewer.slice_views[0].mapTo(viewer, viewer.slice_views[0].rect().topLeft()).y()
    assert bar.summary_text == ("doubtful.nii.gz: geometry assumed by the reader, so distances, volumes and AI results "
                                  f"may be wrong: {PIXDIM_WARNING} (+1 more)")
    shown = bar.summary.text()  # elided to the bar's width, never wider
    assert shown.endswith("\u2026") and bar.summary_text.startswith(shown[:-1])
    assert bar.summary.fontMetrics().horizontalAdvance(shown) <= bar.summary.width()
    assert not bar.details.isVisible()
    qtbot.mouseClick(bar.details_button, Qt.MouseButton.LeftButton)
    assert bar.details.isVisible() and bar.details.text() == f"\u2022 {PIXDIM_WARNING}\n\u2022 {NAN_WARNING}"
    button = bar.status_button
    assert button.isVisible() and button.text() == "2 warnings"
    assert PIXDIM_WARNING in button.toolTip() and NAN_WARNING in button.toolTip()
    assert viewer.window().width() <= 1500, "a long warning does not widen the window"
    viewer.grab().save(str(artifacts_dir / "load_warnings_bar.png"))

    qtbot.mouseClick(bar.hide_button, Qt.MouseButton.LeftButton)
    assert not bar.isVisible() and button.isVisible()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # the icon brings every warning back
    assert bar.isVisible() and bar.details.isVisible()

    viewer.open_volume(make_ct_phantom())  # a study without warnings
    assert not bar.isVisible() and not button.isVisible()


def test_warnings_without_invented_geometry_are_counted_plainly(viewer):
    volume = make_ct_phantom()
    volume.metadata.warnings = ["the files have no SeriesInstanceUID: grouped into one series by study, frame of "
                                "reference, series number and description, orientation and image size"]
    volume.metadata.source_path = "/exports/anonymised"
    viewer.open_volume(volume)
    bar = viewer.load_warnings
    assert bar.isVisible() and bar.summary_text == f"anonymised opened with 1 warning: {volume.metadata.warnings[0]}"
    assert bar.status_button.text() == "1 warning"
