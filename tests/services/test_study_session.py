"""The study session without Qt: open a study, run a built-in model, edit, undo, save (and the prompt history)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from medviewer.core import Document, Geometry, Volume
from medviewer.services.study_session import PromptRecord, StudySession
from medviewer.services.workspace import DisplayModel

#: The whole scenario runs in a fresh interpreter, so that nothing imported by pytest's plugins hides a Qt import.
SCENARIO = textwrap.dedent(
    r'''
    import json, sys
    from pathlib import Path

    import numpy as np
    import SimpleITK as sitk

    from medviewer.core import Geometry, Volume
    from medviewer.imaging.sitk_bridge import volume_to_sitk
    from medviewer.services.annotations import SaveTarget
    from medviewer.services.study_session import StudySession
    from medviewer.tools.base import PointerAction, PointerEvent

    work = Path(sys.argv[1])
    # A small chest-like CT at the model's own 2.5 mm grid: soft tissue body, two dark lungs.
    geometry = Geometry((96, 80, 40), (2.5, 2.5, 2.5), (-120.0, -100.0, -50.0))
    array = np.full(geometry.shape, -1000, np.int16)
    y, x = np.ogrid[:80, :96]
    array[:, ((y - 40) / 32.0) ** 2 + ((x - 48) / 44.0) ** 2 < 1] = 40
    array[6:34, 22:56, 14:42] = -850   # right lung (low x = patient right in LPS)
    array[6:34, 22:56, 54:82] = -850   # left lung
    sitk.WriteImage(volume_to_sitk(Volume(array, geometry, "CT")), str(work / "chest.nii.gz"))

    session = StudySession.open(work / "chest.nii.gz")
    document = session.document
    assert document.geometry.shape == (40, 80, 96), document.geometry.shape

    result = session.run_model("ct-lung-seg")
    labels = document.active_label_map
    assert labels is result.label_map and labels.source.startswith("ct-lung-seg "), labels.source
    model_counts = {int(v): int((labels.array == v).sum()) for v in np.unique(labels.array) if v}
    assert model_counts, "the model labelled nothing"
    assert session.undo_stack.count == 1 and session.undo_stack.undo_text.startswith("Add")
    before = labels.array.copy()

    # A 5 mm brush dab on an empty axial spot at 2.5 mm spacing: the 13 grid points within 5 mm.
    session.set_active_label(9)
    brush = session.set_active_tool("paint")
    session.editing.set_brush_radius(5.0)
    spot = np.array([48.0, 8.0, 20.0])
    assert not before[20, 6:11, 46:51].any()
    for action in ("press", "release"):
        brush.handle(PointerEvent(PointerAction(action), geometry.index_to_world(spot), spot, 2, 20))
    painted = int((labels.array == 9).sum())
    assert painted == 13, painted
    assert session.undo_stack.count == 2 and document.modified

    assert session.undo() and int((labels.array == 9).sum()) == 0 and np.array_equal(labels.array, before)
    assert session.undo() and document.label_maps == []     # the model's result was one undo step
    assert session.redo() and session.redo() and int((labels.array == 9).sum()) == 13

    record = session.save_annotations(SaveTarget(777, "SessionTest", work / "datasets"), annotator="tester")
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(record.label)))
    counts = {int(v): int((saved == v).sum()) for v in np.unique(saved) if v}
    # The dataset numbers labels consecutively (nnU-Net); the dab was on an empty spot, so the
    # model's voxel counts come back unchanged beside the 13 painted voxels.
    assert sorted(counts.values()) == sorted([*model_counts.values(), 13]), (counts, model_counts)
    assert not document.modified
    session.close()
    print(json.dumps({"qt": "PySide6" in sys.modules or "PyQt5" in sys.modules, "counts": counts,
                      "label": str(record.label)}))
    '''
)


def test_headless_session_opens_runs_a_model_edits_undoes_and_saves(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCENARIO, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["qt"] is False  # no Qt was imported by the session, the model run, editing or saving
    assert Path(report["label"]).is_file() and 13 in report["counts"].values()


def _session() -> StudySession:
    geometry = Geometry((20, 16, 8), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    return StudySession(Document(Volume(np.zeros(geometry.shape, np.int16), geometry, "CT")))


def test_prompt_history_keeps_order_and_checks_prompts():
    session = _session()
    seen = []
    session.prompts_changed.connect(lambda: seen.append(len(session.prompts)))
    first = session.add_prompt(PromptRecord("point", [(1, 2, 3)], label_value=1, model="sam:1"))
    second = session.add_prompt(PromptRecord("box", [(0, 0, 0), (4, 5, 6)], positive=False))
    assert session.prompts == [first, second] and first.points == ((1.0, 2.0, 3.0),) and seen == [1, 2]
    with pytest.raises(ValueError, match="two corners"):
        PromptRecord("box", [(0, 0, 0)])
    with pytest.raises(ValueError, match="unknown prompt kind"):
        PromptRecord("lasso", [(0, 0, 0)])
    session.clear_prompts()
    assert session.prompts == [] and seen == [1, 2, 0]


def test_a_window_display_model_is_reset_for_each_study_and_shared():
    display = DisplayModel()
    display.set_volume_display(preset="MIP", opacity_shift=0.5, quality="best", surface_opacity=0.05)
    assert display.volume.surface_opacity == 0.1  # clamped
    session = StudySession(_session().document, display=display)
    assert session.display is display
    # a new study: the modality's 3D preset again, the user's quality choice kept
    assert display.volume.preset is None and display.volume.opacity_shift == 0.0 and display.volume.quality == "best"
    with pytest.raises(ValueError, match="quality"):
        display.set_volume_display(quality="ultra")


def test_active_tool_and_label_go_through_the_session():
    session = _session()
    changes = []
    session.active_tool_changed.connect(changes.append)
    paint = session.set_active_tool("paint")
    assert session.active_tool is paint is session.tool("paint") and changes == [paint]
    session.set_active_label(3)
    assert session.active_label == 3 == session.editing.session.active_value
    session.set_active_tool(None)
    assert session.active_tool is None and changes == [paint, None]
