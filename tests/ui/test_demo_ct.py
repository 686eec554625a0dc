"""The demo chest CT (a real DICOM series from medviewer.services.demo) in the real main window."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.imaging.window_level import window_level_to_uint8
from medviewer.services.demo import ensure_demo_data

from tests.ui.test_viewer import grey, mouse, pixel, settle, views

pytestmark = [pytest.mark.gui, pytest.mark.slow]

NODULE = 3  # label values documented by the demo data
RIGHT_LUNG, LEFT_LUNG = 1, 2


@pytest.fixture(scope="module")
def demo():
    return ensure_demo_data()


def test_demo_ct_opens_in_the_background_and_views_agree(viewer, qtbot, demo, errors):
    with qtbot.waitSignal(viewer.document_changed, timeout=60000):
        viewer.open_path(demo.ct_dicom_dir)
    document = viewer.document
    volume = document.volume
    assert volume.modality == "CT" and volume.geometry.size[2] > 1 and errors == []
    assert viewer.study_browser.tree.topLevelItemCount() >= 1
    label_map = viewer.load_label_map(demo.ct_labels_path)
    assert label_map is not None and errors == []
    viewer.display.set_crosshair_visible(False)
    viewer.display.set_label_display(label_map, opacity=1.0)

    # A nodule voxel: every view shows the nodule colour there once the cursor is on it.
    k, j, i = np.argwhere(label_map.array == NODULE)[0]
    document.set_cursor_index((i, j, k))
    colour = label_map.table[NODULE].color
    for view in views(viewer):
        assert pixel(view, (i, j, k)) == colour, view.plane
    # Crosshair sync on real geometry: click in the coronal view, every view agrees.
    viewer.display.set_crosshair_visible(True)
    axial, coronal, sagittal = views(viewer)
    target = (i + 5, j, k + 3)
    mouse(coronal, "press", target)
    mouse(coronal, "release", target)
    assert document.cursor_index.tolist() == [int(v) for v in target]
    worlds = [view.crosshair_world() for view in views(viewer)]
    assert all(np.allclose(w, document.cursor, atol=1e-4) for w in worlds)
    assert (axial.slice_index, coronal.slice_index, sagittal.slice_index) == (k + 3, j, i + 5)

    # Lung window on a lung voxel (labels hidden): the grey level follows the DICOM values.
    viewer.display.set_label_display(label_map, visible=False)
    viewer.display.set_crosshair_visible(False)
    lung = np.argwhere(label_map.array[axial.slice_index] == LEFT_LUNG)
    row, col = lung[len(lung) // 2]
    voxel = (col, row, axial.slice_index)
    value = volume.array[axial.slice_index, row, col]
    axial.zoom_by(4.0, axial.index_to_widget(voxel))  # several screen pixels per voxel: sample exactly one voxel
    assert axial.zoom > 2
    for preset, (center, width) in (("lung", (-600, 1500)), ("mediastinum", (50, 350))):
        viewer.apply_window_preset(preset)
        assert grey(axial, voxel) == window_level_to_uint8(np.array([value]), center, width)[0]
    # The patient's left lung is on the screen's right in the axial view.
    assert axial.index_to_widget(voxel).x() > axial.width() / 2
    settle()
