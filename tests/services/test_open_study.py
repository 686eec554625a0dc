"""The open-study use case the GUI's background loader and the CLI call."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
import synthetic_dicom as sd  # noqa: E402

from medviewer.core.errors import EmptyFolderError, OperationCancelled  # noqa: E402
from medviewer.core.jobs import CancelToken  # noqa: E402
from medviewer.services.open_study import default_series, group_studies, load_series, open_path, scan_path  # noqa: E402


@pytest.fixture
def study_folder(tmp_path):
    positions = sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(5) * 2.0)
    sd.write_series(tmp_path, np.ones((5, 8, 8), np.int16), positions, series_number=1, description="Volume")
    sd.write_radiograph(tmp_path / "xray.dcm", np.ones((30, 30), np.uint16), pixel_spacing=(0.2, 0.2))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 4), np.uint8)), str(tmp_path / "mask.nii.gz"))
    return tmp_path


def test_scan_and_load_with_progress(study_folder):
    fractions = []
    found = scan_path(study_folder, lambda f, m="": fractions.append(f), CancelToken())
    assert len(found) == 3 and fractions[-1] == 1.0
    assert default_series(found).description == "Volume"  # the 3D series beats a larger 2D image
    volume = load_series(default_series(found), lambda f, m="": fractions.append(f), CancelToken())
    assert volume.geometry.size == (8, 8, 5) and np.all(volume.array == 1 - 1024)
    studies = group_studies(found)
    assert sum(len(s.series) for s in studies) == 3


def test_open_path_selects_and_cancels(study_folder):
    volume, chosen, found = open_path(study_folder, series=2)
    assert chosen is found[2] and volume.geometry.size == chosen.geometry.size
    token = CancelToken()
    token.cancel()
    with pytest.raises(OperationCancelled):
        open_path(study_folder, cancel=token)


def test_errors_pass_through(tmp_path):
    with pytest.raises(EmptyFolderError):
        scan_path(tmp_path)
