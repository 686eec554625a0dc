"""Write volumes and label maps to NIfTI, NRRD/NHDR and MetaImage (MHA/MHD); read label maps back.

Everything goes through SimpleITK so the geometry written is the geometry every ITK
tool reads, and every write is verified and atomic (``medviewer.io.image_write``,
``medviewer.io.atomic``): a full disk raises ``DiskFullError`` and keeps the old file. Label maps written to
NRRD or MetaImage carry their label table (names, colours) in a header field that
:func:`read_label_map` restores; NIfTI has no place for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medviewer.core.errors import CorruptFileError, MedviewerError, UnsupportedFormatError
from medviewer.core.geometry import Geometry
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.core.volume import Volume
from medviewer.imaging.sitk_bridge import array_to_sitk, geometry_from_sitk
from medviewer.io.atomic import atomic_write_group, atomic_write_with
from medviewer.io.dicom_headers import segmentation_kind
from medviewer.io.formats import VOLUME_FORMATS, extension_of
from medviewer.io.image_write import write_image
from medviewer.io.image_files import array_from_image, read_information

#: Header field holding a label map's LabelTable as JSON (NRRD and MetaImage only).
LABEL_TABLE_KEY = "medviewer_label_table"
_DETACHED = {".mhd", ".nhdr"}
_KEEPS_METADATA = {".nrrd", ".nhdr", ".mha", ".mhd"}


def _check_writable(path: str | os.PathLike[str]) -> str:
    extension = extension_of(path)
    if extension not in VOLUME_FORMATS:
        raise UnsupportedFormatError(
            f"cannot write '{extension or Path(path).name}' files; use one of {', '.join(VOLUME_FORMATS)}", path
        )
    return extension


def _write(image: sitk.Image, path: str | os.PathLike[str], compress: bool) -> Path:
    """Write through a verified temporary file: a short write never replaces the file at ``path``."""
    extension = _check_writable(path)

    def write(tmp: Path) -> None:
        write_image(image, tmp, compress or extension == ".nii.gz")

    if extension in _DETACHED:
        atomic_write_group(path, write)
    else:
        atomic_write_with(path, write)
    return Path(path)


def write_volume(volume: Volume, path: str | os.PathLike[str], compress: bool = False) -> Path:
    """Write a volume's voxels and geometry to ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha`` or ``.mhd``."""
    _check_writable(path)
    return _write(array_to_sitk(volume.array, volume.geometry), path, compress)


def write_label_map(label_map: LabelMap, path: str | os.PathLike[str], compress: bool = True) -> Path:
    """Write a label map (its table too, for NRRD/MetaImage); compressed by default since masks are sparse."""
    extension = _check_writable(path)
    image = array_to_sitk(label_map.array, label_map.geometry)
    if extension in _KEEPS_METADATA:
        image.SetMetaData(LABEL_TABLE_KEY, json.dumps(label_map.table.to_dict(), separators=(",", ":")))
    return _write(image, path, compress)


def read_label_map(
    path: str | os.PathLike[str],
    image_geometry: Geometry,
    table: LabelTable | None = None,
    name: str | None = None,
) -> LabelMap:
    """Read a label map (NIfTI, NRRD, MetaImage, DICOM SEG or RT structure set) lying exactly on ``image_geometry``.

    Raises ``GeometryMismatchError`` naming the file when its grid differs (size,
    spacing, origin or direction; the same grid stored in another axis order is
    re-indexed), ``CorruptFileError`` when it holds anything but integers 0..65535,
    ``MedviewerError`` for a SEG/RTSTRUCT whose overlapping structures need several
    layers (see :func:`read_label_layers`).
    """
    path = os.fspath(path)
    layers = _read_dicom_layers(path, image_geometry, name)
    if layers is not None:
        if len(layers) > 1:
            raise MedviewerError(
                f"the file's structures overlap and need {len(layers)} label layers; open it in the app "
                "(File > Open label map) or with read_label_layers", path
            )
        if table is not None:
            layers[0].table = table
        return layers[0]
    reader = read_information(path)
    if reader.GetDimension() not in (2, 3) or reader.GetNumberOfComponents() != 1:
        raise CorruptFileError("a label map must be a 2D or 3D image with one value per voxel", path)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise CorruptFileError(f"cannot read the label map: {str(error).strip().splitlines()[-1]}", path) from None
    if table is None and image.HasMetaDataKey(LABEL_TABLE_KEY):
        try:
            table = LabelTable.from_dict(json.loads(image.GetMetaData(LABEL_TABLE_KEY)))
        except (ValueError, KeyError, TypeError):
            table = None  # a damaged table is not worth refusing the voxels for
    geometry = geometry_from_sitk(image)
    array = array_from_image(image)
    del image
    if array.ndim == 2:
        array = array[None]
    array = _as_label_values(array, path)
    label_name = name or Path(path).name.split(".")[0]
    return LabelMap.matching(array, geometry, image_geometry, table=table, name=label_name, path=path)


def read_label_layers(path: str | os.PathLike[str], image_geometry: Geometry) -> list[LabelMap]:
    """Every label layer a file holds over ``image_geometry``: several for a DICOM SEG or RT structure
    set whose structures overlap (``medviewer.io.label_layers``), else the one :func:`read_label_map` reads."""
    layers = _read_dicom_layers(os.fspath(path), image_geometry)
    return layers if layers is not None else [read_label_map(path, image_geometry)]


def _read_dicom_layers(path: str, image_geometry: Geometry, name: str | None = None) -> list[LabelMap] | None:
    """The layers of a DICOM SEG or RT structure set; None for any other file."""
    kind = segmentation_kind(path)
    if kind == "SEG":
        from medviewer.io.dicom_seg import read_dicom_seg  # highdicom only when a SEG is opened

        return read_dicom_seg(path, image_geometry, name)
    if kind == "RTSTRUCT":
        from medviewer.io.dicom_rtstruct import read_rtstruct

        return read_rtstruct(path, image_geometry)
    return None


def _as_label_values(array: np.ndarray, path: str) -> np.ndarray:
    if array.dtype in (np.uint8, np.uint16):
        return array
    if array.dtype.kind == "f":
        if not np.array_equal(array, np.rint(array)):
            raise CorruptFileError("a label map must hold whole numbers, this one holds fractions", path)
    elif array.dtype.kind not in "iub":
        raise CorruptFileError(f"a label map cannot hold {array.dtype} values", path)
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise CorruptFileError(
            f"label values must be 0..65535, this file has {array.min():g}..{array.max():g}", path
        )
    return array.astype(np.uint8 if (array.size == 0 or array.max() < 256) else np.uint16)
