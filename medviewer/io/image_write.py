"""SimpleITK image writes that prove the file complete before anyone relies on it.

SimpleITK's NIfTI writer does not raise when the disk fills up: it prints
``NWAD: wrote only 0 of ... bytes`` and leaves a short file. :func:`write_image`
therefore verifies every file it writes: a gzip stream must decompress completely
with a good CRC, a NIfTI must hold its header's whole voxel block with the size and
pixel type that were written, and any other format is read back and compared voxel
for voxel. Combined with :mod:`medviewer.io.atomic` nothing short replaces a good file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medviewer.io.atomic import WriteFailedError, check_not_empty

_CHUNK = 1 << 20
#: NIfTI datatype code -> bits per voxel (the ones SimpleITK writes).
_NIFTI_BITS = {2: 8, 4: 16, 8: 32, 16: 32, 64: 64, 256: 8, 512: 16, 768: 32, 1024: 64, 1280: 64, 32: 64, 128: 24, 2304: 32}


def write_image(image: sitk.Image, path: str | Path, compress: bool = False) -> None:
    """Write ``image`` to ``path`` with SimpleITK and verify the result (``WriteFailedError`` if short)."""
    path = Path(path)
    try:
        sitk.WriteImage(image, str(path), useCompression=compress)
    except RuntimeError as error:
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        raise WriteFailedError(f"cannot write the file: {' '.join(lines[-2:]) if lines else error}", path) from None
    verify_image(path, image)


def verify_image(path: Path, image: sitk.Image) -> None:
    """Raise ``WriteFailedError`` unless ``path`` holds all of ``image``."""
    check_not_empty(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        header, length = _nifti_header_and_length(path)
        _check_nifti(path, header, length, image)
        return
    try:
        back = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise WriteFailedError(f"the file written cannot be read back ({str(error).strip().splitlines()[-1]})", path) from None
    if back.GetSize() != image.GetSize() or back.GetPixelID() != image.GetPixelID():
        raise WriteFailedError("the file written does not hold the image's size and pixel type", path)
    if not np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image)):
        raise WriteFailedError("the voxels read back differ from the ones written", path)


def _nifti_header_and_length(path: Path) -> tuple[bytes, int]:
    """The first 540 bytes (enough for NIfTI-1 and -2 headers) and the total (decompressed) length."""
    if not path.name.lower().endswith(".gz"):
        with open(path, "rb") as handle:
            return handle.read(540), path.stat().st_size
    head = b""
    length = 0
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                if len(head) < 540:
                    head += chunk[: 540 - len(head)]
                length += len(chunk)
    except (EOFError, OSError, zlib.error) as error:
        raise WriteFailedError(f"the compressed file written is incomplete ({error})", path) from None
    return head, length


def _check_nifti(path: Path, header: bytes, length: int, image: sitk.Image) -> None:
    if len(header) < 348:
        raise WriteFailedError("the NIfTI header written is incomplete", path)
    for order in "<>":
        size = struct.unpack(order + "i", header[:4])[0]
        if size in (348, 540):
            break
    else:
        raise WriteFailedError("the file written is not a NIfTI file", path)
    if size == 348:
        dims = struct.unpack(order + "8h", header[40:56])
        datatype, bitpix = struct.unpack(order + "hh", header[70:74])
        vox_offset = int(struct.unpack(order + "f", header[108:112])[0])
    else:
        if len(header) < 540:
            raise WriteFailedError("the NIfTI-2 header written is incomplete", path)
        datatype, bitpix = struct.unpack(order + "hh", header[12:16])
        dims = struct.unpack(order + "8q", header[16:80])
        vox_offset = int(struct.unpack(order + "q", header[168:176])[0])
    count = int(np.prod([max(int(d), 1) for d in dims[1 : 1 + max(int(dims[0]), 1)]]))
    written_size = tuple(int(d) for d in dims[1 : 1 + int(dims[0])])
    expected_size = tuple(image.GetSize()) + ((image.GetNumberOfComponentsPerPixel(),) if image.GetNumberOfComponentsPerPixel() > 1 else ())
    if tuple(d for d in written_size if d != 1) != tuple(d for d in expected_size if d != 1):
        raise WriteFailedError(f"the NIfTI written has size {written_size}, not {expected_size}", path)
    bits = bitpix or _NIFTI_BITS.get(datatype, 0)
    needed = vox_offset + count * bits // 8
    if length < needed:
        raise WriteFailedError(f"only {length} of {needed} bytes of the NIfTI reached the disk", path)
