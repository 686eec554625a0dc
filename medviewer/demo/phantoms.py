"""Deterministic synthetic chest CT phantoms with known ground truth.

The demo study and the training data of the built-in demo models come from here.
``ChestPhantomParams.from_seed(seed)`` draws an anatomy (body size and shape, lungs,
heart, spine, ribs, mediastinal vessels and airways, branching lung vessels, 3-8
nodules, noise level); ``generate_chest_ct(params, shape, spacing)`` renders it on a
voxel grid and returns the image, its label map and the nodule boxes.

Parameters and anatomy are defined in millimetres (``medviewer.demo.phantom_anatomy``;
label values, tissue codes and HU in ``medviewer.demo.phantom_tissues``), so a small grid at coarse spacing shows the same patient as the full-size demo grid.
Rendering is exactly reproducible: the same parameters, shape and spacing give a
bit-identical image.

Label values (``LABELS``) are stable: 1 right lung, 2 left lung, 3 nodule, 4 heart,
5 aorta, 6 airway (trachea and main bronchi), 7 spine (vertebrae), 8 ribs and
sternum. Lung labels include the vessels and small airways inside the lungs, as
usual for lung masks; nodule voxels carry label 3 only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medviewer.core.detection import Detection, DetectionStatus
from medviewer.core.geometry import Geometry
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.core.labels import LabelMap
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.demo.phantom_anatomy import (
    DIAPHRAGM_MM,
    SIDES,
    SKIN_MM,
    ChestAnatomy,
    ChestPhantomParams,
    NoduleSpec,
    Tube,
    ellipse_sd,
    segment_distance,
)
from medviewer.demo.phantom_tissues import (  # the label and tissue names are re-exported for callers
    _TISSUE_TO_LABEL,
    ABDOMEN,
    AIR_HU,
    CARTILAGE_HU,
    CSF_HU,
    CT_WINDOWS,
    DEFAULT_SHAPE,
    DEFAULT_SPACING,
    DISC_HU,
    HEART,
    LABEL_COLORS,
    LABELS,
    LUNG_L,
    LUNG_R,
    MEDIASTINUM,
    NODULE,
    NOISE_CORRELATION_MM,
    RIB,
    SKIN_HU,
    SPINE,
    TABLE,
    TABLE_HU,
    VARIANTS,
    WALL,
    chest_label_table,
)



# ---------------------------------------------------------------------------- result
@dataclass
class PhantomCase:
    """A rendered phantom: the CT, its ground-truth labels and nodule boxes.

    ``nodules`` are boxes in world mm (label "nodule", status ACCEPTED, source "ground
    truth") tight around each nodule's labelled voxels; ``nodule_specs`` (same order)
    say what each one is (diameter, kind). A nodule smaller than a voxel is labelled by
    the voxel that contains its centre; one outside the grid is left out.
    """

    volume: Volume
    labels: LabelMap
    nodules: list[Detection]
    nodule_specs: list[NoduleSpec]
    params: ChestPhantomParams

    @property
    def nodule_diameters_mm(self) -> list[float]:
        return [spec.diameter_mm for spec in self.nodule_specs]

    def nodule_records(self) -> list[dict]:
        """JSON-ready description of each nodule: box in world mm and voxel indices, diameter, kind."""
        records = []
        offset = self.params.world_offset()
        for detection, spec in zip(self.nodules, self.nodule_specs):
            record = detection.to_dict(self.volume.geometry)
            record.update(
                diameter_mm=spec.diameter_mm,
                kind=spec.kind,
                nodule_center_mm=[float(v) for v in np.asarray(spec.center) + offset],
            )
            records.append(record)
        return records


# ---------------------------------------------------------------------------- grid
class _Grid:
    """Voxel centres of the output grid in patient-frame mm, and window look-ups."""

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float], origin_patient: np.ndarray):
        self.shape = shape
        self.spacing = np.asarray(spacing, float)
        self.x = origin_patient[0] + spacing[0] * np.arange(shape[2])
        self.y = origin_patient[1] + spacing[1] * np.arange(shape[1])
        self.z = origin_patient[2] + spacing[2] * np.arange(shape[0])
        # Width (mm) of the partial-volume blend at edges: about one voxel.
        self.edge = float(np.cbrt(np.prod(self.spacing)))

    def _axis(self, coords: np.ndarray, step: float, lo: float, hi: float) -> slice | None:
        start = max(int(math.ceil((lo - coords[0]) / step)), 0)
        stop = min(int(math.floor((hi - coords[0]) / step)) + 1, len(coords))
        return slice(start, stop) if stop > start else None

    def window2d(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> tuple[slice, slice] | None:
        sx = self._axis(self.x, self.spacing[0], x_lo, x_hi)
        sy = self._axis(self.y, self.spacing[1], y_lo, y_hi)
        return None if sx is None or sy is None else (sy, sx)

    def window3d(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice] | None:
        sx = self._axis(self.x, self.spacing[0], lo[0], hi[0])
        sy = self._axis(self.y, self.spacing[1], lo[1], hi[1])
        sz = self._axis(self.z, self.spacing[2], lo[2], hi[2])
        return None if sx is None or sy is None or sz is None else (sz, sy, sx)

    def coords3d(self, window: tuple[slice, slice, slice]):
        sz, sy, sx = window
        return self.x[sx][None, None, :], self.y[sy][None, :, None], self.z[sz][:, None, None]


def _occupancy(sd: np.ndarray, edge: float) -> np.ndarray:
    """Fraction of a voxel inside a shape, from the signed distance of its centre."""
    return np.clip(0.5 - sd / edge, 0.0, 1.0)


def _blend(target: np.ndarray, occupancy: np.ndarray, value) -> None:
    """Partial-volume mix of ``value`` into ``target`` in place."""
    target += (occupancy * (value - target)).astype(target.dtype, copy=False)


def _allowed(*codes: int) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(codes)] = True
    return table


_IN_LUNG = _allowed(LUNG_R, LUNG_L)
_SOFT_SPACE = _allowed(LUNG_R, LUNG_L, MEDIASTINUM)
_OPEN_SPACE = _allowed(LUNG_R, LUNG_L, MEDIASTINUM, ABDOMEN)
_NOT_LUNG = _allowed(WALL, MEDIASTINUM, ABDOMEN)
_WALL_SPACE = _allowed(WALL, MEDIASTINUM)


def _paint_tube(
    grid: _Grid,
    hu: np.ndarray,
    tissue: np.ndarray,
    tube,
    value,
    *,
    grow: float = 0.0,
    allowed: np.ndarray | None = None,
    code: int | None = None,
    cortex: tuple[float, float, float] | None = None,
) -> None:
    """Paint a capsule (``tube`` grown by ``grow`` mm) into ``hu`` and optionally ``tissue``.

    ``cortex`` = (thickness, cortical HU, marrow HU) paints a bone with a dense shell
    instead of the uniform ``value``.
    """
    start, end = np.asarray(tube.start), np.asarray(tube.end)
    reach = max(tube.radius_start, tube.radius_end) + grow + grid.edge
    window = grid.window3d(np.minimum(start, end) - reach, np.maximum(start, end) + reach)
    if window is None:
        return
    x, y, z = grid.coords3d(window)
    dist, t = segment_distance(x, y, z, start, end)
    sd = dist - (tube.radius_start + t * (tube.radius_end - tube.radius_start) + grow)
    occupancy = _occupancy(sd, grid.edge)
    local_tissue = tissue[window]
    if allowed is not None:
        occupancy *= allowed[local_tissue]
    if cortex is not None:
        thickness, cortical, marrow = cortex
        value = marrow + (cortical - marrow) * np.clip((sd + thickness) / grid.edge + 0.5, 0.0, 1.0)
    _blend(hu[window], occupancy, value)
    if code is not None:
        local_tissue[occupancy > 0.5] = code


def _grow_tree(
    rng: np.random.Generator,
    root: np.ndarray,
    points: np.ndarray,
    root_radius: float,
    min_points: int,
    min_radius: float,
):
    """A branching tree that fills the region sampled by ``points``.

    Each branch owns a territory of points: it grows part of the way towards their
    centroid, then the territory is split in two across its longest axis and each half
    sprouts a child. Radii shrink with territory size (Murray-like), so trunks are thick
    at the hilum and twigs fine at the periphery. Returns ``Tube`` segments.
    """

    total = len(points)
    segments: list[Tube] = []
    stack = [(np.asarray(root, float), points, 0)]
    while stack:
        start, territory, depth = stack.pop()
        count = len(territory)
        radius = max(root_radius * (count / total) ** 0.4, min_radius)
        centroid = territory.mean(axis=0)
        if count <= min_points:
            segments.append(Tube(tuple(start), tuple(centroid), radius, radius * 0.8))
            continue
        fraction = 0.3 if depth == 0 else rng.uniform(0.35, 0.6)
        end = start + fraction * (centroid - start)
        segments.append(Tube(tuple(start), tuple(end), radius, radius * 0.95))
        centred = territory - centroid
        _, vectors = np.linalg.eigh(centred.T @ centred)
        projection = centred @ vectors[:, -1]
        # Split at a random quantile (35-65 %) along the territory's longest axis.
        kth = int(rng.uniform(0.35, 0.65) * (count - 1))
        order = np.argpartition(projection, kth)
        split = kth + 1
        first, second = territory[order[:split]], territory[order[split:]]
        if len(first) == 0 or len(second) == 0:
            segments.append(Tube(tuple(end), tuple(centroid), radius, radius * 0.8))
            continue
        stack.append((end, second, depth + 1))
        stack.append((end, first, depth + 1))
    return segments


def lung_vessel_trees(params: ChestPhantomParams) -> dict[str, list]:
    """Centre-line segments of the lung arteries, veins and bronchi (patient mm), by tree name.

    The trees depend on the anatomy only (not on noise or nodules), so they are cached
    for the last few anatomies: rendering one phantom at several resolutions, or with
    and without noise, grows them once.
    """
    key = dataclasses.replace(params, noise_hu=0.0, nodules=())
    return {name: list(segments) for name, segments in _cached_trees(key).items()}


@functools.lru_cache(maxsize=4)
def _cached_trees(params: ChestPhantomParams) -> dict[str, tuple]:

    anatomy = ChestAnatomy(params)
    trees: dict[str, list] = {}
    for side in SIDES:
        name = "right" if side < 0 else "left"
        for kind, roots, root_radius, count, min_points, min_radius in (
            ("arteries", anatomy.artery_roots, 6.5, params.vessel_points, 3, 0.45),
            ("veins", anatomy.vein_roots, 6.0, params.vessel_points, 3, 0.45),
            ("bronchi", anatomy.bronchus_roots, anatomy.bronchus_radii[side] * 0.85, 160, 6, 0.9),
        ):
            rng = np.random.default_rng(np.random.SeedSequence([params.seed, 0x7EE, side + 2, len(trees)]))
            points = anatomy.sample_lung_points(rng, side, count, inset=3.0)
            trees[f"{name} {kind}"] = tuple(_grow_tree(rng, roots[side], points, root_radius, min_points, min_radius))
    return trees


def _rib_tubes(anatomy) -> list[tuple[object, bool]]:
    """Rib and costal-cartilage segments: (Tube, is_bone)."""

    p = anatomy.params
    tubes: list[tuple[object, bool]] = []
    for number in range(1, 13):
        z_post = anatomy.first_vertebra_z - (number - 1) * anatomy.vertebra_pitch + 0.3 * anatomy.vertebra_pitch
        drop = 30.0 + 5.0 * number if number > 1 else 22.0
        radius = p.rib_radius * (0.8 if number <= 2 else 1.0)
        if number <= 7:
            phi_end = math.radians(32.0 + 2.0 * number)
        elif number <= 10:
            phi_end = math.radians(50.0 + 4.0 * (number - 8))
        else:
            phi_end = math.radians(110.0)
        phi_start = math.radians(158.0)
        for side in SIDES:
            points = [np.array([side * (anatomy.vertebra_a + 4.0), anatomy.vertebra_y + 0.4 * anatomy.vertebra_b, z_post])]
            steps = max(4, int(math.degrees(phi_start - phi_end) / 8.0))
            for phi in np.linspace(phi_start, phi_end, steps + 1):
                t = (phi_start - phi) / (phi_start - phi_end)
                z = z_post - drop * t**1.3
                offset = anatomy.wall_offset(z) - radius - 1.5
                a = anatomy.body_a * anatomy.body_scale(z) - offset
                b = (anatomy.body_b_front if math.cos(phi) > 0 else anatomy.body_b_back) - offset
                points.append(np.array([side * a * math.sin(phi), -b * math.cos(phi), z]))
            for start, end in zip(points[:-1], points[1:]):
                tubes.append((Tube(tuple(start), tuple(end), radius, radius), True))
            if number <= 7:  # costal cartilage to the sternum
                end = points[-1]
                sternum = np.array([side * 14.0, end[1] - 2.0, end[2] - 6.0])
                tubes.append((Tube(tuple(end), tuple(sternum), radius * 0.9, radius * 0.8), False))
    return tubes


# ---------------------------------------------------------------------------- rendering
def _background(grid: _Grid, anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Air and a curved carbon-fibre table under the patient (the same on every slice)."""
    hu = np.full(grid.shape[1:], AIR_HU, dtype=np.float32)
    tissue = np.zeros(grid.shape[1:], dtype=np.uint8)
    x = grid.x[None, :]
    y = grid.y[:, None]
    top = anatomy.body_b_back + 6.0 - x * x / 1200.0
    shell = ((y >= top) & (y < top + 3.0)) | ((y >= top + 22.0) & (y < top + 25.0))
    foam = (y >= top + 3.0) & (y < top + 22.0)
    across = np.abs(x) < 210.0
    hu[shell & across] = TABLE_HU
    hu[foam & across] = -950.0
    tissue[(shell | foam) & across] = TABLE
    return hu, tissue


def _render_slices(anatomy, grid: _Grid, hu: np.ndarray, tissue: np.ndarray, progress, cancel) -> None:
    """Body, chest wall, cavity, lungs, diaphragm and abdomen, heart, spine and sternum, slice by slice."""

    p = anatomy.params
    edge = grid.edge
    background_hu, background_tissue = _background(grid, anatomy)
    lung_low = min(anatomy.lung_bounds(side)[0][2] for side in SIDES)
    dome_high = max(anatomy.dome_top.values())
    heart_lo = anatomy.heart_center - anatomy.heart_half_extent - p.pericardial_fat - 2 * edge
    heart_hi = anatomy.heart_center + anatomy.heart_half_extent + p.pericardial_fat + 2 * edge
    stomach_center = np.array([0.45 * anatomy.cavity_a, -0.3 * anatomy.cavity_b_front, anatomy.dome_top[1] - 45.0])
    spleen_center = np.array([0.72 * anatomy.cavity_a, 0.5 * anatomy.cavity_b_back, anatomy.dome_top[1] - 40.0])
    sternum_top = anatomy.z_apex - 35.0
    sternum_bottom = anatomy.heart_center[2] - 25.0
    nz = grid.shape[0]
    wall_cache = None
    for k in range(nz):
        if cancel is not None and k % 8 == 0:
            cancel.raise_if_cancelled()
        if k % 16 == 0:
            progress(k / nz, "body and organs")
        z = float(grid.z[k])
        hu[k] = background_hu
        tissue[k] = background_tissue
        a_body = anatomy.body_a * float(anatomy.body_scale(z))
        window = grid.window2d(-a_body - 2 * edge, a_body + 2 * edge, -anatomy.body_b_front - 2 * edge, anatomy.body_b_back + 2 * edge)
        if window is None:
            continue
        sy, sx = window
        x = grid.x[sx][None, :]
        y = grid.y[sy][:, None]
        h = hu[k, sy, sx]
        t = tissue[k, sy, sx]
        wall_offset = float(anatomy.wall_offset(z))
        key = (a_body, wall_offset)
        if wall_cache is not None and wall_cache[0] == key:
            # Below the apices the chest wall is the same on every slice: reuse it.
            _, cached_h, cached_t, cavity = wall_cache
            h[...] = cached_h
            t[...] = cached_t
        else:
            body = anatomy.body_sd(x, y, z)
            _blend(h, _occupancy(body, edge), SKIN_HU)
            t[body < 0] = WALL
            _blend(h, _occupancy(body + SKIN_MM, edge), p.fat_hu)
            _blend(h, _occupancy(body + SKIN_MM + p.fat_thickness, edge), p.muscle_hu)
            cavity = body + wall_offset
            # Cavity contents by default: mediastinal fat near the midline, muscle laterally (thoracic inlet).
            fill = p.muscle_hu + (p.fat_hu - p.muscle_hu) * np.clip((75.0 - np.abs(x)) / 25.0, 0.0, 1.0)
            _blend(h, _occupancy(cavity, edge), fill)
            t[cavity < 0] = MEDIASTINUM
            paraspinal = np.maximum(anatomy.paraspinal_sd(x, y), cavity)
            _blend(h, _occupancy(paraspinal, edge), p.muscle_hu)
            t[paraspinal < 0] = WALL
            wall_cache = (key, h.copy(), t.copy(), cavity)

        # Lungs, diaphragm and upper abdomen, one side at a time.
        if lung_low - 2 * edge <= z:
            for side in SIDES:
                lo, hi = anatomy.lung_bounds(side)
                side_window = grid.window2d(lo[0] - edge, hi[0] + edge, lo[1] - edge, hi[1] + edge)
                if side_window is None:
                    continue
                wy = slice(max(side_window[0].start, sy.start) - sy.start, min(side_window[0].stop, sy.stop) - sy.start)
                wx = slice(max(side_window[1].start, sx.start) - sx.start, min(side_window[1].stop, sx.stop) - sx.start)
                if wy.stop <= wy.start or wx.stop <= wx.start:
                    continue
                xs, ys = x[:, wx], y[wy, :]
                hs, ts, cav = h[wy, wx], t[wy, wx], cavity[wy, wx]
                if z < dome_high + 2 * edge:
                    dome = anatomy.dome_z(xs, ys, side)
                    _blend(hs, _occupancy(np.maximum(cav, z - dome), edge), p.muscle_hu)
                    abdomen = np.maximum(cav, z - dome + DIAPHRAGM_MM)
                    inside = abdomen < 0
                    if np.any(abdomen < edge):
                        value = _abdomen_hu(p, anatomy, xs, ys, z, stomach_center, spleen_center)
                        _blend(hs, _occupancy(abdomen, edge), value)
                        ts[inside] = ABDOMEN
                if z <= anatomy.z_apex + 2 * edge:
                    lung = anatomy.lung_sd(xs, ys, z, side, cavity_sd=cav)
                    lung_value = p.lung_hu + p.lung_gradient_hu * np.clip(ys / anatomy.cavity_b_back, -1.0, 1.0)
                    _blend(hs, _occupancy(lung, edge), lung_value)
                    ts[lung < 0] = LUNG_R if side < 0 else LUNG_L

        # Heart inside its pericardial fat.
        if heart_lo[2] <= z <= heart_hi[2]:
            hw = grid.window2d(heart_lo[0], heart_hi[0], heart_lo[1], heart_hi[1])
            if hw is not None:
                hx = grid.x[hw[1]][None, :]
                hy = grid.y[hw[0]][:, None]
                hh, ht = hu[k][hw], tissue[k][hw]
                heart = anatomy.heart_sd(hx, hy, z)
                fat = _occupancy(heart - p.pericardial_fat, edge) * _SOFT_SPACE[ht]
                _blend(hh, fat, p.fat_hu)
                ht[fat > 0.5] = MEDIASTINUM
                muscle = _occupancy(heart, edge) * _OPEN_SPACE[ht]
                _blend(hh, muscle, p.blood_hu)
                ht[muscle > 0.5] = HEART

        _render_spine_slice(anatomy, grid, hu[k], tissue[k], z)
        if sternum_bottom <= z <= sternum_top:
            y_sternum = -(anatomy.body_b_front - float(anatomy.wall_offset(z))) - 7.0
            half_width = 15.0 + 9.0 * np.clip((z - (sternum_top - 45.0)) / 45.0, 0.0, 1.0)
            sw = grid.window2d(-half_width - 2 * edge, half_width + 2 * edge, y_sternum - 9.0, y_sternum + 9.0)
            if sw is not None:
                bx = grid.x[sw[1]][None, :]
                by = grid.y[sw[0]][:, None]
                bone = np.maximum(np.abs(bx) - half_width, np.abs(by - y_sternum) - 6.0)
                bh, bt = hu[k][sw], tissue[k][sw]
                _blend(bh, _occupancy(bone, edge), p.cortical_hu)
                _blend(bh, _occupancy(bone + 1.5, edge), p.cancellous_hu)
                bt[bone < 0] = RIB
    progress(1.0, "body and organs")


def _abdomen_hu(p, anatomy, x, y, z, stomach_center, spleen_center) -> np.ndarray:
    """Upper abdomen under the diaphragm: liver on the right, stomach (air cap) and spleen on the left."""

    liver_edge = 10.0 + 0.35 * (-y)
    value = np.where(x < liver_edge, p.liver_hu, -40.0)
    dz = z - stomach_center[2]
    if abs(dz) < 45.0:
        scale = math.sqrt(1.0 - (dz / 45.0) ** 2)
        stomach = ellipse_sd(x - stomach_center[0], y - stomach_center[1], 40.0 * scale + 1e-3, 34.0 * scale + 1e-3)
        lumen = np.where(y < stomach_center[1] - 8.0, AIR_HU, 10.0)
        value = np.where(stomach < 0, np.where(stomach < -3.0, lumen, p.soft_tissue_hu), value)
    dz = z - spleen_center[2]
    if abs(dz) < 50.0:
        scale = math.sqrt(1.0 - (dz / 50.0) ** 2)
        spleen = ellipse_sd(x - spleen_center[0], y - spleen_center[1], 22.0 * scale + 1e-3, 45.0 * scale + 1e-3)
        value = np.where(spleen < 0, p.soft_tissue_hu + 8.0, value)
    return value


def _render_spine_slice(anatomy, grid: _Grid, hu2d: np.ndarray, tissue2d: np.ndarray, z: float) -> None:
    """Vertebral body or disc, posterior arch and spinal canal on one slice."""

    p = anatomy.params
    edge = grid.edge
    level = round((anatomy.first_vertebra_z - z) / anatomy.vertebra_pitch)
    level_z = anatomy.first_vertebra_z - level * anatomy.vertebra_pitch
    growth = 1.0 + 0.015 * max(level, 0)
    a, b = anatomy.vertebra_a * growth, anatomy.vertebra_b * growth
    vertical = abs(z - level_z) - 0.4 * anatomy.vertebra_pitch
    window = grid.window2d(-a - 20.0, a + 20.0, anatomy.vertebra_y - b - 4.0, anatomy.canal_y + anatomy.canal_radius + 8.0)
    if window is None:
        return
    x = grid.x[window[1]][None, :]
    y = grid.y[window[0]][:, None]
    h, t = hu2d[window], tissue2d[window]
    column = ellipse_sd(x, y - anatomy.vertebra_y, a, b)
    _blend(h, _occupancy(column, edge), DISC_HU)
    t[column < 0] = WALL
    bone = np.maximum(column, vertical)
    _blend(h, _occupancy(bone, edge), p.cortical_hu)
    _blend(h, _occupancy(bone + 1.5, edge), p.cancellous_hu)
    t[bone < 0] = SPINE
    ring = np.sqrt(x * x + (y - anatomy.canal_y) ** 2)
    arch = np.maximum(ring - anatomy.canal_radius - 5.0, vertical)
    _blend(h, _occupancy(arch, edge), 0.8 * p.cortical_hu)
    t[arch < 0] = SPINE
    canal = ring - anatomy.canal_radius
    _blend(h, _occupancy(canal, edge), CSF_HU)
    t[canal < 0] = WALL


def _spine_process_tubes(anatomy) -> list:
    """Spinous and transverse processes of every vertebra."""

    tubes = []
    r = anatomy.canal_radius
    cy = anatomy.canal_y
    for level in range(-1, 16):
        zl = anatomy.first_vertebra_z - level * anatomy.vertebra_pitch
        tubes.append(Tube((0.0, cy + r + 3.0, zl), (0.0, cy + r + 32.0, zl - 14.0), 4.5, 3.5))
        for side in (-1, 1):
            tubes.append(Tube((side * (r + 3.0), cy, zl), (side * (r + 24.0), cy + 8.0, zl + 2.0), 5.0, 4.0))
    return tubes


def _paint_nodule(grid: _Grid, hu: np.ndarray, tissue: np.ndarray, spec: NoduleSpec):
    """Paint one nodule; return (window, mask of its labelled voxels) or None when it covers no voxel centre."""
    center = np.asarray(spec.center)
    reach = spec.max_radius + grid.edge
    window = grid.window3d(center - reach, center + reach)
    if window is None:
        return None
    x, y, z = grid.coords3d(window)
    dx, dy, dz = x - center[0], y - center[1], z - center[2]
    rotation = np.asarray(spec.rotation).reshape(3, 3)
    q = [
        (rotation[0, i] * dx + rotation[1, i] * dy + rotation[2, i] * dz) / (spec.radius * spec.axes[i])
        for i in range(3)
    ]
    rho2 = q[0] ** 2 + q[1] ** 2 + q[2] ** 2
    rho = np.sqrt(rho2)
    quartic = (q[0] ** 4 + q[1] ** 4 + q[2] ** 4) / np.maximum(rho2 * rho2, 1e-12) - 0.6
    sd = (rho - (1.0 + spec.lobulation * quartic)) * spec.radius
    value = spec.hu
    if spec.core_fraction > 0:
        core = (rho - spec.core_fraction) * spec.radius
        value = spec.hu + (spec.core_hu - spec.hu) * _occupancy(core, grid.edge)
    _blend(hu[window], _occupancy(sd, grid.edge), value)
    mask = sd < 0
    if not mask.any():
        # Smaller than a voxel on this grid: the voxel that contains the centre stands for it.
        nearest = [int(np.argmin(np.abs(axis.ravel() - c))) for axis, c in zip((z, y, x), center[::-1])]
        inside = all(abs(axis.ravel()[n] - c) <= step / 2 for axis, n, c, step in zip((z, y, x), nearest, center[::-1], grid.spacing[::-1]))
        if not inside:
            return None
        mask[tuple(nearest)] = True
    tissue[window][mask] = NODULE
    return window, mask


def _add_noise_to_int16(hu: np.ndarray, grid: _Grid, sigma_hu: float, seed: int) -> np.ndarray:
    """Add in-plane correlated, zero-mean noise of standard deviation ``sigma_hu`` and round to int16 HU.

    Works slab by slab so the float volume is traversed once. Where the correlation
    kernel spans several voxels the noise is drawn as uniform bytes (five times cheaper
    than Gaussian samples): the kernel sums many of them, so the result is Gaussian for
    all practical purposes.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x0015E, 0]))
    kernel = _noise_kernel(NOISE_CORRELATION_MM / float(grid.spacing[0]))
    out = np.empty(hu.shape, dtype=np.int16)
    for start in range(0, hu.shape[0], 16):
        slab = hu[start : start + 16]
        if sigma_hu > 0 and kernel is None:
            noise = rng.standard_normal(slab.shape, dtype=np.float32)
            noise *= np.float32(sigma_hu)
            slab += noise
        elif sigma_hu > 0:
            raw = rng.integers(0, 256, size=slab.shape, dtype=np.uint8)
            noise = ndimage.correlate1d(raw, kernel, axis=1, output=np.float32, mode="reflect")
            noise = ndimage.correlate1d(noise, kernel, axis=2, mode="reflect")
            # Uniform bytes: mean 127.5, variance (256**2 - 1) / 12; the kernel scales the variance by sum(k**2)**2.
            std = math.sqrt((256.0**2 - 1.0) / 12.0) * float(np.sum(kernel.astype(np.float64) ** 2))
            noise -= np.float32(127.5)
            noise *= np.float32(sigma_hu / std)
            slab += noise
        np.rint(slab, out=slab)
        np.clip(slab, -1024, 3071, out=slab)
        out[start : start + 16] = slab
    return out


def _noise_kernel(sigma_px: float) -> np.ndarray | None:
    if sigma_px < 0.3:
        return None
    radius = max(1, int(math.ceil(3.0 * sigma_px)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def phantom_geometry(
    params: ChestPhantomParams,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
) -> Geometry:
    """World geometry of a phantom grid: scanner-centred in x/y, at the table position in z.

    ``shape`` is (z, y, x); ``spacing`` is (x, y, z) mm as in ``Geometry``.
    """
    nz, ny, nx = (int(s) for s in shape)
    sx, sy, sz = (float(s) for s in spacing)
    origin = (-(nx - 1) / 2.0 * sx, -(ny - 1) / 2.0 * sy, params.table_z - (nz - 1) / 2.0 * sz)
    return Geometry((nx, ny, nz), (sx, sy, sz), tuple(round(v, 4) for v in origin))


def generate_chest_ct(
    params: ChestPhantomParams,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> PhantomCase:
    """Render ``params`` on a grid of ``shape`` (z, y, x) voxels of ``spacing`` (x, y, z) mm.

    The default grid (512 x 512 x 200 at 0.7 x 0.7 x 1.5 mm) covers 358 x 358 x 300 mm,
    a typical chest CT; ``shape=(64, 128, 128), spacing=(2.8, 2.8, 4.7)`` covers the
    same patient at training resolution. Returns int16 HU, the label map (``LABELS``)
    and one ground-truth box per nodule.
    """

    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ValueError(f"shape must be three positive sizes (z, y, x), got {shape}")
    geometry = phantom_geometry(params, shape, spacing)
    offset = params.world_offset()
    grid = _Grid(geometry.shape, geometry.spacing, np.asarray(geometry.origin) - offset)
    anatomy = ChestAnatomy(params)
    hu = np.empty(grid.shape, dtype=np.float32)
    tissue = np.empty(grid.shape, dtype=np.uint8)

    def check() -> None:
        if cancel is not None:
            cancel.raise_if_cancelled()

    _render_slices(anatomy, grid, hu, tissue, lambda f, m="": progress(0.55 * f, m), cancel)
    check()
    progress(0.55, "mediastinum")
    for tube in anatomy.tubes:  # fat around every mediastinal tube pushes the lungs back
        _paint_tube(grid, hu, tissue, tube.tube, params.fat_hu, grow=tube.margin + tube.wall_mm, allowed=_SOFT_SPACE, code=MEDIASTINUM)
    for tube in anatomy.tubes:
        if tube.wall_hu is not None:
            _paint_tube(grid, hu, tissue, tube.tube, tube.wall_hu, grow=tube.wall_mm, allowed=_OPEN_SPACE, code=MEDIASTINUM)
        _paint_tube(grid, hu, tissue, tube.tube, tube.hu, allowed=_OPEN_SPACE, code=tube.tissue)
    check()
    progress(0.62, "bones")
    bone = (1.3, params.cortical_hu, params.cancellous_hu + 60.0)
    for tube, is_bone in _rib_tubes(anatomy):
        if is_bone:
            _paint_tube(grid, hu, tissue, tube, 0.0, allowed=_NOT_LUNG, code=RIB, cortex=bone)
        else:
            _paint_tube(grid, hu, tissue, tube, CARTILAGE_HU, allowed=_NOT_LUNG, code=WALL)
    for tube in _spine_process_tubes(anatomy):
        _paint_tube(grid, hu, tissue, tube, 0.0, allowed=_WALL_SPACE, code=SPINE, cortex=bone)
    check()
    progress(0.7, "lung vessels")
    trees = lung_vessel_trees(params)
    for name, segments in trees.items():
        if name.endswith("bronchi"):
            continue
        for segment in segments:
            _paint_tube(grid, hu, tissue, segment, params.blood_hu, allowed=_IN_LUNG)
        check()
    for name, segments in trees.items():
        if name.endswith("bronchi"):
            for segment in segments:
                wall = max(0.5, 0.2 * segment.radius_start)
                _paint_tube(grid, hu, tissue, segment, params.soft_tissue_hu - 20.0, grow=wall, allowed=_IN_LUNG)
            for segment in segments:
                _paint_tube(grid, hu, tissue, segment, AIR_HU, allowed=_IN_LUNG)
    check()
    progress(0.85, "nodules")
    detections: list[Detection] = []
    specs: list[NoduleSpec] = []
    for spec in params.nodules:
        painted = _paint_nodule(grid, hu, tissue, spec)
        if painted is None:
            continue
        window, mask = painted
        indices = np.nonzero(mask)  # (z, y, x) within the window
        low = np.array([indices[2].min() + window[2].start, indices[1].min() + window[1].start, indices[0].min() + window[0].start])
        high = np.array([indices[2].max() + window[2].start, indices[1].max() + window[1].start, indices[0].max() + window[0].start])
        detections.append(
            Detection.from_index_bounds(
                geometry,
                low - 0.5,
                high + 0.5,
                label="nodule",
                score=1.0,
                status=DetectionStatus.ACCEPTED,
                source="ground truth",
                id=f"gt-nodule-{len(detections) + 1}",
            )
        )
        specs.append(spec)
    check()
    progress(0.9, "noise")
    volume_array = _add_noise_to_int16(hu, grid, params.noise_hu, params.seed)
    del hu
    label_array = _TISSUE_TO_LABEL[tissue]
    metadata = _metadata(params)
    volume = Volume(volume_array, geometry, "CT", metadata)
    labels = LabelMap(label_array, geometry, chest_label_table(), name="Ground truth", source="ground truth")
    progress(1.0, "done")
    return PhantomCase(volume, labels, detections, specs, params)


def _metadata(params: ChestPhantomParams) -> VolumeMetadata:
    """Obviously synthetic identifiers (deterministic per seed and variant)."""
    from pydicom.uid import generate_uid

    tag = f"medviewer-chest-phantom-{params.variant}-{params.seed}"
    return VolumeMetadata(
        patient_id=f"PHANTOM-{params.seed:06d}",
        patient_name="PHANTOM^CHEST",
        study_uid=str(generate_uid(entropy_srcs=[tag, "study"])),
        study_description="Synthetic chest CT phantom (medviewer)",
        series_uid=str(generate_uid(entropy_srcs=[tag, "series"])),
        series_description=f"Chest phantom seed {params.seed} ({params.variant})",
        series_number=1,
        windows=list(CT_WINDOWS),
        units="HU",
        source_format="phantom",
        extra={"synthetic": True, "phantom_seed": params.seed, "phantom_variant": params.variant, "body_part": "CHEST"},
    )


# ---------------------------------------------------------------------------- low dose
def simulate_low_dose(
    volume_array: np.ndarray,
    dose_fraction: float,
    seed: int,
    *,
    full_dose_noise_hu: float = 10.0,
    spacing: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """Simulate a scan at ``dose_fraction`` of the dose of ``volume_array`` (HU, (z, y, x)).

    Quantum noise variance in CT is inversely proportional to dose, so the noise of a
    scan at fraction ``f`` is ``sigma_full / sqrt(f)``; this adds independent noise of
    ``sigma_full * sqrt(1/f - 1)`` to an image that already carries ``sigma_full``
    (``full_dose_noise_hu``). The noise is spatially correlated in-plane like CT noise
    and, as with fixed tube current, stronger through thicker slices: its level is
    scaled per slice by ``exp(mu_water * (d_w - d_mean) / 2)`` where ``d_w`` is the
    slice's water-equivalent diameter (AAPM TG-220; needs ``spacing`` (x, y, z) mm, else
    no scaling). Returns the same dtype (integers are rounded and clipped to their
    range, int16 to -1024..3071).
    """
    if not 0.0 < dose_fraction <= 1.0:
        raise ValueError(f"dose_fraction must be in (0, 1], got {dose_fraction}")
    array = np.asarray(volume_array)
    squeeze = array.ndim == 2
    data = array[None] if squeeze else array
    result = data.astype(np.float32)
    sigma = full_dose_noise_hu * math.sqrt(1.0 / dose_fraction - 1.0)
    if sigma > 0:
        spacing_xy = float(spacing[0]) if spacing is not None else 1.0
        kernel = _noise_kernel(NOISE_CORRELATION_MM / spacing_xy) if spacing is not None else None
        gain = sigma / float(np.sum(kernel**2)) if kernel is not None else sigma
        scale = np.ones(data.shape[0])
        if spacing is not None:
            attenuation = np.clip(result + 1000.0, 0.0, None) / 1000.0
            area = float(spacing[0]) * float(spacing[1])
            diameter = 2.0 * np.sqrt(attenuation.reshape(data.shape[0], -1).sum(axis=1) * area / math.pi)
            mu_water = 0.019  # 1/mm, about 70 keV
            scale = np.exp(mu_water * (diameter - diameter.mean()) / 2.0)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x10D05E]))
        for k in range(data.shape[0]):
            noise = rng.standard_normal(data.shape[1:], dtype=np.float32)
            if kernel is not None:
                noise = ndimage.correlate1d(noise, kernel, axis=0, mode="reflect")
                noise = ndimage.correlate1d(noise, kernel, axis=1, mode="reflect")
            result[k] += np.float32(gain * scale[k]) * noise
    if np.issubdtype(array.dtype, np.integer):
        low, high = (-1024, 3071) if array.dtype == np.int16 else (np.iinfo(array.dtype).min, np.iinfo(array.dtype).max)
        result = np.clip(np.rint(result), low, high).astype(array.dtype)
    return result[0] if squeeze else result


__all__ = [
    "CT_WINDOWS",
    "LABEL_COLORS",
    "LABELS",
    "VARIANTS",
    "ChestPhantomParams",
    "NoduleSpec",
    "PhantomCase",
    "chest_label_table",
    "generate_chest_ct",
    "lung_vessel_trees",
    "phantom_geometry",
    "simulate_low_dose",
]
