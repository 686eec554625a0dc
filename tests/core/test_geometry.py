import numpy as np
import pytest

from medviewer.core.errors import GeometryMismatchError
from medviewer.core.geometry import Geometry


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))[None, :]
    if rng.random() < 0.5:
        q[:, 0] *= -1  # include improper (mirrored) directions, as real scanners produce
    return q


@pytest.mark.parametrize("seed", range(20))
def test_index_world_round_trip_random_directions(seed):
    rng = np.random.default_rng(seed)
    geometry = Geometry.from_matrix(
        rng.integers(1, 300, size=3), rng.uniform(0.2, 5.0, size=3), rng.uniform(-300, 300, size=3), random_rotation(rng)
    )
    index = rng.uniform(-10, 310, size=(50, 3))
    world = geometry.index_to_world(index)
    np.testing.assert_allclose(geometry.world_to_index(world), index, atol=1e-9)
    # Single points behave like arrays of one.
    np.testing.assert_allclose(geometry.index_to_world(index[0]), world[0])


def test_index_to_world_matches_itk_formula():
    direction = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)
    geometry = Geometry.from_matrix((10, 20, 30), (0.5, 2.0, 3.0), (1.0, 2.0, 3.0), direction)
    # world = origin + D @ (spacing * index)
    expected = np.array([1.0, 2.0, 3.0]) + direction @ (np.array([0.5, 2.0, 3.0]) * np.array([2, 3, 4]))
    np.testing.assert_allclose(geometry.index_to_world([2, 3, 4]), expected)
    assert geometry.shape == (30, 20, 10)
    assert geometry.orientation_code() == "PSL"


@pytest.mark.parametrize(
    "direction, code",
    [
        ((1, 0, 0, 0, 1, 0, 0, 0, 1), "LPS"),
        ((-1, 0, 0, 0, -1, 0, 0, 0, 1), "RAS"),
        ((1, 0, 0, 0, 0, 1, 0, -1, 0), "LIP"),  # DICOM coronal: rows go L, columns go I
        ((0, 0, -1, 1, 0, 0, 0, -1, 0), "PIR"),  # DICOM sagittal
    ],
)
def test_orientation_code(direction, code):
    geometry = Geometry((2, 2, 2), direction=direction)
    assert geometry.orientation_code() == code
    assert not geometry.is_oblique()
    assert geometry.orientation_label() == code


def test_oblique_is_reported_with_closest_code():
    angle = np.deg2rad(15)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    geometry = Geometry.from_matrix((4, 4, 4), (1, 1, 1), (0, 0, 0), rotation)
    assert geometry.is_oblique()
    assert geometry.orientation_label() == "oblique"
    assert geometry.orientation_code() == "LPS"
    assert geometry.closest_axis_permutation() == ((0, 1, 2), (1, 1, 1))


def test_closest_axis_permutation_for_sagittal():
    geometry = Geometry((4, 5, 6), direction=(0, 0, -1, 1, 0, 0, 0, -1, 0))
    axes, signs = geometry.closest_axis_permutation()
    # world L runs along k (decreasing), P along i, S along j (decreasing)
    assert axes == (2, 0, 1)
    assert signs == (-1, 1, -1)


def test_is_close_and_differences():
    a = Geometry((10, 10, 10), (1, 1, 1), (0, 0, 0))
    assert a.is_close(a.replace(origin=(0, 0, 5e-5)))
    b = a.replace(origin=(0, 0, 1.0))
    assert not a.is_close(b)
    assert a.differences(b) == ["origin (0, 0, 1) != (0, 0, 0)"]
    with pytest.raises(GeometryMismatchError, match="origin"):
        a.require_match(b, path="labels.nii.gz")


def test_invalid_geometry_is_refused():
    with pytest.raises(ValueError):
        Geometry((0, 1, 1))
    with pytest.raises(ValueError):
        Geometry((1, 1, 1), spacing=(1, 0, 1))
    with pytest.raises(ValueError):
        Geometry((1, 1, 1), direction=(1, 0, 0, 1, 0, 0, 0, 0, 1))


def test_dict_round_trip_and_bounds():
    geometry = Geometry((3, 4, 5), (0.5, 0.5, 2), (-10, 5, 7), (1, 0, 0, 0, -1, 0, 0, 0, 1))
    assert Geometry.from_dict(geometry.to_dict()) == geometry
    low, high = geometry.world_bounds()
    np.testing.assert_allclose(low, [-10, 3.5, 7])
    np.testing.assert_allclose(high, [-9, 5, 15])
    np.testing.assert_allclose(Geometry.for_array((5, 4, 3)).size, (3, 4, 5))
