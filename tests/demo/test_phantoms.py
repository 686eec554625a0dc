"""The synthetic chest CT phantom: reproducible, varied, anatomically sided, with exact ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from medviewer.core.detection import DetectionStatus
from medviewer.core.errors import OperationCancelled
from medviewer.core.jobs import CancelToken
from medviewer.demo.phantoms import (
    LABELS,
    ChestPhantomParams,
    generate_chest_ct,
    simulate_low_dose,
)

SMALL_SHAPE = (64, 128, 128)
SMALL_SPACING = (2.8, 2.8, 4.7)


@pytest.fixture(scope="module")
def small_case():
    return generate_chest_ct(ChestPhantomParams.from_seed(7), SMALL_SHAPE, SMALL_SPACING)


def test_same_seed_gives_bit_identical_volumes(small_case):
    again = generate_chest_ct(ChestPhantomParams.from_seed(7), SMALL_SHAPE, SMALL_SPACING)
    assert ChestPhantomParams.from_seed(7) == small_case.params
    assert again.volume.array.dtype == np.int16
    assert np.array_equal(again.volume.array, small_case.volume.array)
    assert np.array_equal(again.labels.array, small_case.labels.array)
    assert [d.to_dict() for d in again.nodules] == [d.to_dict() for d in small_case.nodules]
    assert again.volume.metadata.series_uid == small_case.volume.metadata.series_uid


def test_seeds_vary_anatomy_and_nodules():
    params = [ChestPhantomParams.from_seed(seed) for seed in range(12)]
    widths = {round(p.body_half_width, 3) for p in params}
    counts = [len(p.nodules) for p in params]
    diameters = [n.diameter_mm for p in params for n in p.nodules]
    kinds = {n.kind for p in params for n in p.nodules}
    assert len(widths) == 12
    assert all(3 <= c <= 8 for c in counts) and len(set(counts)) >= 3
    assert min(diameters) >= 4.0 and max(diameters) <= 30.0
    assert min(diameters) < 8.0 and max(diameters) > 18.0
    assert kinds == {"solid", "part_solid", "ground_glass"}
    assert len({round(p.noise_hu, 3) for p in params}) == 12


def test_label_map_shares_the_image_geometry(small_case):
    volume, labels = small_case.volume, small_case.labels
    assert labels.geometry == volume.geometry
    assert labels.array.shape == volume.array.shape == SMALL_SHAPE
    assert labels.array.dtype == np.uint8
    assert set(labels.present_values()) == set(LABELS)
    assert {v: labels.table[v].name for v in labels.table} == LABELS
    assert volume.modality == "CT" and volume.metadata.units == "HU"
    assert volume.metadata.patient_name == "PHANTOM^CHEST"
    assert volume.geometry.direction == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert volume.geometry.spacing == SMALL_SPACING


def test_right_lung_has_smaller_lps_x_than_left(small_case):
    geometry = small_case.volume.geometry
    centroids = {}
    for value in (1, 2):
        k, j, i = np.nonzero(small_case.labels.array == value)
        centroids[value] = geometry.index_to_world(np.array([i.mean(), j.mean(), k.mean()]))
    right, left = centroids[1], centroids[2]
    assert right[0] < -40.0 + small_case.params.body_offset[0]
    assert left[0] > 40.0 + small_case.params.body_offset[0]
    # The heart lies anterior to the spine (smaller LPS y) and to the patient's left (larger x).
    heart = geometry.index_to_world(np.argwhere(small_case.labels.array == 4).mean(axis=0)[::-1])
    spine = geometry.index_to_world(np.argwhere(small_case.labels.array == 7).mean(axis=0)[::-1])
    assert heart[1] < spine[1] - 30.0
    assert heart[0] > spine[0] + 5.0
    # Superior is +z: the lung apices are above the diaphragm and the heart.
    apex_k = np.nonzero(np.any(small_case.labels.array == 1, axis=(1, 2)))[0].max()
    heart_k = np.nonzero(np.any(small_case.labels.array == 4, axis=(1, 2)))[0].max()
    assert apex_k > heart_k


def test_nodule_boxes_contain_their_voxels_and_centres_match(small_case):
    geometry = small_case.volume.geometry
    components, count = ndimage.label(small_case.labels.array == 3)
    assert count == len(small_case.nodules) == len(small_case.nodule_specs)
    assert 3 <= count <= 8
    for detection in small_case.nodules:
        assert detection.label == "nodule"
        assert detection.status == DetectionStatus.ACCEPTED
        assert detection.source == "ground truth"
        lo, hi = detection.voxel_box(geometry)
        ids = np.unique(components[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1])
        ids = ids[ids > 0]
        assert len(ids) == 1
        voxels = np.argwhere(components == ids[0])[:, ::-1]  # (i, j, k)
        assert np.all(voxels >= lo) and np.all(voxels <= hi)
        centroid = geometry.index_to_world(voxels.mean(axis=0))
        assert np.all(np.abs(centroid - np.asarray(detection.center)) <= np.asarray(geometry.spacing))


def test_nodules_are_inside_the_lungs(small_case):
    labels = small_case.labels.array
    ring = ndimage.binary_dilation(labels == 3) & (labels != 3)
    around = labels[ring]
    assert np.mean((around == 1) | (around == 2)) > 0.9


def test_tissue_intensities_are_realistic():
    case = generate_chest_ct(ChestPhantomParams.from_seed(3), (40, 160, 160), (2.2, 2.2, 7.5))
    hu, labels = case.volume.array.astype(float), case.labels.array
    lung = hu[(labels == 1) | (labels == 2)]
    assert -900 < np.median(lung) < -780
    assert -60 < np.median(hu[labels == 4]) < 80  # heart (non-contrast blood)
    assert np.median(hu[labels == 6]) < -800  # airway lumen
    assert 150 < np.median(hu[labels == 7]) < 700  # vertebrae: cancellous with cortex
    assert np.percentile(hu[labels == 7], 99) > 600
    assert np.median(hu[:, :6, :6]) < -950  # air around the patient
    components, _ = ndimage.label(labels == 3)
    for spec, detection in zip(case.nodule_specs, case.nodules):
        world = np.asarray(detection.center)
        i, j, k = case.volume.geometry.world_to_voxel(world)
        nodule_hu = np.median(hu[components == components[k, j, i]])
        if spec.kind == "solid" and spec.diameter_mm > 12:
            assert nodule_hu > -250
        elif spec.kind == "ground_glass" and spec.diameter_mm > 12:
            assert np.median(lung) + 100 < nodule_hu < -300


def test_dense_lungs_variant_differs_systematically():
    standard = ChestPhantomParams.from_seed(11)
    dense = ChestPhantomParams.from_seed(11, variant="dense_lungs")
    assert standard.body_half_width == dense.body_half_width  # same patient
    assert dense.lung_hu > -650 > standard.lung_hu
    assert dense.dome_top_right_z > standard.dome_top_right_z
    assert all(n.diameter_mm >= 10.0 and n.lobulation == 0.0 for n in dense.nodules)
    case = generate_chest_ct(dense, (32, 96, 96), (3.7, 3.7, 9.4))
    lung = case.volume.array[(case.labels.array == 1) | (case.labels.array == 2)]
    assert -680 < np.median(lung) < -520
    with pytest.raises(ValueError, match="variant"):
        ChestPhantomParams.from_seed(1, variant="nonsense")


def test_anatomy_is_defined_in_millimetres_not_voxels():
    params = dataclasses.replace(ChestPhantomParams.from_seed(5), noise_hu=0.0)
    coarse = generate_chest_ct(params, (40, 100, 100), (3.58, 3.58, 7.5))
    fine = generate_chest_ct(params, (80, 200, 200), (1.79, 1.79, 3.75))
    for value in (1, 2, 4):
        v_coarse = coarse.labels.voxel_count(value) * coarse.volume.geometry.voxel_volume_mm3
        v_fine = fine.labels.voxel_count(value) * fine.volume.geometry.voxel_volume_mm3
        assert v_coarse == pytest.approx(v_fine, rel=0.05)
    # Every nodule is labelled on both grids (sub-voxel ones by one voxel), at the same place within a coarse voxel.
    assert coarse.nodule_specs == fine.nodule_specs == list(params.nodules)
    for spec, small in zip(coarse.nodule_specs, coarse.nodules):
        big = fine.nodules[fine.nodule_specs.index(spec)]
        assert np.all(np.abs(np.subtract(small.center, big.center)) <= coarse.volume.geometry.spacing)


def test_cancel_stops_generation():
    token = CancelToken()
    token.cancel()
    with pytest.raises(OperationCancelled):
        generate_chest_ct(ChestPhantomParams.from_seed(1), SMALL_SHAPE, SMALL_SPACING, cancel=token)


def test_simulate_low_dose_noise_scales_with_inverse_sqrt_dose():
    flat = np.zeros((8, 96, 96), dtype=np.int16)
    quarter = simulate_low_dose(flat, 0.25, seed=1, full_dose_noise_hu=10.0)
    tenth = simulate_low_dose(flat, 0.1, seed=1, full_dose_noise_hu=10.0)
    assert quarter.dtype == np.int16
    # Added noise: sigma * sqrt(1/f - 1) -> 17.3 HU at 25 %, 30 HU at 10 %.
    assert np.std(quarter) == pytest.approx(10.0 * np.sqrt(3.0), rel=0.05)
    assert np.std(tenth) == pytest.approx(30.0, rel=0.05)
    assert np.array_equal(quarter, simulate_low_dose(flat, 0.25, seed=1, full_dose_noise_hu=10.0))
    assert not np.array_equal(quarter, simulate_low_dose(flat, 0.25, seed=2, full_dose_noise_hu=10.0))
    assert np.array_equal(simulate_low_dose(flat, 1.0, seed=1), flat)
    with pytest.raises(ValueError):
        simulate_low_dose(flat, 0.0, seed=1)


def test_noise_has_the_requested_level():
    params = dataclasses.replace(ChestPhantomParams.from_seed(2), noise_hu=15.0)
    noisy = generate_chest_ct(params, (12, 128, 128), (2.8, 2.8, 25.0))
    clean = generate_chest_ct(dataclasses.replace(params, noise_hu=0.0), (12, 128, 128), (2.8, 2.8, 25.0))
    assert np.array_equal(noisy.labels.array, clean.labels.array)
    difference = noisy.volume.array.astype(float) - clean.volume.array.astype(float)
    inside = clean.volume.array > -900  # away from the -1024 clip of air
    assert np.std(difference[inside]) == pytest.approx(15.0, rel=0.05)
    assert abs(np.mean(difference[inside])) < 0.5
    fine = generate_chest_ct(params, (4, 256, 256), (1.4, 1.4, 75.0))
    fine_clean = generate_chest_ct(dataclasses.replace(params, noise_hu=0.0), (4, 256, 256), (1.4, 1.4, 75.0))
    fine_difference = fine.volume.array.astype(float) - fine_clean.volume.array.astype(float)
    body = fine_clean.volume.array > -900
    assert np.std(fine_difference[body]) == pytest.approx(15.0, rel=0.05)  # correlated noise, same level


def test_radiograph_line_integrals_and_orientation(small_case):
    from medviewer.core import Geometry, Volume
    from medviewer.demo.phantom_radiograph import MU_WATER_PER_MM, chest_radiograph, projection_along_y

    # A water slab 12 voxels (of 2 mm) deep in air: the line integral is mu_water * 24 mm.
    array = np.full((3, 20, 5), -1000, dtype=np.int16)
    array[:, 4:16, :] = 0
    water = Volume(array, Geometry.for_array(array.shape, spacing=(1.0, 2.0, 3.0)), "CT")
    assert np.allclose(projection_along_y(water), MU_WATER_PER_MM * 24.0)
    assert np.allclose(projection_along_y(water, max_world_y=19.0), MU_WATER_PER_MM * 12.0)  # stops at j = 9
    tilted = Volume(array, Geometry.for_array(array.shape, direction=(0, 1, 0, 1, 0, 0, 0, 0, -1)), "CT")
    with pytest.raises(ValueError, match="identity"):
        projection_along_y(tilted)

    image, spacing = chest_radiograph(small_case.volume)
    assert image.dtype == np.uint16 and image.max() <= 4095 and spacing == (2.8, 2.8)
    assert image.shape == (round(64 * 4.7 / 2.8), 128)
    # Rows run head to feet: the heart (label 4) is low in the image, on the patient's left (high column).
    heart = small_case.labels.array == 4
    heart_rows = image.shape[0] - 1 - np.nonzero(heart.any(axis=(1, 2)))[0] * 4.7 / 2.8
    assert heart_rows.mean() > image.shape[0] / 2
    columns = np.nonzero(heart.any(axis=(0, 1)))[0]
    assert columns.mean() > 64


def test_low_dose_noise_grows_with_patient_thickness():
    # Two slices of water discs, 100 mm and 300 mm across: the thicker slice gets exp(mu * 200 mm / 2) more noise.
    size, spacing = 160, 2.0
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5) * spacing
    volume = np.full((2, size, size), -1000.0, dtype=np.float32)  # float: no rounding noise
    volume[0][radius < 50.0] = 0
    volume[1][radius < 150.0] = 0
    noisy = simulate_low_dose(volume, 0.5, seed=3, full_dose_noise_hu=2.0, spacing=(spacing, spacing, 5.0))
    centre = radius < 40.0
    assert noisy.dtype == np.float32
    added = (noisy - volume)[:, centre]
    ratio = np.std(added[1]) / np.std(added[0])
    assert ratio == pytest.approx(np.exp(0.019 * 200.0 / 2.0), rel=0.05)
