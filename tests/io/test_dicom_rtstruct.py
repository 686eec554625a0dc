"""RT structure sets: contours filled on the image grid, holes kept, overlapping structures in separate layers."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from medviewer.core.errors import GeometryMismatchError, MedviewerError
from medviewer.io import read_label_layers, read_label_map, read_volume
from medviewer.io.dicom_rtstruct import RT_STRUCTURE_SET_STORAGE, is_rtstruct, read_rtstruct, referenced_series_uids

from tests.io.synthetic_dicom import _base_dataset
from tests.io.test_dicom_seg import write_ct_series


def rectangle(geometry, i0, i1, j0, j1, k):
    """A closed contour through the index-space corners (i0, j0)..(i1, j1) on slice k, in world mm."""
    corners = [(i0, j0, k), (i1, j0, k), (i1, j1, k), (i0, j1, k)]
    return geometry.index_to_world(np.asarray(corners, float)).ravel().tolist()


def write_rtstruct(path, series_uid, frame_uid, rois) -> None:
    """``rois``: (number, name, colour, [(geometric type, contour data), ...]) in the order given."""
    ds = _base_dataset(RT_STRUCTURE_SET_STORAGE, "RTSTRUCT", generate_uid(), generate_uid())
    ds.StructureSetLabel = "Reference"
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    study = Dataset()
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    ds.StructureSetROISequence, ds.ROIContourSequence = Sequence(), Sequence()
    for number, name, colour, contours in rois:
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, frame_uid
        ds.StructureSetROISequence.append(roi)
        item = Dataset()
        item.ReferencedROINumber, item.ROIDisplayColor = number, list(colour)
        item.ContourSequence = Sequence()
        for kind, data in contours:
            contour = Dataset()
            contour.ContourGeometricType, contour.NumberOfContourPoints = kind, len(data) // 3
            contour.ContourData = [round(v, 4) for v in data]  # as planning systems write them
            item.ContourSequence.append(contour)
        ds.ROIContourSequence.append(item)
    ds.save_as(path, enforce_file_format=True)


def write_study(tmp_path):
    """CT slices in ``tmp_path/ct`` and ``tmp_path/rtstruct.dcm`` (liver with a hole, lesion, a point, BODY around them)."""
    series_uid, geometry = write_ct_series(tmp_path / "ct")
    frame_uid = pydicom.dcmread(next((tmp_path / "ct").iterdir())).FrameOfReferenceUID
    g = geometry
    rois = [
        (3, "liver", (221, 130, 101), [
            ("CLOSED_PLANAR", rectangle(g, 29.5, 49.5, 9.5, 19.5, 1)),  # 20 x 10 voxels ...
            ("CLOSED_PLANAR", rectangle(g, 34.5, 39.5, 12.5, 14.5, 1)),  # ... with a 5 x 2 hole
            ("CLOSED_PLANAR", rectangle(g, 29.5, 49.5, 9.5, 19.5, 2)),  # 200 more, no hole
        ]),
        (7, "lesion", (255, 0, 0), [("CLOSED_PLANAR", rectangle(g, 59.5, 64.5, 59.5, 63.5, 3))]),  # 5 x 4
        (8, "marker", (0, 0, 255), [("POINT", g.index_to_world([50.0, 50.0, 2.0]).tolist())]),  # encloses nothing
        (9, "BODY", (0, 255, 0), [("CLOSED_PLANAR", rectangle(g, 4.5, 99.5, 4.5, 99.5, k)) for k in (1, 2, 3)]),
    ]
    write_rtstruct(tmp_path / "rtstruct.dcm", series_uid, frame_uid, rois)
    return tmp_path, series_uid, geometry


@pytest.fixture
def study(tmp_path):
    return write_study(tmp_path)


def test_contours_fill_voxels_and_overlaps_go_to_a_second_layer(study):
    folder, series_uid, geometry = study
    path = folder / "rtstruct.dcm"
    assert is_rtstruct(path) and referenced_series_uids(path) == {series_uid}
    volume = read_volume(folder / "ct")
    first, second = read_label_layers(path, volume.geometry)
    assert [first.table[v].name for v in first.table] == ["liver", "lesion"]
    assert first.voxel_count(1) == 190 + 200 and first.voxel_count(2) == 20
    assert first.array[1, 13, 36] == 0 and first.array[2, 13, 36] == 1  # the hole is only on slice 1
    assert first.array[1, 10, 30] == 1 and first.array[1, 10, 29] == 0 and first.array[1, 9, 30] == 0
    assert first.table[1].color == (221, 130, 101) and first.source == "RTSTRUCT"
    assert [second.table[v].name for v in second.table] == ["BODY"] and second.voxel_count(1) == 95 * 95 * 3
    assert first.name == "Reference (1 of 2)" and first.geometry == volume.geometry
    with pytest.raises(MedviewerError, match="overlap and need 2 label layers"):
        read_label_map(path, volume.geometry)


def test_contours_off_the_image_slices_are_refused(study, tmp_path):
    folder, series_uid, geometry = study
    between = [(1, "between", (1, 2, 3), [("CLOSED_PLANAR", rectangle(geometry, 9.5, 19.5, 9.5, 19.5, 1.5))])]
    write_rtstruct(tmp_path / "between.dcm", series_uid, "1.2.3", between)
    with pytest.raises(GeometryMismatchError, match="'between' does not lie on a slice"):
        read_rtstruct(tmp_path / "between.dcm", geometry)
    only_points = [(1, "marker", (1, 2, 3), [("POINT", geometry.index_to_world([5.0, 5.0, 1.0]).tolist())])]
    write_rtstruct(tmp_path / "points.dcm", series_uid, "1.2.3", only_points)
    with pytest.raises(MedviewerError, match="no closed contours"):
        read_rtstruct(tmp_path / "points.dcm", geometry)
    (tmp_path / "broken.dcm").write_bytes((folder / "rtstruct.dcm").read_bytes()[:700])
    with pytest.raises(MedviewerError, match="broken.dcm"):
        read_rtstruct(tmp_path / "broken.dcm", geometry)
