"""EditingController: saving sets the undo history's clean point; a Qt-free session gets it for free."""

from __future__ import annotations

import numpy as np

from medviewer.core import Document, Geometry, Volume
from medviewer.core.undo import UndoStack
from medviewer.services.annotations import SaveTarget
from medviewer.services.editing import EditingController
from medviewer.tools.base import PointerAction, PointerEvent


def _click(controller: EditingController, i: float, j: float, k: int) -> None:
    document = controller.document
    tool = controller.tool("paint")
    for action in ("press", "release"):
        index = np.array([i, j, k], float)
        tool.handle(PointerEvent(PointerAction(action), document.geometry.index_to_world(index), index, 2, k, "left"))


def test_save_sets_the_clean_point_and_undo_returns_to_it(tmp_path):
    geometry = Geometry((48, 40, 6), (0.8, 0.8, 2.0), (-20.0, -16.0, 0.0))
    document = Document(Volume(np.zeros(geometry.shape, np.int16), geometry, "CT"))
    stack = UndoStack()
    controller = EditingController(document, stack, autosave=False)
    assert document.history is stack and controller.undo_stack is stack
    _click(controller, 10, 10, 2)
    assert document.modified
    controller.save_annotations(SaveTarget(532, "Clean", tmp_path))
    assert not document.modified and stack.is_clean()
    _click(controller, 30, 30, 2)
    assert document.modified
    stack.undo()  # back to what was saved
    assert not document.modified
    stack.undo()  # before the save
    assert document.modified
    stack.redo()
    assert not document.modified
    controller.close()
    assert document.history is None and not document.modified


def test_a_model_result_is_undone_back_to_the_clean_point():
    from medviewer.ai.results import InferenceResult
    from medviewer.core import LabelMap
    from medviewer.services.inference import apply_result

    geometry = Geometry((16, 12, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    document = Document(Volume(np.zeros(geometry.shape, np.int16), geometry, "CT"))
    controller = EditingController(document, UndoStack(), autosave=False)
    proposal = np.zeros(geometry.shape, np.uint8)
    proposal[1, 2:6, 3:7] = 1
    result = InferenceResult("liver-net", "2", "segmentation", label_map=LabelMap(proposal, geometry, name="Liver"))
    apply_result(document, result, controller.undo_stack)
    assert document.modified and document.active_label_map is result.label_map
    with np.testing.assert_raises(ValueError):  # the model's array is the layer's now: read-only
        proposal[0, 0, 0] = 1
    controller.undo_stack.undo()
    assert not document.modified and document.label_maps == []
    controller.undo_stack.redo()
    assert document.modified and document.active_label_map.voxel_count(1) == 16
