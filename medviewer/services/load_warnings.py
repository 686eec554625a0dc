"""What the loader had to assume about an image, and whether a model may run on it.

The readers (``medviewer.io``) put everything they corrected or invented into
``volume.metadata.warnings``. Most are information (a colour image made grayscale);
two kinds change what a network sees, so ``medviewer infer`` refuses them unless the
user insists (``--force``):

* invented geometry: a voxel size or an orientation the headers do not give. A model
  resamples to its own spacing and orientation, so a guessed 1 mm or a guessed axis
  order gives it a stretched or mirrored image, and its left/right labels may swap.
  An origin assumed to be 0 is only reported: the result lies on the input's own grid.
  PNG/JPEG/TIFF pictures have no physical pixel size by nature: reported, not refused.
* NaN/Inf voxels: a convolution spreads them over its whole receptive field.
"""

from __future__ import annotations

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

#: Phrases of the readers' warnings (io/nifti_header.py, io/image_files.py, io/dicom_series.py)
#: that say a voxel size or orientation was invented. tests/services/test_load_warnings.py
#: loads real files for each, so a change of wording there fails a test here.
INVENTED_GEOMETRY_PHRASES = (
    "1 mm was assumed",  # NIfTI pixdim 0 or NaN
    "the header has no orientation",  # NIfTI qform_code = sform_code = 0
    "the orientation is unknown",  # DICOM ImageOrientationPatient unusable: a plane was assumed
    "axial directions assumed",  # DICOM without orientation nor position
    "pixel spacing is unknown",  # DICOM without PixelSpacing
    "no slice distance in the headers",  # DICOM slices stacked 1 mm apart
    "have no position in space",  # multi-frame without positions: stacked in frame order
)


class UnsafeInputError(MedviewerError):
    """An image a model should not run on as it is (invented geometry, NaN voxels) unless the user insists."""


def invented_geometry(volume: Volume) -> list[str]:
    """The warnings of ``volume`` that say its voxel size or orientation was invented."""
    return [w for w in volume.metadata.warnings if any(phrase in w for phrase in INVENTED_GEOMETRY_PHRASES)]


def non_finite_count(volume: Volume) -> int:
    """Number of NaN/Inf voxels (0 for integer images)."""
    array = volume.array
    if array.dtype.kind not in "fc":
        return 0
    return int(sum(plane.size - np.count_nonzero(np.isfinite(plane)) for plane in array))


def check_model_input(volume: Volume, path: str) -> None:
    """Raise :class:`UnsafeInputError` naming ``path`` when a model should not run on ``volume`` as it is."""
    reasons = []
    invented = invented_geometry(volume)
    if invented:
        reasons.append(f"its {_what_was_invented(invented)} was invented by the reader (see the warnings)")
    bad = non_finite_count(volume)
    if bad:
        reasons.append(f"{bad} voxel{'s are' if bad != 1 else ' is'} NaN/Inf, which the network would spread")
    if reasons:
        fill = " (NaN/Inf voxels then get the image's lowest value)" if bad else ""
        raise UnsafeInputError(f"the model was not run: {' and '.join(reasons)}; --force runs it anyway{fill}", path)


def _what_was_invented(warnings: list[str]) -> str:
    text = " ".join(warnings)
    size = any(p in text for p in ("1 mm was assumed", "pixel spacing is unknown", "no slice distance", "no position in space"))
    orientation = any(p in text for p in ("no orientation", "orientation is unknown", "directions assumed"))
    return " and ".join(n for n, hit in (("voxel size", size), ("orientation", orientation)) if hit) or "geometry"


def fill_non_finite(volume: Volume) -> tuple[Volume, float]:
    """A copy of ``volume`` whose NaN/Inf voxels hold its lowest finite value (and that value).

    For ``--force``: the model then sees background where the file has no value. The
    loader refuses images without any finite voxel, so a lowest value always exists.
    """
    array = np.array(volume.array, copy=True)
    finite = np.isfinite(array)
    lowest = float(array[finite].min())
    array[~finite] = lowest
    return Volume(array, volume.geometry, volume.modality, volume.metadata, volume.name), lowest
