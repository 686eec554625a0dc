"""Fixtures for the viewer's GUI tests: a small CT phantom with known values and the real main window."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core import Geometry, Volume, VolumeMetadata

#: Known regions of the phantom (index ranges are inclusive-exclusive, array order z, y, x).
AIR, SOFT_TISSUE, BONE, LUNG = -1000, 40, 700, -850


def make_ct_phantom(spacing=(0.8, 0.8, 2.5), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> Volume:
    """A 64 x 48 x 24 CT-like volume: air around a soft-tissue body, a lung block and a bone block.

    The bone block sits on the patient's left (high i = +x = L for the identity direction).
    """
    shape = (24, 48, 64)
    array = np.full(shape, AIR, dtype=np.int16)
    array[2:22, 6:42, 4:60] = SOFT_TISSUE
    array[6:18, 12:30, 10:26] = LUNG  # patient right (low i)
    array[8:16, 20:34, 44:56] = BONE  # patient left (high i)
    geometry = Geometry((64, 48, 24), spacing, (-25.0, -20.0, -30.0), direction)
    metadata = VolumeMetadata(windows=[(40.0, 400.0)], units="HU", series_description="phantom CT")
    return Volume(array, geometry, "CT", metadata)


@pytest.fixture
def ct_volume() -> Volume:
    return make_ct_phantom()


@pytest.fixture
def viewer(qtbot):
    """The real main window (no settings written, no 3D view), shown at a fixed size."""
    from medviewer.ui.main_window import MainWindow

    window = MainWindow(persist_settings=False, enable_3d=False)
    qtbot.addWidget(window)
    window.resize(1500, 800)
    window.set_layout("1x3")
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.cancel_loading()
    window.close()


@pytest.fixture
def errors(monkeypatch):
    """Captures what would be shown in error dialogs."""
    from medviewer.ui import dialogs

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, message, details="": shown.append((title, message)))
    return shown


@pytest.fixture(scope="session", autouse=True)
def _import_ai_engine_first():
    """Import the AI engine (torch, MONAI) before any window opens.

    The AI panel imports it on a worker thread when a document opens; those imports
    hold the interpreter lock for seconds at a time, which would make the
    timing-sensitive GUI tests here flaky. Importing once up front makes the panel's
    warm-up instant.
    """
    from medviewer.services.inference import InferenceService

    InferenceService.warm_up()
