"""Demo content: the synthetic chest phantoms (CT, ground truth, radiograph) behind the demo study and the demo models.

Module order, lowest first (no module imports one above it):
``phantom_tissues`` (labels, tissue codes, HU) -> ``phantom_anatomy`` (parameters
and shapes in mm) -> ``phantoms`` (rendering on a voxel grid, low-dose
simulation); ``phantom_radiograph`` projects any CT volume. Uses ``imaging`` and
``core`` only; used by ``services.demo`` and ``ai.demo_models``.
"""
