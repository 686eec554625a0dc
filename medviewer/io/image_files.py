"""NIfTI, NRRD/NHDR, MetaImage (MHA, MHD+RAW) and 2D raster images, through SimpleITK.

Geometry is exactly what SimpleITK reads. Pixels are handed to numpy without the copy
``GetArrayFromImage`` makes (the array keeps the SimpleITK image alive), so loading
peaks at about the size of the volume. PNG/JPEG/TIFF/BMP files carry no physical pixel
size (their DPI is a printing hint), so they load with spacing 1, uncalibrated.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medviewer.core.errors import CorruptFileError, InconsistentSeriesError, UnsupportedFormatError
from medviewer.core.geometry import Geometry
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.core.study import SeriesInfo
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.io.formats import extension_of, is_raster, sitk_format_of

LUMINANCE_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# SimpleITK component type -> numpy dtype name (vector types map to their component).
_COMPONENT_DTYPES = {
    sitk.sitkUInt8: "uint8",
    sitk.sitkInt8: "int8",
    sitk.sitkUInt16: "uint16",
    sitk.sitkInt16: "int16",
    sitk.sitkUInt32: "uint32",
    sitk.sitkInt32: "int32",
    sitk.sitkUInt64: "uint64",
    sitk.sitkInt64: "int64",
    sitk.sitkFloat32: "float32",
    sitk.sitkFloat64: "float64",
    sitk.sitkVectorUInt8: "uint8",
    sitk.sitkVectorInt8: "int8",
    sitk.sitkVectorUInt16: "uint16",
    sitk.sitkVectorInt16: "int16",
    sitk.sitkVectorUInt32: "uint32",
    sitk.sitkVectorInt32: "int32",
    sitk.sitkVectorFloat32: "float32",
    sitk.sitkVectorFloat64: "float64",
}


@dataclass
class ImageFilePlan:
    """Reader-private part of a ``SeriesInfo`` for one SimpleITK-readable file."""

    path: str
    format: str
    raster: bool
    components: int
    #: For 4D files: read only this 3D block (SimpleITK streaming extraction).
    extract_size: list[int] | None = None
    extract_index: list[int] | None = None
    warnings: list[str] = field(default_factory=list)


class _ImageBuffer:
    """Exposes a SimpleITK image's pixel buffer to numpy and keeps the image alive."""

    def __init__(self, image: sitk.Image) -> None:
        self.image = image
        view = sitk.GetArrayViewFromImage(image)  # also makes the buffer unique to this image
        interface = dict(view.__array_interface__)
        interface["data"] = (interface["data"][0], False)  # we own the buffer: writeable
        self.__array_interface__ = interface


def array_from_image(image: sitk.Image) -> np.ndarray:
    """(z, y, x[, c]) array sharing the image's memory (no copy); the array owns the image."""
    return np.asarray(_ImageBuffer(image))


def _short_error(error: Exception) -> str:
    """The useful part of a SimpleITK exception (its last line, without source locations)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line.removeprefix("sitk::ERROR:").strip() for line in lines if not line.startswith(("Exception thrown", "/", "In "))]
    message = (useful or lines or [type(error).__name__])[-1]
    if "Unable to determine ImageIO reader" in message:
        return "the content is not in this format, or in a variant SimpleITK cannot read"
    return message[:200]


def read_information(path: str) -> sitk.ImageFileReader:
    """A reader with the header of ``path`` read, or a MedviewerError naming the file."""
    format_name = sitk_format_of(path)
    if format_name is None:
        raise UnsupportedFormatError(f"unsupported file type '{extension_of(path) or Path(path).name}'", path)
    if not os.path.isfile(path):
        raise CorruptFileError("file not found", path)
    if os.path.getsize(path) == 0:
        raise CorruptFileError(f"the file is empty (not a valid {format_name} file)", path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise CorruptFileError(f"cannot be read as {format_name}: {_short_error(error)}", path) from None
    return reader


def scan_image_file(path: str) -> SeriesInfo:
    """Describe one NIfTI/NRRD/MHA/MHD/PNG/JPEG/TIFF/BMP file without reading its pixels."""
    path = os.fspath(path)
    reader = read_information(path)
    format_name = sitk_format_of(path) or ""
    raster = is_raster(path)
    dimension = reader.GetDimension()
    size = list(reader.GetSize())
    warnings: list[str] = []
    extract_size = extract_index = None
    if dimension > 4 or dimension < 2:
        raise UnsupportedFormatError(f"{dimension}D images are not supported (2D, 3D or 4D only)", path)
    if dimension == 4:
        if size[3] > 1:
            warnings.append(f"4D image with {size[3]} volumes: only the first volume is loaded")
        extract_size, extract_index = size[:3] + [0], [0, 0, 0, 0]
    components = reader.GetNumberOfComponents()
    if components in (3, 4):
        warnings.append(f"colour image ({'RGBA' if components == 4 else 'RGB'}) converted to grayscale (luminance)")
    elif components > 1:
        warnings.append(f"image with {components} components per pixel: only the first component is loaded")

    if raster:
        geometry = Geometry((size[0], size[1], size[2] if dimension >= 3 else 1))
        warnings.append(f"{format_name} files carry no physical pixel size: spacing set to 1 and measurements are in pixels")
    else:
        geometry = _geometry(dimension, size, reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection(), path)
    dtype = _COMPONENT_DTYPES.get(reader.GetPixelID(), "")
    if components in (3, 4) and dtype not in ("uint8", "uint16"):
        dtype = "float32"
    name = Path(path).name
    description = name[: -len(extension_of(path))] if extension_of(path) else name
    plan = ImageFilePlan(path, format_name, raster, components, extract_size, extract_index, warnings)
    return SeriesInfo(
        uid=os.path.abspath(path),
        description=description,
        modality=_modality(reader),
        files=[path] + _data_files(path, reader),
        geometry=geometry,
        pixel_type=dtype,
        warnings=list(warnings),
        source_format=format_name,
        source_path=path,
        plan=plan,
    )


def _geometry(dimension: int, size, spacing, origin, direction, path: str) -> Geometry:
    if dimension == 2:
        matrix = np.eye(3)
        matrix[:2, :2] = np.asarray(direction).reshape(2, 2)
        return Geometry((size[0], size[1], 1), (*spacing, 1.0), (*origin, 0.0), tuple(matrix.ravel()))
    matrix = np.asarray(direction).reshape(dimension, dimension)[:3, :3]
    try:
        return Geometry(tuple(size[:3]), tuple(spacing[:3]), tuple(origin[:3]), tuple(matrix.ravel()))
    except ValueError as error:
        raise CorruptFileError(f"invalid geometry in the header: {error}", path) from None


def _modality(reader: sitk.ImageFileReader) -> str:
    if reader.HasMetaDataKey("Modality"):  # MetaImage
        value = reader.GetMetaData("Modality").upper()
        return value[len("MET_MOD_") :] if value.startswith("MET_MOD_") else ""
    return ""


def _data_files(path: str, reader: sitk.ImageFileReader) -> list[str]:
    """The detached data file named by an MHD (ElementDataFile) or NHDR (data file) header."""
    extension = extension_of(path)
    if extension not in (".mhd", ".nhdr"):
        return []
    key = "elementdatafile" if extension == ".mhd" else "data file"
    separator = "=" if extension == ".mhd" else ":"
    try:
        with open(path, "r", encoding="latin-1") as handle:
            header = handle.read(65536)
    except OSError:
        return []
    for line in header.splitlines():
        name, _, value = line.partition(separator)
        value = value.strip()
        if name.strip().lower() in (key, "datafile") and value and value.upper() != "LOCAL" and "%" not in value:
            return [os.path.join(os.path.dirname(path), value)]
    return []


# NIfTI datatype code -> numpy type (scalar types only).
_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8"}


def _nifti_layout(path: str) -> tuple[np.dtype, int, float, float] | None:
    """(voxel dtype with byte order, data offset, scl_slope, scl_inter) from a NIfTI-1 header."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(348)
    except (OSError, EOFError):
        return None
    if len(header) < 348:
        return None
    for order in ("<", ">"):
        size = struct.unpack(order + "i", header[:4])[0]
        if size == 348:  # NIfTI-1
            datatype = struct.unpack(order + "h", header[70:72])[0]
            offset = struct.unpack(order + "f", header[108:112])[0]
            slope, inter = struct.unpack(order + "ff", header[112:120])
            break
    else:
        return None
    if datatype not in _NIFTI_DTYPES or not offset >= 348:
        return None
    return np.dtype(order + _NIFTI_DTYPES[datatype]), int(offset), float(slope), float(inter)


def read_nifti_voxels(path: str, shape_zyx: tuple[int, int, int], expected_dtype: str) -> np.ndarray | None:
    """The first volume of a NIfTI file read straight into one array (no second copy).

    SimpleITK's NIfTI reader peaks at twice the image size; reading the voxels here
    keeps loading at about one (gzipped files work too, but more slowly than
    SimpleITK). Only the simple, common case is handled (a scalar type
    without scl_slope/scl_inter scaling, matching what SimpleITK reported); anything
    else returns None and goes through SimpleITK.
    """
    layout = _nifti_layout(path)
    if layout is None:
        return None
    dtype, offset, slope, inter = layout
    scaled = slope == slope and slope not in (0.0, 1.0) or (inter == inter and inter != 0.0)
    if scaled or dtype.newbyteorder("=").name != expected_dtype:
        return None
    out = np.empty(shape_zyx, dtype=dtype.newbyteorder("="))
    buffer = memoryview(out).cast("B")
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            handle.seek(offset)
            filled = 0
            while filled < len(buffer):
                count = handle.readinto(buffer[filled:])
                if not count:
                    break
                filled += count
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptFileError(f"cannot be read as NIfTI: {error}", path) from None
    if filled < len(buffer):
        raise CorruptFileError(f"the file is truncated: {filled} of {len(buffer)} voxel bytes", path)
    if not dtype.isnative:
        out.byteswap(inplace=True)
    return out


def load_image_file(
    series: SeriesInfo, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None
) -> Volume:
    """Read the pixels of a file described by :func:`scan_image_file`."""
    plan: ImageFilePlan = series.plan
    if cancel is not None:
        cancel.raise_if_cancelled()
    progress(0.0, f"Reading {Path(plan.path).name}")
    array = None
    if plan.format == "NIfTI" and plan.components == 1 and not plan.path.lower().endswith(".gz"):
        # Uncompressed NIfTI: read the voxels directly (1x memory). For .nii.gz, ITK's
        # zlib-ng decompresses about 2.5x faster than Python's zlib, so SimpleITK stays.
        array = read_nifti_voxels(plan.path, series.geometry.shape, series.pixel_type)
    if array is None:
        reader = sitk.ImageFileReader()
        reader.SetFileName(plan.path)
        if plan.extract_size is not None:
            reader.SetExtractSize(plan.extract_size)
            reader.SetExtractIndex(plan.extract_index)
        try:
            image = reader.Execute()
        except RuntimeError as error:
            raise CorruptFileError(f"cannot be read as {plan.format}: {_short_error(error)}", plan.path) from None
        array = array_from_image(image)
        del image
    if cancel is not None:
        cancel.raise_if_cancelled()
    image_is_2d = series.geometry.is_2d
    if array.ndim == (3 if plan.components > 1 else 2):
        array = array[None]
    if plan.components in (3, 4):
        luma = array[..., :3].astype(np.float32) @ LUMINANCE_WEIGHTS
        array = np.rint(luma).astype(series.pixel_type) if series.pixel_type != "float32" else luma
    elif plan.components > 1:
        array = np.ascontiguousarray(array[..., 0])
    geometry = series.geometry
    if tuple(array.shape) != geometry.shape:
        raise InconsistentSeriesError(
            f"the file changed since it was scanned (shape {array.shape} instead of {geometry.shape})", plan.path
        )
    metadata = VolumeMetadata(
        series_description=series.description,
        calibrated=not plan.raster,
        warnings=list(plan.warnings),
        source_path=plan.path,
        source_format=plan.format,
        extra={"two_dimensional": image_is_2d},
    )
    progress(1.0, "Loaded")
    return Volume(array, geometry, modality=series.modality, metadata=metadata, name=series.description)
