"""The NIfTI-1/NIfTI-2 header fields medviewer checks itself before trusting SimpleITK.

ITK reads a NaN sform into NaN directions, turns pixdim 0 into 1 mm without a word and
zero-fills a truncated .nii.gz. This module reads the header (348 or 540 bytes, either
byte order, gzipped or not) so the reader can refuse what is broken, fall back from a
broken sform to a valid qform (what nibabel and ITK users expect), and say which
geometry was invented.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

#: NIfTI-1 byte offsets of the fields used here (NIfTI-2 has its own table below).
_NIFTI1 = {"dim": (40, "8h"), "datatype": (70, "h"), "bitpix": (72, "h"), "pixdim": (76, "8f"), "vox_offset": (108, "f"),
           "scl": (112, "2f"), "qform_code": (252, "h"), "sform_code": (254, "h"), "quatern": (256, "6f"),
           "srow": (280, "12f")}
_NIFTI2 = {"dim": (16, "8q"), "datatype": (12, "h"), "bitpix": (14, "h"), "pixdim": (104, "8d"), "vox_offset": (168, "q"),
           "scl": (176, "2d"), "qform_code": (344, "i"), "sform_code": (348, "i"), "quatern": (352, "6d"),
           "srow": (400, "12d")}
_AXES = "xyz"


@dataclass
class NiftiHeader:
    """The geometry- and size-related fields of a NIfTI header."""

    version: int
    byte_order: str
    dim: tuple[int, ...]
    datatype: int
    bitpix: int
    pixdim: tuple[float, ...]
    vox_offset: int
    scl_slope: float
    scl_inter: float
    qform_code: int
    sform_code: int
    quatern: tuple[float, ...]  # b, c, d, qoffset x, y, z
    srow: tuple[float, ...]  # srow_x, srow_y, srow_z (4 values each)

    @property
    def spatial_size(self) -> tuple[int, ...]:
        rank = max(0, min(int(self.dim[0]), 7))
        return tuple(int(v) for v in self.dim[1 : 1 + min(rank, 3)])

    @property
    def volume_bytes(self) -> int:
        """Bytes of the first 3D volume."""
        return math.prod(max(v, 1) for v in self.spatial_size) * max(self.bitpix, 0) // 8

    @property
    def total_bytes(self) -> int:
        """Bytes of every volume in the file."""
        rank = max(0, min(int(self.dim[0]), 7))
        return math.prod(max(int(v), 1) for v in self.dim[1 : 1 + rank]) * max(self.bitpix, 0) // 8

    @property
    def slice_bytes(self) -> int:
        size = self.spatial_size
        return max(1, math.prod(max(v, 1) for v in size[:2]) * max(self.bitpix, 0) // 8)

    def missing_slices(self, data_bytes: int) -> str:
        """'slices K..L missing' for a first volume holding only ``data_bytes`` bytes."""
        size = self.spatial_size
        slices = size[2] if len(size) > 2 else 1
        first = max(0, data_bytes) // self.slice_bytes
        if first >= slices:
            return "later volumes missing"
        return f"slice {first} missing" if first == slices - 1 else f"slices {first}..{slices - 1} of 0..{slices - 1} missing"

    # ------------------------------------------------------------------ geometry
    def spacing_warnings(self) -> list[str]:
        """Axes whose pixdim is 0 or not a number: ITK uses 1 mm there, which is invented."""
        bad = [_AXES[i] for i in range(len(self.spatial_size)) if not (math.isfinite(self.pixdim[i + 1]) and self.pixdim[i + 1] != 0)]
        if not bad:
            return []
        values = ", ".join(f"{axis} = {self.pixdim[_AXES.index(axis) + 1]:g}" for axis in bad)
        return [f"the header gives no voxel size along {', '.join(bad)} (pixdim {values}): 1 mm was assumed, "
                "so distances and volumes along it are invented"]

    def sform_problem(self) -> str | None:
        """Why the sform cannot be used ('' when it can), None when there is no sform."""
        if self.sform_code <= 0:
            return None
        matrix = np.asarray(self.srow, dtype=float).reshape(3, 4)
        if not np.all(np.isfinite(matrix)):
            return "the sform (srow_x/y/z) holds NaN or infinite values"
        if _singular(matrix[:, :3]):
            return "the sform (srow_x/y/z) is singular (its axes are zero or parallel)"
        return ""

    def qform_problem(self) -> str | None:
        """Why the qform cannot be used ('' when it can), None when there is no qform."""
        if self.qform_code <= 0:
            return None
        values = self.quatern + tuple(self.pixdim[:4])
        if not all(math.isfinite(v) for v in values):
            return "the qform (quatern_b/c/d, qoffset, pixdim) holds NaN or infinite values"
        if sum(v * v for v in self.quatern[:3]) > 1.0 + 1e-6:
            return "the qform quaternion is not a rotation (b\u00b2 + c\u00b2 + d\u00b2 > 1)"
        return ""

    def qform_geometry(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """(spacing, origin, direction) in LPS from the qform, as niftilib/ITK compute it."""
        b, c, d, x, y, z = self.quatern
        a = math.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
        rotation = np.array([
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ])
        if self.pixdim[0] < 0:  # qfac
            rotation[:, 2] *= -1
        ras_to_lps = np.diag([-1.0, -1.0, 1.0])
        direction = ras_to_lps @ rotation
        spacing = tuple(abs(v) if math.isfinite(v) and v != 0 else 1.0 for v in self.pixdim[1:4])
        return spacing, (-x, -y, z), tuple(direction.ravel())


def _singular(matrix: np.ndarray) -> bool:
    norms = np.linalg.norm(matrix, axis=0)
    if np.any(norms == 0):
        return True
    return abs(np.linalg.det(matrix / norms)) < 1e-6


def read_nifti_header(path: str) -> NiftiHeader | None:
    """The header of a .nii/.nii.gz file, or None when it is not a NIfTI-1/2 header."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            block = handle.read(540)
    except (OSError, EOFError, zlib.error):
        return None
    for order in ("<", ">"):
        if len(block) >= 348 and struct.unpack(order + "i", block[:4])[0] == 348:
            version, table = 1, _NIFTI1
            break
        if len(block) >= 540 and struct.unpack(order + "i", block[:4])[0] == 540:
            version, table = 2, _NIFTI2
            break
    else:
        return None

    def field(name: str):
        offset, layout = table[name]
        values = struct.unpack_from(order + layout, block, offset)
        return values if len(values) > 1 else values[0]

    slope, inter = field("scl")
    return NiftiHeader(
        version=version, byte_order=order, dim=tuple(int(v) for v in field("dim")), datatype=int(field("datatype")),
        bitpix=int(field("bitpix")), pixdim=tuple(float(v) for v in field("pixdim")),
        vox_offset=int(field("vox_offset")) if math.isfinite(field("vox_offset")) else -1,
        scl_slope=float(slope), scl_inter=float(inter), qform_code=int(field("qform_code")),
        sform_code=int(field("sform_code")), quatern=tuple(float(v) for v in field("quatern")),
        srow=tuple(float(v) for v in field("srow")),
    )
