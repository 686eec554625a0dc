"""The window's modified mark follows the undo history (issue 12): undoing back to the saved state is unmodified.

Undo back to the state last saved (or opened) clears the ``*`` and closing or opening
another study asks nothing; redo past it sets the ``*`` again; saving moves the clean
point. Uses the fixtures of ``test_unsaved_changes`` (the Save/Discard question is answered
programmatically and counted).
"""

from __future__ import annotations

import pytest

from tests.ui.editing_gui_helpers import drag
from tests.ui.test_unsaved_changes import answers, open_and_wait, paint, window  # noqa: F401  (fixtures)

pytestmark = pytest.mark.gui


def test_undo_back_to_the_opened_state_clears_the_mark_and_closing_asks_nothing(window, qtbot, answers):
    document = open_and_wait(window, qtbot, "/data/first")
    paint(window, qtbot)
    assert "*" in window.windowTitle()
    window.editing.undo_action.trigger()
    assert not document.modified and not document.active_label_map.array.any()
    assert "*" not in window.windowTitle()
    window.editing.redo_action.trigger()
    assert document.modified and "*" in window.windowTitle()
    window.editing.undo_action.trigger()
    window.close()
    assert not window.isVisible() and answers.asked == 0


def test_saving_moves_the_clean_point(window, qtbot, answers):
    document = open_and_wait(window, qtbot, "/data/first")
    paint(window, qtbot)
    assert window.editing.save_annotations()
    assert not document.modified and "*" not in window.windowTitle()
    view = window.slice_views[0]
    window.editing.activate_tool("paint")
    drag(view, [(40, 60, view.slice_index), (56, 60, view.slice_index)])  # a second stroke elsewhere
    window.set_interaction_mode("crosshair")
    assert document.modified and "*" in window.windowTitle()
    window.editing.undo_action.trigger()  # back to the saved state
    assert not document.modified and "*" not in window.windowTitle()
    window.editing.undo_action.trigger()  # before the save: a change again
    assert document.modified and "*" in window.windowTitle()
    answers.queue.append("cancel")
    window.close()
    assert window.isVisible() and answers.asked == 1
    window.editing.redo_action.trigger()
    second = open_and_wait(window, qtbot, "/data/second")
    assert answers.asked == 1 and second is not document and not second.modified
