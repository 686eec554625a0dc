"""The Qt binding must not corrupt reference counts (PySide6 6.12.0 did, on Python < 3.12).

Each call of a void method there released one reference to None that it never took; a
session of a few thousand UI updates then aborted with "none_dealloc". pyproject.toml
excludes that release; this test catches a binding with the same defect.
"""

import sys

import pytest
from PySide6.QtCore import QCoreApplication, QEventLoop
from PySide6.QtWidgets import QLabel

pytestmark = pytest.mark.gui


def test_void_and_bool_calls_keep_reference_counts(qtbot):
    label = QLabel("x")
    qtbot.addWidget(label)
    label.show()
    calls = 2000
    none_before, true_before, false_before = (sys.getrefcount(v) for v in (None, True, False))
    for _ in range(calls):
        label.setText("y")  # void
        label.update()  # void
        label.isVisible()  # bool
        label.isHidden()  # bool
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 1)
    drift = [sys.getrefcount(v) - before for v, before in ((None, none_before), (True, true_before), (False, false_before))]
    # A defective binding loses 2 * calls references; ordinary bookkeeping moves a few.
    assert all(abs(d) < calls // 10 for d in drift), f"reference count drift of None/True/False: {drift}"
