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


def _stored_differently(geometry: Geometry, axes, flips) -> Geometry:
    """``geometry``'s grid with index axis ``a`` stored as axis ``axes[a]`` (reversed where ``flips[a]``)."""
    direction = np.zeros((3, 3))
    spacing, size, far = [0.0] * 3, [0] * 3, np.zeros(3)
    for a, (target, flip) in enumerate(zip(axes, flips)):
        direction[:, target] = geometry.direction_matrix[:, a] * (-1 if flip else 1)
        spacing[target], size[target] = geometry.spacing[a], geometry.size[a]
        far[a] = geometry.size[a] - 1 if flip else 0
    return Geometry.from_matrix(size, spacing, geometry.index_to_world(far), direction)


def _resample_by_world(array, source: Geometry, target: Geometry) -> np.ndarray:
    """Nearest-voxel lookup through world coordinates (slow, independent of the code under test)."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in target.size), indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1).astype(float)
    found = np.rint(source.world_to_index(target.index_to_world(index))).astype(int)
    out = np.empty(target.shape, array.dtype)
    out[index[:, 2].astype(int), index[:, 1].astype(int), index[:, 0].astype(int)] = array[found[:, 2], found[:, 1], found[:, 0]]
    return out


@pytest.mark.parametrize(
    "axes, flips",
    [((0, 1, 2), (True, True, False)), ((0, 1, 2), (False, True, False)), ((2, 0, 1), (False, True, True)), ((1, 0, 2), (True, False, True))],
)
def test_label_map_stored_in_another_axis_order_is_reindexed_exactly(axes, flips):
    angle = 0.3  # an oblique image: the world lookup must still land on voxel centres
    direction = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    image = Geometry.from_matrix((9, 7, 5), (0.7, 0.9, 2.5), (-120.5, 33.25, -1234.5), direction)
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 6, image.shape).astype(np.uint8)
    stored_geometry = _stored_differently(image, axes, flips)
    stored = _resample_by_world(truth, image, stored_geometry)
    assert stored.shape != truth.shape or not np.array_equal(stored, truth)
    assert image.axis_mapping_from(stored_geometry) == (axes, flips)
    label_map = LabelMap.matching(stored, stored_geometry, image)
    assert label_map.geometry == image
    np.testing.assert_array_equal(label_map.array, truth)


def test_label_map_in_another_axis_order_but_shifted_is_refused(volume):
    stored = _stored_differently(volume.geometry, (0, 1, 2), (True, False, False))
    shifted = stored.replace(origin=tuple(np.add(stored.origin, (0.25, 0.0, 0.0))))  # half a voxel
    assert volume.geometry.axis_mapping_from(shifted) is None
    with pytest.raises(GeometryMismatchError, match="origin"):
        LabelMap.matching(np.zeros(volume.array.shape, np.uint8), shifted, volume.geometry)
    other_spacing = stored.replace(spacing=(0.5, 0.5, 2.2))
    assert volume.geometry.axis_mapping_from(other_spacing) is None
