"""PatientOrientation (0020,0020) of images without ImageOrientationPatient reaches the volume's metadata.

Radiographs (DX/CR/MG/XA) and secondary captures have no place in patient space; the
directions of their rows and columns are all the viewer can show as edge letters.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.io import load, read_volume, scan
from medviewer.io.dicom_write import write_dicom_radiograph


def data_file(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pydicom-data)")
    return str(path)


def film() -> np.ndarray:
    return (np.arange(30 * 20, dtype=np.uint16).reshape(30, 20) * 3) % 4000


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # lower case is tolerated on reading
@pytest.mark.parametrize("orientation", [("L", "F"), ("A", "FR"), ("r", "h")])
def test_written_radiograph_keeps_its_patient_orientation(tmp_path, orientation):
    path = write_dicom_radiograph(film(), tmp_path / "film.dcm", (0.2, 0.2), patient_orientation=orientation)
    assert "ImageOrientationPatient" not in pydicom.dcmread(path)
    (series,) = scan(path)
    volume = load(series)
    assert volume.metadata.extra["patient_orientation"] == [code.upper() for code in orientation]
    np.testing.assert_array_equal(volume.array[0], film())
    assert np.allclose(volume.geometry.direction_matrix, np.eye(3))


@pytest.mark.parametrize("orientation", [("L", "X"), ("", "F")])
def test_malformed_patient_orientation_is_left_out(tmp_path, orientation):
    path = write_dicom_radiograph(film(), tmp_path / "film.dcm", (0.2, 0.2), patient_orientation=orientation)
    assert "patient_orientation" not in read_volume(path).metadata.extra


@pytest.mark.parametrize(("name", "expected"), [("RG1_UNCI.dcm", ["L", "F"]), ("RG3_UNCR.dcm", ["R", "F"])])
def test_real_computed_radiographs(name, expected):
    (series,) = scan(data_file(name))  # headers only: the metadata is ready before the pixels
    assert series.modality == "CR"
    assert series.plan.metadata.extra["patient_orientation"] == expected


@pytest.mark.parametrize("name", ["CT_small.dcm", "SC_rgb.dcm"])
def test_no_patient_orientation_for_oriented_slices_or_empty_tags(name):
    # CT_small has ImageOrientationPatient; SC_rgb has an empty PatientOrientation.
    (series,) = scan(data_file(name))
    assert "patient_orientation" not in series.plan.metadata.extra
