"""DICOM SEG export round trip over a small CT series built from pydicom's CT_small.dcm."""

from __future__ import annotations

import copy

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medviewer.core import Geometry, LabelMap, LabelTable
from medviewer.core.errors import MedviewerError
from medviewer.io.dicom_seg import export_dicom_seg, series_files

SLICES = 5
SLICE_SPACING = 2.5


@pytest.fixture
def ct_series(tmp_path):
    """Five slices of CT_small stacked along the slice normal, written in shuffled order."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid = generate_uid()
    orientation = np.asarray(template.ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    origin = np.asarray(template.ImagePositionPatient, float)
    folder = tmp_path / "series"
    folder.mkdir()
    for n in (3, 0, 4, 1, 2):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        ds.ImagePositionPatient = [float(v) for v in origin + n * SLICE_SPACING * normal]
        ds.save_as(folder / f"slice{n}.dcm")
    row_spacing, col_spacing = (float(v) for v in template.PixelSpacing)
    direction = np.stack([orientation[:3], orientation[3:], normal], axis=1)
    geometry = Geometry.from_matrix((template.Columns, template.Rows, SLICES), (col_spacing, row_spacing, SLICE_SPACING),
                                    origin, direction)
    return folder, series_uid, geometry


def _labels(geometry: Geometry) -> LabelMap:
    array = np.zeros(geometry.shape, np.uint8)
    array[1, 10:20, 30:50] = 4  # 200 voxels of "liver" on slice 1
    array[3, 60:64, 60:65] = 9  # 20 voxels of "lesion" on slice 3
    array[3, 10:12, 30:31] = 4  # 2 more liver voxels
    return LabelMap(array, geometry, LabelTable.from_names({4: "liver", 9: "lesion"}))


def test_export_round_trip_by_source_instance(ct_series, tmp_path):
    folder, series_uid, geometry = ct_series
    label_map = _labels(geometry)
    files = series_files([folder], series_uid)
    assert len(files) == SLICES
    out = export_dicom_seg(label_map, files, tmp_path / "seg.dcm", algorithm=("liver-net", "1.0"))
    seg = hd.seg.segread(out)
    assert seg.SeriesDescription == "medviewer segmentation"
    assert [seg.get_segment_description(n).segment_label for n in (1, 2)] == ["liver", "lesion"]
    assert seg.get_segment_description(1).algorithm_type == hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    sources = sorted((pydicom.dcmread(f) for f in files), key=lambda ds: ds.InstanceNumber)
    for k, ds in enumerate(sources):
        expected = np.zeros(label_map.array[k].shape, np.uint8)
        expected[label_map.array[k] == 4] = 1
        expected[label_map.array[k] == 9] = 2
        if not expected.any():
            continue  # empty frames are omitted
        pixels = seg.get_pixels_by_source_instance([ds.SOPInstanceUID], combine_segments=True)
        np.testing.assert_array_equal(pixels[0], expected)
    # the SEG references the same patient/study as its source (it goes back to the archive)
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID


def test_manual_labels_and_errors(ct_series, tmp_path):
    folder, series_uid, geometry = ct_series
    files = series_files([folder])
    out = export_dicom_seg(_labels(geometry), files, tmp_path / "manual.dcm")
    seg = hd.seg.segread(out)
    assert seg.get_segment_description(1).algorithm_type == hd.seg.SegmentAlgorithmTypeValues.MANUAL
    with pytest.raises(MedviewerError, match="empty"):
        export_dicom_seg(LabelMap.empty(geometry), files, tmp_path / "x.dcm")
    resampled = geometry.replace(spacing=(geometry.spacing[0], geometry.spacing[1], 1.0))
    with pytest.raises(MedviewerError, match="resampled"):
        export_dicom_seg(_labels(resampled), files, tmp_path / "x.dcm")
    shifted = geometry.replace(origin=tuple(np.asarray(geometry.origin) + [0.0, 0.0, 0.5]))
    with pytest.raises(MedviewerError, match="does not lie on the label map's grid"):
        export_dicom_seg(_labels(shifted), files, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()
