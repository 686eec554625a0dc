"""Brush kernels in mm and stroke interpolation (expectations computed by brute force here)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from medviewer.imaging.brush import brush_kernel, index_to_plane, place_kernel, slice_region, stroke_centers


def _count_points_in_ellipse(radius: float, spacing_a: float, spacing_b: float) -> int:
    reach_a, reach_b = int(radius / spacing_a) + 2, int(radius / spacing_b) + 2
    return sum(
        1
        for a in range(-reach_a, reach_a + 1)
        for b in range(-reach_b, reach_b + 1)
        if (a * spacing_a) ** 2 + (b * spacing_b) ** 2 <= radius**2
    )


@pytest.mark.parametrize("radius, expected", [(1.0, 5), (2.0, 13), (5.0, 81), (10.0, 317)])
def test_disc_on_unit_pixels_has_gauss_circle_count(radius, expected):
    # Gauss circle problem N(r): 5, 13, 81, 317 integer points with x^2 + y^2 <= r^2.
    kernel = brush_kernel(radius, (1.0, 1.0, 3.0), view_axis=2)
    assert kernel.shape == (1, 2 * int(radius) + 1, 2 * int(radius) + 1)
    assert int(kernel.sum()) == expected == _count_points_in_ellipse(radius, 1.0, 1.0)


def test_disc_respects_anisotropic_spacing_in_each_view():
    spacing = (0.7, 0.7, 2.5)  # x, y, z
    axial = brush_kernel(5.0, spacing, view_axis=2)
    coronal = brush_kernel(5.0, spacing, view_axis=1)  # plane (z, x)
    sagittal = brush_kernel(5.0, spacing, view_axis=0)  # plane (z, y)
    assert axial.shape[0] == 1 and coronal.shape[1] == 1 and sagittal.shape[2] == 1
    assert int(axial.sum()) == _count_points_in_ellipse(5.0, 0.7, 0.7)
    assert int(coronal.sum()) == _count_points_in_ellipse(5.0, 2.5, 0.7)
    assert int(sagittal.sum()) == int(coronal.sum())
    # 5 mm reaches 2 slices of 2.5 mm each way, 7 pixels of 0.7 mm
    assert coronal.shape == (5, 1, 15)


def test_sphere_count_matches_brute_force():
    spacing = (1.0, 1.0, 2.0)
    radius = 10.0
    expected = sum(
        1
        for x, y, z in itertools.product(range(-10, 11), range(-10, 11), range(-5, 6))
        if x * x + y * y + (2 * z) ** 2 <= 100
    )
    kernel = brush_kernel(radius, spacing)
    assert kernel.shape == (11, 21, 21)
    assert int(kernel.sum()) == expected
    # sanity against the ellipsoid volume 4/3 pi r^3 / voxel volume
    assert abs(expected - 4 / 3 * math.pi * 1000 / 2) / expected < 0.05


def test_tiny_radius_paints_one_voxel():
    assert int(brush_kernel(0.1, (1.0, 1.0, 1.0), 2).sum()) == 1


def test_place_kernel_clips_at_borders():
    kernel = brush_kernel(2.0, (1.0, 1.0, 1.0), view_axis=2)
    region, clipped = place_kernel(kernel, (0, 0, 0), (3, 10, 10))
    assert region == (slice(0, 1), slice(0, 3), slice(0, 3))
    assert clipped.shape == (1, 3, 3) and int(clipped.sum()) == 6  # quarter disc incl. axes: 13 -> 6
    assert place_kernel(kernel, (0, -5, 0), (3, 10, 10)) is None


def test_stroke_centres_leave_no_gap():
    centres = stroke_centers(np.array([0.0, 0.0, 3.0]), np.array([40.0, 13.0, 3.0]), step_voxels=1.0)
    assert tuple(centres[-1]) == (40, 13, 3)
    steps = np.abs(np.diff(centres, axis=0)).max(axis=1)
    assert steps.max() == 1 and len(centres) == 40


def test_plane_helpers():
    assert slice_region((4, 5, 6), 1, 2) == (slice(0, 4), slice(2, 3), slice(0, 6))
    np.testing.assert_array_equal(index_to_plane(np.array([[1.0, 2.0, 3.0]]), 2), [[2.0, 1.0]])
    np.testing.assert_array_equal(index_to_plane(np.array([[1.0, 2.0, 3.0]]), 1), [[3.0, 1.0]])
    np.testing.assert_array_equal(index_to_plane(np.array([[1.0, 2.0, 3.0]]), 0), [[3.0, 2.0]])
