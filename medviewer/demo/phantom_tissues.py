"""Label values, colours, tissue codes and intensities of the synthetic chest phantom.

The lowest module of ``medviewer.demo``: the anatomy and the renderer both use these
codes, so they live apart from either (this is what used to make ``phantoms`` and
``phantom_anatomy`` import each other).
"""

from __future__ import annotations

import numpy as np

from medviewer.core.labels import LabelTable

# ---------------------------------------------------------------------------- labels
#: Public label values of the ground-truth label map (stable; models depend on them).
LABELS: dict[int, str] = {
    1: "right lung",
    2: "left lung",
    3: "nodule",
    4: "heart",
    5: "aorta",
    6: "airway",
    7: "spine",
    8: "ribs and sternum",
}
LABEL_COLORS: dict[int, tuple[int, int, int]] = {
    1: (80, 160, 230),
    2: (240, 170, 70),
    3: (255, 40, 40),
    4: (200, 90, 80),
    5: (250, 110, 190),
    6: (150, 230, 250),
    7: (241, 214, 145),
    8: (255, 250, 200),
}
RIGHT_LUNG, LEFT_LUNG, NODULE_LABEL = 1, 2, 3

VARIANTS = ("standard", "dense_lungs")

# Internal tissue codes used while rendering (finer than the public labels).
OUTSIDE, WALL, MEDIASTINUM, ABDOMEN, LUNG_R, LUNG_L, NODULE, HEART, AORTA, AIRWAY, SPINE, RIB, VESSEL, TABLE = range(14)
_TISSUE_TO_LABEL = np.zeros(256, dtype=np.uint8)
_TISSUE_TO_LABEL[[LUNG_R, LUNG_L, NODULE, HEART, AORTA, AIRWAY, SPINE, RIB]] = [1, 2, 3, 4, 5, 6, 7, 8]

AIR_HU = -1000.0
SKIN_HU = 20.0
CARTILAGE_HU = 120.0
DISC_HU = 80.0
CSF_HU = 15.0
TABLE_HU = 150.0

#: Default display windows (centre, width): lung, mediastinum, bone.
CT_WINDOWS: list[tuple[float, float]] = [(-600.0, 1500.0), (40.0, 400.0), (400.0, 1800.0)]

DEFAULT_SHAPE = (200, 512, 512)
DEFAULT_SPACING = (0.7, 0.7, 1.5)

#: Correlation length of the simulated CT noise (Gaussian sigma in mm, in-plane).
NOISE_CORRELATION_MM = 0.55


def chest_label_table() -> LabelTable:
    """The label table of the phantom's ground truth (names and colours of ``LABELS``)."""
    table = LabelTable()
    for value, name in LABELS.items():
        table.add(value, name, LABEL_COLORS[value])
    return table
