"""Which array axes form each view, radiological flips, letters and pixel<->index<->world maps."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core import Geometry
from medviewer.imaging.reslice import (
    AXIAL,
    CORONAL,
    PLANES,
    SAGITTAL,
    plane_of_single_slice,
    slice_mapping,
    slice_position_text,
)

LPS_IDENTITY = (1, 0, 0, 0, 1, 0, 0, 0, 1)
RAS_LIKE = (-1, 0, 0, 0, -1, 0, 0, 0, 1)  # NIfTI written from RAS: i runs to the right, j anterior


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    angle = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def screen_world_direction(geometry: Geometry, mapping, d_col: float, d_row: float) -> np.ndarray:
    """World displacement of moving (d_col, d_row) display pixels on screen."""
    a = geometry.index_to_world(mapping.display_to_index(1.0, 1.0, 0.0))
    b = geometry.index_to_world(mapping.display_to_index(1.0 + d_col, 1.0 + d_row, 0.0))
    return b - a


@pytest.mark.parametrize("direction", [LPS_IDENTITY, RAS_LIKE, (1, 0, 0, 0, 0, 1, 0, -1, 0), (0, 0, 1, 1, 0, 0, 0, 1, 0)])
def test_radiological_convention_for_any_axis_order(direction):
    geometry = Geometry((6, 7, 8), (0.5, 0.7, 2.0), (10, -20, 30), direction)
    expected = {
        # plane: (world axis + sign of screen right, of screen down)
        AXIAL: ((0, +1), (1, +1)),  # right = patient left (L), down = posterior
        CORONAL: ((0, +1), (2, -1)),  # right = L, down = inferior
        SAGITTAL: ((1, +1), (2, -1)),  # right = posterior (anterior on the left), down = inferior
    }
    for plane, ((right_axis, right_sign), (down_axis, down_sign)) in expected.items():
        mapping = slice_mapping(geometry, plane)
        right = screen_world_direction(geometry, mapping, 1, 0)
        down = screen_world_direction(geometry, mapping, 0, 1)
        assert np.argmax(np.abs(right)) == right_axis and np.sign(right[right_axis]) == right_sign
        assert np.argmax(np.abs(down)) == down_axis and np.sign(down[down_axis]) == down_sign
        # Physical aspect: a display pixel is col_spacing x row_spacing mm.
        assert np.linalg.norm(right) == pytest.approx(mapping.col_spacing)
        assert np.linalg.norm(down) == pytest.approx(mapping.row_spacing)
        assert not mapping.oblique


def test_letters_at_edges():
    letters = {p: slice_mapping(Geometry((4, 4, 4), direction=RAS_LIKE), p).letters for p in PLANES}
    assert letters[AXIAL] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert letters[CORONAL] == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert letters[SAGITTAL] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}


def test_slices_are_views_with_the_right_voxels():
    geometry = Geometry((4, 5, 6), (1, 1, 1), (0, 0, 0), RAS_LIKE)
    array = np.arange(6 * 5 * 4, dtype=np.int32).reshape(6, 5, 4)
    for plane in PLANES:
        mapping = slice_mapping(geometry, plane)
        for slice_index in (0, mapping.slice_count - 1):
            image = mapping.slice_of(array, slice_index)
            assert np.shares_memory(image, array)  # no copy of the volume
            assert image.shape == (mapping.rows, mapping.cols)
            for row in (0, mapping.rows - 1):
                for col in (0, mapping.cols - 1):
                    i, j, k = np.rint(mapping.display_to_index(col, row, slice_index)).astype(int)
                    assert image[row, col] == array[k, j, i]
                    back = mapping.index_to_display(np.array([i, j, k], float))
                    assert back.tolist() == [col, row, slice_index]


def test_oblique_volume_uses_closest_axes_and_is_flagged():
    matrix = rotation([1, 1, 0], 20)
    geometry = Geometry.from_matrix((10, 10, 10), (1, 1, 1), (0, 0, 0), matrix)
    mapping = slice_mapping(geometry, AXIAL)
    assert mapping.oblique and mapping.normal_axis == 2
    assert mapping.letters["right"] == "L" and mapping.letters["bottom"] == "P"


def test_plane_block_and_region_helpers():
    geometry = Geometry((10, 8, 6), (1, 1, 1), (0, 0, 0), LPS_IDENTITY)
    coronal = slice_mapping(geometry, CORONAL)  # rows = k flipped (superior up), cols = i
    region = (slice(1, 3), slice(2, 3), slice(4, 7))  # z 1..2, y 2, x 4..6
    assert coronal.region_hits_slice(region, 2) and not coronal.region_hits_slice(region, 3)
    assert coronal.region_hits_slice(None, 5)
    row0, col0, rows, cols = coronal.region_display_rect(region)
    assert (rows, cols) == (2, 3) and col0 == 4 and row0 == 6 - 3
    mask = np.zeros((6, 10), bool)  # array-order plane for view axis 1: (z, x)
    mask[1:3, 4:7] = True
    image = coronal.orient_plane(mask)
    assert np.argwhere(image).min(axis=0).tolist() == [row0, col0]


def test_single_slice_plane_and_position_text():
    assert plane_of_single_slice(Geometry((5, 5, 1))) == AXIAL
    coronal_radiograph = Geometry((5, 5, 1), direction=(1, 0, 0, 0, 0, 1, 0, -1, 0))
    assert plane_of_single_slice(coronal_radiograph) == CORONAL
    geometry = Geometry((4, 4, 10), (1, 1, 2.5), (0, 0, -10))
    mapping = slice_mapping(geometry, AXIAL)
    assert slice_position_text(geometry, mapping, np.zeros(3), 4) == "S 0.0 mm"


def test_projection_images_get_letters_only_from_patient_orientation():
    from medviewer.core import Volume, VolumeMetadata
    from medviewer.imaging.reslice import is_projection_image, projection_letters

    flat = np.zeros((1, 4, 5), np.uint16)
    assert is_projection_image(Volume(flat, Geometry((5, 4, 1)), "DX"))
    assert is_projection_image(Volume(flat, Geometry((5, 4, 1)), "", VolumeMetadata(extra={"two_dimensional": True})))
    assert not is_projection_image(Volume(flat, Geometry((5, 4, 1)), "CT"))  # a single CT slice is axial
    oriented = Geometry((5, 4, 1), direction=(1, 0, 0, 0, 0, 1, 0, -1, 0))
    assert not is_projection_image(Volume(flat, oriented, "DX"))  # a known orientation is used as is
    assert not is_projection_image(Volume(np.zeros((2, 4, 5)), Geometry((5, 4, 2)), "DX"))
    assert projection_letters(["L", "F"]) == {"right": "L", "left": "R", "bottom": "F", "top": "H"}
    assert projection_letters(["P", "FL"]) == {"right": "P", "left": "A", "bottom": "FL", "top": "HR"}
    assert projection_letters(None) == {"left": "", "right": "", "top": "", "bottom": ""}


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("width", [32, 21])  # 21: the last slices do not fill a slab
def test_slab_reader_gives_exactly_the_slices_across_x(dtype, width):
    from medviewer.imaging.reslice import SLAB_BYTES, SlabSliceReader

    rng = np.random.default_rng(3)
    array = rng.integers(0, 250, size=(7, 9, width)).astype(dtype)
    reader = SlabSliceReader()
    order = list(range(width)) + list(range(width - 1, -1, -3))  # forwards, then backwards in jumps
    for x in order:
        np.testing.assert_array_equal(reader.plane(array, 2, x), array[:, :, x])
        assert reader.slab_nbytes <= 7 * 9 * SLAB_BYTES  # one slab, never the volume
        block = (slice(2, 5), slice(1, 8))
        np.testing.assert_array_equal(reader.plane(array, 2, x, block), array[2:5, 1:8, x])
    # Planes across z and y are plain views of the array.
    assert np.shares_memory(reader.plane(array, 0, 3), array) and np.shares_memory(reader.plane(array, 1, 4), array)
    np.testing.assert_array_equal(reader.plane(array, 1, 4, (slice(1, 3), slice(0, 5))), array[1:3, 4, 0:5])


def test_slab_reader_follows_edits_of_the_array():
    from medviewer.imaging.reslice import SlabSliceReader

    labels = np.zeros((6, 8, 64), np.uint8)
    reader = SlabSliceReader()
    block = (slice(1, 6), slice(0, 8))
    assert not reader.plane(labels, 2, 17, block).any()  # slab of x 16..31 is read
    region = (slice(2, 4), slice(3, 5), slice(17, 19))
    labels[region] = 5
    reader.update(region)  # patched into the slab
    np.testing.assert_array_equal(reader.plane(labels, 2, 17, block), labels[1:6, :, 17])
    np.testing.assert_array_equal(reader.plane(labels, 2, 18, block), labels[1:6, :, 18])
    assert reader.plane(labels, 2, 18, block).sum() == 5 * 4
    labels[0, 0, 20] = 7  # outside the block: the slab does not hold it
    reader.update((slice(0, 1), slice(0, 1), slice(20, 21)))
    labels[:, :, 40] = 9  # another slab: nothing to patch
    reader.update((slice(None), slice(None), slice(40, 41)))
    assert (reader.plane(labels, 2, 40) == 9).all()
    labels[5, 7, 31] = 3
    reader.update(None)  # unknown change: read again
    assert reader.plane(labels, 2, 31)[5, 7] == 3
    widened = labels.astype(np.uint16)  # a new array object is noticed
    widened[4, 4, 31] = 300
    assert reader.plane(widened, 2, 31)[4, 4] == 300
