"""The synthetic chest phantom's patient: parameters drawn from a seed, and its anatomy as implicit functions of position in millimetres.

``ChestPhantomParams.from_seed`` draws the patient and places its nodules inside the
lungs, which needs the anatomy below; that is why parameters and anatomy share this
module (the renderer, ``medviewer.demo.phantoms``, builds on both).

Everything here is defined in the *patient frame*: millimetres, LPS axes (+x = patient
left, +y = posterior, +z = superior), origin at the centre of the body outline at
mid-height of the default 300 mm scan range. Because shapes are functions of physical
position and never of voxel indices, the same parameters give the same anatomy on a
512 x 512 x 200 grid at 0.7 mm and on a 128 x 128 x 64 grid at 2.8 mm.

Shapes are given as approximate signed distances ``sd`` in mm (negative inside); a
voxel belongs to a structure when ``sd < 0`` at its centre, and ``sd`` also gives the
partial-volume blend at edges. The same functions serve two callers: the slice
renderer (``x`` of shape (1, n), ``y`` of shape (m, 1), scalar ``z``) and point
queries used to place nodules and grow vessels (arrays of shape (N,)).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from medviewer.demo.phantom_tissues import AIRWAY, AORTA, DEFAULT_SHAPE, DEFAULT_SPACING, MEDIASTINUM, VARIANTS, VESSEL

ArrayOrFloat = Union[np.ndarray, float]

RIGHT = -1
LEFT = 1
SIDES = (RIGHT, LEFT)

#: Thickness of the skin line (mm).
SKIN_MM = 2.0
#: Space for the ribs and intercostal muscles between the chest-wall muscles and the pleura (mm).
RIB_ZONE_MM = 12.0
#: How far below the dome top the lungs reach, in units of ``recess_depth`` (posterior recesses).
RECESS_DROP_LIMIT = 1.5
#: Thickness of the diaphragm muscle under the lungs (mm).
DIAPHRAGM_MM = 4.0


def ellipse_sd(dx: ArrayOrFloat, dy: ArrayOrFloat, a: ArrayOrFloat, b: ArrayOrFloat) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipse with half-axes ``a``, ``b``.

    First-order estimate ``(rho - 1) / |grad rho|`` with ``rho`` the normalised radius:
    exact on the boundary and good within a few mm of it, which is what edges and
    layer offsets need.
    """
    u = dx / a
    v = dy / b
    rho = np.sqrt(u * u + v * v)
    grad = np.sqrt((u / a) ** 2 + (v / b) ** 2) / np.maximum(rho, 1e-6)
    grad = np.maximum(grad, 1.0 / np.maximum(a, b))
    return (rho - 1.0) / grad


def rounded_box_sd(dx: ArrayOrFloat, dy: ArrayOrFloat, half_width: float, half_height: float, corner: float) -> np.ndarray:
    """Signed distance (mm) to a centred rectangle whose corners are rounded with radius ``corner``."""
    qx = np.abs(dx) - (half_width - corner)
    qy = np.abs(dy) - (half_height - corner)
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - corner


def segment_distance(
    px: ArrayOrFloat, py: ArrayOrFloat, pz: ArrayOrFloat, p0: Sequence[float], p1: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points to the segment p0-p1 and the position ``t`` (0..1) along it."""
    d = np.asarray(p1, float) - np.asarray(p0, float)
    length2 = max(float(d @ d), 1e-9)
    ox, oy, oz = px - p0[0], py - p0[1], pz - p0[2]
    t = np.clip((ox * d[0] + oy * d[1] + oz * d[2]) / length2, 0.0, 1.0)
    ex = ox - t * d[0]
    ey = oy - t * d[1]
    ez = oz - t * d[2]
    return np.sqrt(ex * ex + ey * ey + ez * ez), t


@dataclass(frozen=True)
class Tube:
    """A cone-capped cylinder (capsule) from ``start`` to ``end`` in patient-frame mm."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius_start: float
    radius_end: float

    def sd(self, x: ArrayOrFloat, y: ArrayOrFloat, z: ArrayOrFloat) -> np.ndarray:
        """Signed distance (mm) to the capsule surface."""
        dist, t = segment_distance(x, y, z, self.start, self.end)
        return dist - (self.radius_start + t * (self.radius_end - self.radius_start))


@dataclass(frozen=True)
class MediastinalTube:
    """A named mediastinal tube: a vessel or airway with a fat margin that the lungs keep away from."""

    name: str
    tube: Tube
    hu: float
    tissue: int
    margin: float
    wall_hu: float | None = None
    wall_mm: float = 0.0


class ChestAnatomy:
    """Derived geometry of one phantom: body, chest cavity, lungs, heart, spine and mediastinum.

    Built from ``ChestPhantomParams``; the ``*_sd`` methods are vectorised over any
    broadcastable ``x, y, z`` arrays (patient-frame mm).
    """

    def __init__(self, params: ChestPhantomParams) -> None:
        p = params
        self.params = p
        self.body_a = p.body_half_width
        self.body_b_front = p.body_half_depth_front
        self.body_b_back = p.body_half_depth_back
        self.wall_inset = SKIN_MM + p.fat_thickness + p.muscle_thickness + RIB_ZONE_MM
        # Mid-chest size of the pleural cavity (used to place organs).
        self.cavity_a = self.body_a - self.wall_inset
        self.cavity_b_front = self.body_b_front - self.wall_inset
        self.cavity_b_back = self.body_b_back - self.wall_inset
        self.z_apex = p.lung_apex_z
        self.z_taper = p.lung_apex_z - p.apex_dome_height
        self.z_carina = p.carina_z
        self.dome_top = {RIGHT: p.dome_top_right_z, LEFT: p.dome_top_left_z}

        # Spine: vertebral bodies on the midline, posterior in the body.
        self.vertebra_y = self.body_b_back - p.back_to_vertebra
        self.vertebra_a, self.vertebra_b = p.vertebra_radii
        self.canal_y = self.vertebra_y + self.vertebra_b + 9.0
        self.canal_radius = 8.0
        self.vertebra_pitch = p.vertebra_pitch
        self.first_vertebra_z = p.lung_apex_z - 8.0  # T1, at the level of the lung apex

        # Lung ellipses: each centred in its half of the cavity; the cavity clips them laterally.
        self.lung_center = {
            side: (side * self.cavity_a * 0.5, 0.08 * self.cavity_b_back) for side in SIDES
        }
        self.lung_axes = {
            side: (self.cavity_a * p.lung_width_scale[i], max(self.cavity_b_front, self.cavity_b_back) * 1.1)
            for i, side in enumerate(SIDES)
        }
        self.lung_harmonics = {side: np.asarray(p.lung_shape_harmonics[i], float) for i, side in enumerate(SIDES)}

        # Heart: a tilted ellipsoid resting on the left dome of the diaphragm.
        axis = np.asarray(p.heart_long_axis, float)
        axis /= np.linalg.norm(axis)
        helper = np.array([0.0, 0.0, 1.0])
        second = helper - axis * (helper @ axis)
        second /= np.linalg.norm(second)
        third = np.cross(axis, second)
        rotation = np.stack([axis, second, third], axis=1)  # columns: ellipsoid axes
        radii = np.asarray(p.heart_radii, float)
        self.heart_matrix = rotation @ np.diag(1.0 / radii**2) @ rotation.T
        self.heart_half_extent = np.sqrt((rotation**2) @ (radii**2))
        self.heart_mean_radius = float(np.cbrt(np.prod(radii)))
        hx, hy = p.heart_center_xy
        hz = float(self.dome_z(np.float64(hx), np.float64(hy), LEFT)) + 0.8 * self.heart_half_extent[2]
        self.heart_center = np.array([hx, hy, hz])
        self.pericardial_fat = p.pericardial_fat

        self.tubes = self._mediastinal_tubes()

    # ------------------------------------------------------------------ body and cavity
    def body_scale(self, z: ArrayOrFloat) -> np.ndarray:
        """Lateral size of the body outline relative to the lower chest.

        The chest narrows slowly from the diaphragm up to the apices, then faster
        towards the neck. Quantised to 0.25 mm of half-width so that runs of slices
        share one outline (the renderer reuses it).
        """
        base = min(self.dome_top.values())
        narrowing = 0.06 * np.clip((z - base) / (self.z_taper - base), 0.0, 1.0)
        narrowing = narrowing + 0.07 * np.clip((z - self.z_taper) / 120.0, 0.0, 1.0)
        return np.round(self.body_a * (1.0 - narrowing) * 4.0) / (4.0 * self.body_a)

    def wall_offset(self, z: ArrayOrFloat) -> np.ndarray:
        """Depth of the pleura below the skin; grows above the lung apices (thoracic inlet)."""
        rise = np.maximum(z - self.z_taper, 0.0)
        return self.wall_inset + 0.1 * rise + 0.004 * rise * rise

    def body_sd(self, x: ArrayOrFloat, y: ArrayOrFloat, z: ArrayOrFloat) -> np.ndarray:
        """Signed distance to the skin surface."""
        a = self.body_a * self.body_scale(z)
        b = np.where(y < 0, self.body_b_front, self.body_b_back)
        return ellipse_sd(x, y, a, b)

    def cavity_sd(self, x: ArrayOrFloat, y: ArrayOrFloat, z: ArrayOrFloat, body_sd: np.ndarray | None = None) -> np.ndarray:
        """The pleural cavity: the body outline moved inwards by the chest-wall thickness."""
        if body_sd is None:
            body_sd = self.body_sd(x, y, z)
        return body_sd + self.wall_offset(z)

    # ------------------------------------------------------------------ lungs
    def lung_taper(self, z: ArrayOrFloat) -> np.ndarray:
        """Relative size of the lung cross-section: 1 below the apex dome, 0 at the apex."""
        h = np.clip((z - self.z_taper) / (self.z_apex - self.z_taper), 0.0, 1.0)
        return np.sqrt(np.maximum(1.0 - h * h, 0.0))

    def lung_ellipse_sd(self, x: ArrayOrFloat, y: ArrayOrFloat, z: ArrayOrFloat, side: int) -> np.ndarray:
        """The lung's own outline (an ellipse with harmonic bumps, tapered towards the apex)."""
        cx, cy = self.lung_center[side]
        a, b = self.lung_axes[side]
        u = (x - cx) / a
        v = (y - cy) / b
        rho = np.sqrt(u * u + v * v)
        safe = np.maximum(rho, 1e-6)
        cos1, sin1 = u / safe, v / safe
        cos2, sin2 = cos1 * cos1 - sin1 * sin1, 2.0 * cos1 * sin1
        cos3, sin3 = cos1 * cos2 - sin1 * sin2, sin1 * cos2 + cos1 * sin2
        c = self.lung_harmonics[side]
        boundary = 1.0 + c[0] * cos2 + c[1] * sin2 + c[2] * cos3 + c[3] * sin3 * side
        grad = np.maximum(np.sqrt((u / a) ** 2 + (v / b) ** 2) / safe, 1.0 / max(a, b))
        return (rho - self.lung_taper(z) * boundary) / grad

    def dome_z(self, x: ArrayOrFloat, y: ArrayOrFloat, side: int) -> np.ndarray:
        """Height (patient z, mm) of the diaphragm dome under one lung."""
        cx = side * self.cavity_a * 0.4
        ax = self.cavity_a * 0.6
        by = 0.8 * self.cavity_b_back
        cy = -0.1 * self.cavity_b_front
        drop = ((x - cx) / ax) ** 2 + ((y - cy) / by) ** 2
        return self.dome_top[side] - self.params.recess_depth * np.minimum(drop, RECESS_DROP_LIMIT)

    def heart_sd(self, x: ArrayOrFloat, y: ArrayOrFloat, z: ArrayOrFloat) -> np.ndarray:
        """Signed distance (approximate, mm) to the heart ellipsoid."""
        m = self.heart_matrix
        dx = x - self.heart_center[0]
        dy = y - self.heart_center[1]
        dz = z - self.heart_center[2]
        x_terms = m[0, 0] * dx * dx + 2.0 * m[0, 2] * dx * dz + m[2, 2] * dz * dz
        y_terms = m[1, 1] * dy * dy + 2.0 * m[1, 2] * dy * dz
        q = x_terms + y_terms + 2.0 * m[0, 1] * dx * dy
        return (np.sqrt(np.maximum(q, 0.0)) - 1.0) * self.heart_mean_radius

    def paraspinal_sd(self, x: ArrayOrFloat, y: ArrayOrFloat) -> np.ndarray:
        """The paraspinal muscles behind the vertebral bodies: a box with rounded corners."""
        half_width = self.vertebra_a + 22.0
        top = self.vertebra_y + 0.5 * self.vertebra_b
        return rounded_box_sd(x, y - (top + 100.0), half_width, 100.0, 14.0)

    def spine_exclusion_sd(self, x: ArrayOrFloat, y: ArrayOrFloat) -> np.ndarray:
        """Vertebral bodies with a margin, and the paraspinal muscles behind them: no lung there."""
        body = ellipse_sd(x, y - self.vertebra_y, self.vertebra_a + 6.0, self.vertebra_b + 6.0)
        return np.minimum(body, self.paraspinal_sd(x, y))

    def lung_sd(
        self, x: ArrayOrFloat, y: ArrayOrFloat, z: ArrayOrFloat, side: int, cavity_sd: np.ndarray | None = None
    ) -> np.ndarray:
        """Signed distance to one lung, without the carving by mediastinal tubes (see ``lung_sd_points``)."""
        if cavity_sd is None:
            cavity_sd = self.cavity_sd(x, y, z)
        sd = np.maximum(cavity_sd, self.lung_ellipse_sd(x, y, z, side))
        sd = np.maximum(sd, self.params.mediastinum_half_width - side * x)
        sd = np.maximum(sd, self.dome_z(x, y, side) - z)
        sd = np.maximum(sd, -self.spine_exclusion_sd(x, y))
        sd = np.maximum(sd, -(self.heart_sd(x, y, z) - self.pericardial_fat - 1.0))
        return sd

    def lung_sd_points(self, points: np.ndarray, side: int) -> np.ndarray:
        """Signed distance of (N, 3) points to one lung as rendered, mediastinal tubes included."""
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        sd = self.lung_sd(x, y, z, side)
        for tube in self.tubes:
            sd = np.maximum(sd, -(tube.tube.sd(x, y, z) - tube.margin - tube.wall_mm))
        return sd

    def lung_bounds(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """A box (patient mm) that contains the lung on ``side``."""
        a = self.cavity_a + 2.0
        x_lo, x_hi = (-a, 0.0) if side == RIGHT else (0.0, a)
        y_lo, y_hi = -self.cavity_b_front - 2.0, self.cavity_b_back + 2.0
        z_lo = min(self.dome_top.values()) - RECESS_DROP_LIMIT * self.params.recess_depth - 2.0
        return np.array([x_lo, y_lo, z_lo]), np.array([x_hi, y_hi, self.z_apex + 2.0])

    def sample_lung_points(self, rng: np.random.Generator, side: int, count: int, inset: float = 2.0) -> np.ndarray:
        """``count`` points uniformly distributed inside one lung, at least ``inset`` mm from its edge."""
        low, high = self.lung_bounds(side)
        found: list[np.ndarray] = []
        total = 0
        for _ in range(200):
            candidates = rng.uniform(low, high, size=(max(4 * count, 256), 3))
            inside = candidates[self.lung_sd_points(candidates, side) < -inset]
            found.append(inside)
            total += len(inside)
            if total >= count:
                break
        points = np.concatenate(found)[:count]
        return points

    # ------------------------------------------------------------------ mediastinum
    def _mediastinal_tubes(self) -> list[MediastinalTube]:
        """Aorta, great veins, pulmonary arteries and veins, trachea, main bronchi, oesophagus."""
        p = self.params
        z_top = 200.0
        z_bottom = -200.0
        hz = self.heart_center[2] + 0.6 * self.heart_half_extent[2]
        heart_top = self.heart_center[2] + self.heart_half_extent[2]
        r_trachea = p.trachea_radius
        y_esophagus = self.vertebra_y - self.vertebra_b - 9.0
        y_trachea = y_esophagus - 7.0 - r_trachea - 2.0
        r_asc, r_desc = p.aorta_radii
        x_asc = -p.ascending_aorta_offset
        y_asc = y_trachea - r_trachea - r_asc - 12.0
        x_desc = self.vertebra_a + r_desc + 7.0
        y_desc = self.vertebra_y - 0.3 * self.vertebra_b
        z_arch = self.z_carina + 14.0
        a = self.cavity_a
        tubes: list[MediastinalTube] = []

        def add(name, start, end, r0, r1, hu, tissue, margin, wall_hu=None, wall_mm=0.0):
            tubes.append(MediastinalTube(name, Tube(tuple(map(float, start)), tuple(map(float, end)), r0, r1), hu, tissue, margin, wall_hu, wall_mm))

        blood = p.blood_hu
        # Aorta: ascending from the heart, arch over the left main bronchus, descending beside the spine.
        add("ascending aorta", (x_asc, y_asc, hz - 10.0), (x_asc, y_asc, z_arch), r_asc, r_asc, blood, AORTA, 3.0)
        arch_points = []
        for angle in np.linspace(0.0, np.pi, 9):
            arch_points.append(
                (
                    x_asc + (x_desc - x_asc) * (1 - np.cos(angle)) / 2.0,
                    y_asc + (y_desc - y_asc) * (1 - np.cos(angle)) / 2.0,
                    z_arch + 16.0 * np.sin(angle),
                )
            )
        for i in range(len(arch_points) - 1):
            r0 = r_asc + (r_desc - r_asc) * i / 8.0
            r1 = r_asc + (r_desc - r_asc) * (i + 1) / 8.0
            add("aortic arch", arch_points[i], arch_points[i + 1], r0, r1, blood, AORTA, 3.0)
        add("descending aorta", (x_desc, y_desc, z_arch), (x_desc, y_desc, z_bottom), r_desc, r_desc, blood, AORTA, 3.0)
        # Superior vena cava, right of the ascending aorta.
        x_svc = x_asc - r_asc - 11.0
        add("superior vena cava", (x_svc, y_asc + 6.0, z_top), (x_svc, y_asc + 6.0, hz), 9.0, 9.0, blood, VESSEL, 2.5)
        # Pulmonary trunk from the right ventricle (front of the heart) up to its bifurcation.
        bifurcation = (10.0, y_trachea + 4.0, self.z_carina - 12.0)
        add("pulmonary trunk", (14.0, self.heart_center[1] - 25.0, heart_top - 22.0), bifurcation, 13.0, 12.0, blood, VESSEL, 2.5)
        self.artery_roots = {
            RIGHT: np.array([-0.36 * a, y_trachea + 12.0, self.z_carina - 20.0]),
            LEFT: np.array([0.38 * a, y_trachea + 16.0, self.z_carina - 8.0]),
        }
        for side in SIDES:
            add("pulmonary artery", bifurcation, self.artery_roots[side], 11.0, 8.0, blood, VESSEL, 2.5)
        # Pulmonary veins from the hila to the left atrium (back of the heart).
        atrium = (2.0, self.heart_center[1] + 0.55 * p.heart_radii[1], self.heart_center[2] + 12.0)
        self.vein_roots = {
            side: np.array([side * 0.34 * a, y_trachea + 24.0, self.z_carina - 48.0]) for side in SIDES
        }
        for side in SIDES:
            add("pulmonary vein", atrium, self.vein_roots[side], 8.0, 6.5, blood, VESSEL, 2.0)
        # Airways: trachea down to the carina, then the main bronchi (right steeper and shorter).
        carina = (0.0, y_trachea, self.z_carina)
        add("trachea", (0.0, y_trachea, z_top), carina, r_trachea, r_trachea, -1000.0, AIRWAY, 3.0, p.soft_tissue_hu, 2.0)
        self.bronchus_roots = {
            RIGHT: np.array([-0.3 * a, y_trachea + 8.0, self.z_carina - 24.0]),
            LEFT: np.array([0.33 * a, y_trachea + 10.0, self.z_carina - 40.0]),
        }
        self.bronchus_radii = {RIGHT: 0.78 * r_trachea, LEFT: 0.68 * r_trachea}
        for side in SIDES:
            r = self.bronchus_radii[side]
            add("main bronchus", carina, self.bronchus_roots[side], r, r * 0.9, -1000.0, AIRWAY, 2.0, p.soft_tissue_hu, 1.6)
        # Oesophagus between trachea and spine, slightly left; a little air in its lumen.
        # It ends at the diaphragm (the hiatus), where it joins the stomach.
        hiatus_z = self.dome_top[LEFT] - 10.0
        add("oesophagus", (4.0, y_esophagus, z_top), (4.0, y_esophagus, hiatus_z), 7.0, 7.0, p.soft_tissue_hu, MEDIASTINUM, 2.0)
        return tubes


# ---------------------------------------------------------------------------- the phantom patient
@dataclass(frozen=True)
class NoduleSpec:
    """One nodule, in patient-frame millimetres (see ``phantom_anatomy``).

    ``kind`` is ``"solid"``, ``"part_solid"`` (ground-glass rim around a solid core)
    or ``"ground_glass"`` (low contrast). ``diameter_mm`` is the diameter of the sphere
    of equal volume; ``axes`` are relative half-axes (product 1) along the columns of
    ``rotation``; ``lobulation`` bulges the surface along those axes, symmetrically so
    the nodule stays centred on ``center``.
    """

    center: tuple[float, float, float]
    diameter_mm: float
    kind: str
    hu: float
    core_hu: float = 0.0
    core_fraction: float = 0.0
    axes: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rotation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    lobulation: float = 0.0
    side: int = -1

    @property
    def radius(self) -> float:
        return self.diameter_mm / 2.0

    @property
    def max_radius(self) -> float:
        """Radius of a sphere around ``center`` that contains the whole nodule."""
        return self.radius * max(self.axes) * (1.0 + 0.4 * abs(self.lobulation))


@dataclass(frozen=True)
class ChestPhantomParams:
    """Everything that defines one phantom patient (lengths in mm, intensities in HU).

    Positions are in the patient frame (origin at the body centre at mid-height of the
    scan); ``body_offset`` (x, y) and ``table_z`` place that frame in scanner (world
    LPS) coordinates. Draw a varied instance with ``from_seed``; adjust fields with
    ``dataclasses.replace``.
    """

    seed: int
    variant: str
    # body and chest wall
    body_half_width: float
    body_half_depth_front: float
    body_half_depth_back: float
    body_offset: tuple[float, float]
    table_z: float
    fat_thickness: float
    muscle_thickness: float
    # lungs, diaphragm, mediastinum
    lung_apex_z: float
    apex_dome_height: float
    carina_z: float
    dome_top_right_z: float
    dome_top_left_z: float
    recess_depth: float
    lung_width_scale: tuple[float, float]
    lung_shape_harmonics: tuple[tuple[float, ...], tuple[float, ...]]
    mediastinum_half_width: float
    heart_center_xy: tuple[float, float]
    heart_radii: tuple[float, float, float]
    heart_long_axis: tuple[float, float, float]
    pericardial_fat: float
    trachea_radius: float
    aorta_radii: tuple[float, float]
    ascending_aorta_offset: float
    # spine
    back_to_vertebra: float
    vertebra_radii: tuple[float, float]
    vertebra_pitch: float
    rib_radius: float
    # lung vessels: number of territory points per vessel tree (more = denser trees)
    vessel_points: int
    # intensities
    lung_hu: float
    lung_gradient_hu: float
    fat_hu: float
    muscle_hu: float
    soft_tissue_hu: float
    blood_hu: float
    liver_hu: float
    cancellous_hu: float
    cortical_hu: float
    noise_hu: float
    nodules: tuple[NoduleSpec, ...] = ()

    @classmethod
    def from_seed(cls, seed: int, variant: str = "standard") -> "ChestPhantomParams":
        """Draw a phantom from ``seed``; ``variant`` changes it systematically.

        ``"standard"``: lungs about -850 HU, 3-8 nodules of 4-30 mm (solid, part-solid
        or ground-glass). ``"dense_lungs"``: the same body with expiratory, denser lungs
        (parenchyma about -600 HU, diaphragm higher) and larger, smooth, mostly solid
        nodules (10-30 mm) - a domain shift for models trained on ``"standard"``.
        """
        if variant not in VARIANTS:
            raise ValueError(f"unknown phantom variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        seed = int(seed)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
        u = rng.uniform
        body_half_width = u(138.0, 165.0)
        apex = u(118.0, 132.0)
        carina = apex - u(70.0, 82.0)
        dome_right = carina - u(95.0, 112.0)
        dome_left = dome_right - u(8.0, 18.0)

        def harmonics() -> tuple[float, ...]:
            return tuple(float(v) for v in rng.uniform(-0.05, 0.05, size=4))

        values = dict(
            seed=seed,
            variant=variant,
            body_half_width=body_half_width,
            body_half_depth_front=u(105.0, 125.0),
            body_half_depth_back=u(100.0, 118.0),
            body_offset=(u(-8.0, 8.0), u(-12.0, 4.0)),
            table_z=round(u(-260.0, -120.0), 1),
            fat_thickness=u(4.0, 18.0),
            muscle_thickness=u(5.0, 12.0),
            lung_apex_z=apex,
            apex_dome_height=u(95.0, 125.0),
            carina_z=carina,
            dome_top_right_z=dome_right,
            dome_top_left_z=dome_left,
            recess_depth=u(35.0, 50.0),
            lung_width_scale=(u(0.6, 0.68), u(0.56, 0.64)),
            lung_shape_harmonics=(harmonics(), harmonics()),
            mediastinum_half_width=u(6.0, 12.0),
            heart_center_xy=(u(8.0, 24.0), 0.0),  # y set below from the cavity depth
            heart_radii=(u(55.0, 66.0), u(42.0, 50.0), u(36.0, 44.0)),
            heart_long_axis=(u(0.45, 0.7), -u(0.45, 0.65), -u(0.45, 0.7)),
            pericardial_fat=u(2.5, 6.0),
            trachea_radius=u(8.0, 10.0),
            aorta_radii=(u(13.0, 16.0), u(10.0, 12.5)),
            ascending_aorta_offset=u(4.0, 14.0),
            back_to_vertebra=u(72.0, 88.0),
            vertebra_radii=(u(16.0, 20.0), u(13.0, 15.5)),
            vertebra_pitch=u(24.0, 28.0),
            rib_radius=u(4.3, 5.3),
            vessel_points=int(rng.integers(1300, 1900)),
            lung_hu=u(-880.0, -830.0),
            lung_gradient_hu=u(20.0, 60.0),
            fat_hu=u(-110.0, -85.0),
            muscle_hu=u(35.0, 55.0),
            soft_tissue_hu=u(30.0, 45.0),
            blood_hu=u(35.0, 50.0),
            liver_hu=u(50.0, 65.0),
            cancellous_hu=u(180.0, 300.0),
            cortical_hu=u(800.0, 1100.0),
            noise_hu=u(8.0, 22.0),
        )
        inset = 2.0 + values["fat_thickness"] + values["muscle_thickness"] + 12.0
        cavity_front = values["body_half_depth_front"] - inset
        values["heart_center_xy"] = (values["heart_center_xy"][0], -u(0.2, 0.35) * cavity_front)
        nodule_count = int(rng.integers(3, 9))
        nodule_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x0D11]))
        if variant == "dense_lungs":
            variant_rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDE45]))
            shift = variant_rng.uniform(12.0, 25.0)  # expiration: the diaphragm rises
            values.update(
                lung_hu=variant_rng.uniform(-640.0, -570.0),
                lung_gradient_hu=variant_rng.uniform(40.0, 90.0),
                dome_top_right_z=values["dome_top_right_z"] + shift,
                dome_top_left_z=values["dome_top_left_z"] + shift,
                lung_apex_z=values["lung_apex_z"] - variant_rng.uniform(5.0, 12.0),
            )
        # Keep the deepest (posterior) recess of the lungs inside the default 300 mm scan range.
        lowest_allowed = -DEFAULT_SPACING[2] * DEFAULT_SHAPE[0] / 2.0 + 8.0
        deepest = min(values["dome_top_left_z"], values["dome_top_right_z"]) - RECESS_DROP_LIMIT * values["recess_depth"]
        if deepest < lowest_allowed:
            values["recess_depth"] = (min(values["dome_top_left_z"], values["dome_top_right_z"]) - lowest_allowed) / RECESS_DROP_LIMIT
        params = cls(**values)
        return dataclasses.replace(params, nodules=tuple(_draw_nodules(params, nodule_rng, nodule_count)))

    def world_offset(self) -> np.ndarray:
        """World LPS position (mm) of the patient-frame origin."""
        return np.array([self.body_offset[0], self.body_offset[1], self.table_z])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _draw_nodules(params: ChestPhantomParams, rng: np.random.Generator, count: int) -> list[NoduleSpec]:
    """Nodules at random positions inside the lungs, clear of the edges and of each other."""
    anatomy = ChestAnatomy(params)
    dense = params.variant == "dense_lungs"
    directions = rng.normal(size=(32, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    nodules: list[NoduleSpec] = []
    for _ in range(count):
        if dense:
            diameter = rng.uniform(10.0, 30.0)
            kind = "solid" if rng.uniform() < 0.8 else "part_solid"
            lobulation = 0.0
        else:
            diameter = float(np.exp(rng.uniform(np.log(4.0), np.log(30.0))))
            kind = str(rng.choice(["solid", "part_solid", "ground_glass"], p=[0.6, 0.25, 0.15]))
            lobulation = rng.uniform(-0.15, 0.25) if diameter > 8.0 else 0.0
        if kind == "part_solid" and diameter < 8.0:
            kind = "solid"
        axes = rng.uniform(0.85, 1.15, size=3)
        axes /= np.cbrt(np.prod(axes))
        rotation = _random_rotation(rng)
        if kind == "solid":
            hu, core_hu, core_fraction = rng.uniform(0.0, 60.0), 0.0, 0.0
        elif kind == "part_solid":
            hu = params.lung_hu + rng.uniform(250.0, 400.0)
            core_hu, core_fraction = rng.uniform(0.0, 50.0), rng.uniform(0.3, 0.6)
        else:
            hu, core_hu, core_fraction = params.lung_hu + rng.uniform(250.0, 400.0), 0.0, 0.0
        spec = NoduleSpec(
            (0.0, 0.0, 0.0), float(diameter), kind, float(hu), float(core_hu), float(core_fraction),
            tuple(float(a) for a in axes), tuple(float(v) for v in rotation.ravel()), float(lobulation),
        )
        reach = spec.max_radius + 2.5
        side = RIGHT if rng.uniform() < 0.55 else LEFT
        placed = False
        for _attempt in range(30):
            candidates = anatomy.sample_lung_points(rng, side, 64, inset=reach)
            half_range = DEFAULT_SPACING[2] * DEFAULT_SHAPE[0] / 2.0 - 5.0
            for center in candidates:
                if abs(center[2]) + reach > half_range:  # keep nodules inside the default scan range
                    continue
                if any(np.linalg.norm(center - np.asarray(n.center)) < reach + n.max_radius + 4.0 for n in nodules):
                    continue
                shell = center + reach * directions
                if np.all(anatomy.lung_sd_points(shell, side) < 0.0):
                    nodules.append(dataclasses.replace(spec, center=tuple(float(c) for c in center), side=side))
                    placed = True
                    break
            if placed:
                break
            side = -side
    return nodules
