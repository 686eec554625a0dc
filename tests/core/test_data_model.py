import numpy as np
import pytest

from medviewer.core import Detection, DetectionStatus, Document, Geometry, LabelMap, LabelTable, Volume
from medviewer.core.errors import GeometryMismatchError


@pytest.fixture
def volume():
    geometry = Geometry((8, 6, 4), (0.5, 0.5, 2.0), (10.0, -20.0, 5.0))
    return Volume(np.arange(4 * 6 * 8, dtype=np.int16).reshape(4, 6, 8), geometry, "CT")


def test_label_map_refuses_other_geometry(volume):
    other = volume.geometry.replace(spacing=(0.5, 0.5, 2.5))
    with pytest.raises(GeometryMismatchError, match="spacing"):
        LabelMap.matching(np.zeros(volume.array.shape, np.uint8), other, volume.geometry, path="seg.nii.gz")
    with pytest.raises(GeometryMismatchError, match=r"shape \(4, 6, 7\)"):
        LabelMap(np.zeros((4, 6, 7), np.uint8), volume.geometry)
    with pytest.raises(GeometryMismatchError, match="integers"):
        LabelMap(np.full(volume.array.shape, -1, np.int32), volume.geometry)


def test_label_table_defaults_and_lut(volume):
    array = np.zeros(volume.array.shape, np.uint8)
    array[1, 2, 3] = 3
    label_map = LabelMap(array, volume.geometry)
    assert list(label_map.table) == [3]
    label_map.table.add(1, "lung", (255, 0, 0))
    label_map.table[3].visible = False
    lut = label_map.table.lookup_table()
    assert lut.shape == (4, 4)
    assert tuple(lut[1]) == (255, 0, 0, 255)
    assert lut[0, 3] == 0 and lut[3, 3] == 0
    assert LabelTable.from_dict(label_map.table.to_dict()).to_dict() == label_map.table.to_dict()
    assert label_map.voxel_count(3) == 1


def test_document_refuses_mismatched_labels_and_emits_events(volume):
    doc = Document(volume)
    events = []
    doc.label_maps_changed.connect(lambda: events.append("layers"))
    doc.labels_changed.connect(lambda lm, region: events.append(("voxels", region)))
    doc.modified_changed.connect(lambda flag: events.append(("modified", flag)))
    label_map = doc.add_label_map(LabelMap.empty(volume.geometry))
    assert doc.active_label_map is label_map
    region = (slice(0, 1), slice(0, 2), slice(0, 3))
    doc.notify_labels_changed(label_map, region)
    assert events == ["layers", ("voxels", region), ("modified", True)]
    wrong = LabelMap.empty(volume.geometry.replace(origin=(0, 0, 0)))
    with pytest.raises(GeometryMismatchError):
        doc.add_label_map(wrong)
    assert doc.label_maps == [label_map]


def test_cursor_moves_in_world_and_index(volume):
    doc = Document(volume)
    seen = []
    doc.cursor_moved.connect(seen.append)
    doc.set_cursor_index([1, 2, 3])
    np.testing.assert_allclose(doc.cursor, [10.5, -19.0, 11.0])
    np.testing.assert_array_equal(doc.cursor_index, [1, 2, 3])
    assert len(seen) == 1
    doc.set_cursor([10.5, -19.0, 11.0])  # same place: no event
    assert len(seen) == 1


def test_detection_voxel_box_and_round_trip(volume):
    geometry = volume.geometry
    detection = Detection.from_index_bounds(geometry, np.array([1.5, 0.5, 0.5]), np.array([4.5, 3.5, 2.5]), score=0.8)
    np.testing.assert_allclose(detection.size, [1.5, 1.5, 4.0])
    low, high = detection.voxel_box(geometry)
    np.testing.assert_array_equal(low, [2, 1, 1])
    np.testing.assert_array_equal(high, [4, 3, 2])
    data = detection.to_dict(geometry)
    assert data["voxel_min"] == [2, 1, 1]
    again = Detection.from_dict(data)
    assert again == detection
    assert again.status is DetectionStatus.PROPOSED


def test_document_detections_and_selection(volume):
    doc = Document(volume)
    detection = Detection(volume.geometry.index_to_world([2, 2, 2]), (2, 2, 2))
    doc.add_detections([detection])
    doc.select_detection(detection, move_cursor=True)
    np.testing.assert_array_equal(doc.cursor_index, [2, 2, 2])
    doc.remove_detection(detection)
    assert doc.selected_detection is None and doc.detections == []
