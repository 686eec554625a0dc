"""NIfTI, NRRD/NHDR, MetaImage (MHA, MHD+RAW) and 2D raster images, through SimpleITK.

Geometry is exactly what SimpleITK reads. Pixels are handed to numpy without the copy
``GetArrayFromImage`` makes (the array keeps the SimpleITK image alive), so loading
peaks at about the size of the volume. PNG/JPEG/TIFF/BMP files carry no physical pixel
size (their DPI is a printing hint), so they load with spacing 1, uncalibrated.
"""

from __future__ import annotations

import gzip
import os
import re
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
from medviewer.io import file_checks
from medviewer.io.formats import extension_of, is_raster, sitk_format_of
from medviewer.io.native_noise import NativeOutput, quiet_native_stderr
from medviewer.io.nifti_header import NiftiHeader, read_nifti_header

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
    #: Bytes the loaded pixels take (before any colour conversion), for the memory check.
    pixel_bytes: int = 0
    #: (size, mtime) of the file at scan time, to tell a changed file from a reader surprise.
    stamp: tuple[int, float] = (0, 0.0)
    #: The NIfTI header, when the file is one (its promised size is checked after reading).
    nifti: NiftiHeader | None = None


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


def _short_error(error: Exception, native: NativeOutput | None = None) -> str:
    """The useful part of a SimpleITK exception, with what the native library printed when it says more."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line.removeprefix("sitk::ERROR:").strip() for line in lines if not line.startswith(("Exception thrown", "/", "In "))]
    message = (useful or lines or [type(error).__name__])[-1]
    if "Unable to determine ImageIO reader" in message:
        message = "the content is not in this format, or in a variant SimpleITK cannot read"
    message = re.sub(r"ITK ERROR: \w+\(0x[0-9a-f]+\): ", "", message)
    message = message.removeprefix("Reason: ")
    detail = native.detail() if native is not None else ""
    if "No such file or directory" in message or "Error while reading file" in message:
        message = detail or "the file is damaged or truncated"  # ITK's errno text is stale here
    elif detail and detail not in message:
        message = f"{message} ({detail})"
    return message[:300]


def read_information(path: str) -> sitk.ImageFileReader:
    """A reader with the header of ``path`` read, or a MedviewerError naming the file."""
    format_name = sitk_format_of(path)
    if format_name is None:
        raise UnsupportedFormatError(f"unsupported file type '{extension_of(path) or Path(path).name}'", path)
    if not os.path.isfile(path):
        raise CorruptFileError("file not found", path)
    file_checks.require_readable(path)
    if os.path.getsize(path) == 0:
        raise CorruptFileError(f"the file is empty (not a valid {format_name} file)", path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with quiet_native_stderr() as native:
        try:
            reader.ReadImageInformation()
        except RuntimeError as error:
            failure = error
        else:
            failure = None
    if failure is not None:
        raise CorruptFileError(f"cannot be read as {format_name}: {_short_error(failure, native)}", path)
    return reader


def scan_image_file(path: str) -> SeriesInfo:
    """Describe one NIfTI/NRRD/MHA/MHD/PNG/JPEG/TIFF/BMP file without reading its pixels."""
    path = os.fspath(path)
    format_name = sitk_format_of(path) or ""
    warnings: list[str] = []
    nifti = fallback = None
    if format_name == "NIfTI" and os.path.isfile(path):
        # Checked before ITK, which refuses some broken sforms with a vaguer message and
        # turns others into NaN directions.
        file_checks.require_readable(path)
        nifti = read_nifti_header(path)
        if nifti is not None:
            fallback = _check_nifti(nifti, path, warnings)
    reader = read_information(path)
    raster = is_raster(path)
    dimension = reader.GetDimension()
    size = list(reader.GetSize())
    extract_size = extract_index = None
    if dimension > 4 or dimension < 2:
        raise UnsupportedFormatError(f"{dimension}D images are not supported (2D, 3D or 4D only)", path)
    if dimension == 4:
        if size[3] > 1:
            warnings.append(f"4D image with {size[3]} volumes: only the first volume is loaded")
        extract_size, extract_index = size[:3] + [0], [0, 0, 0, 0]
    if reader.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise UnsupportedFormatError(
            "the voxels are complex numbers (e.g. raw MR k-space or phase data); medviewer shows real-valued "
            "images only: save the magnitude (numpy.abs) as a real image first", path
        )
    components = reader.GetNumberOfComponents()
    if components in (3, 4):
        warnings.append(f"colour image ({'RGBA' if components == 4 else 'RGB'}) converted to grayscale (luminance)")
    elif components > 1:
        warnings.append(f"image with {components} components per pixel: only the first component is loaded")

    component_bytes = np.dtype(_COMPONENT_DTYPES.get(reader.GetPixelID(), "uint8")).itemsize
    loaded_size = tuple(size[:3])
    pixel_bytes = file_checks.voxel_bytes(loaded_size, component_bytes * components)
    spacing, origin, direction = reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()
    if fallback is not None and dimension >= 3:
        spacing, origin, direction = _with_fallback(dimension, spacing, origin, direction, fallback)
    _check_stored_size(path, format_name, loaded_size, pixel_bytes, nifti)
    if raster:
        problem = file_checks.raster_truncation(path)
        if problem:
            raise CorruptFileError(problem, path)
        geometry = Geometry((size[0], size[1], size[2] if dimension >= 3 else 1))
        warnings.append(f"{format_name} files carry no physical pixel size: spacing set to 1 and measurements are in pixels")
    else:
        geometry = _geometry(dimension, size, spacing, origin, direction, path)
    dtype = _COMPONENT_DTYPES.get(reader.GetPixelID(), "")
    if components in (3, 4) and dtype not in ("uint8", "uint16"):
        dtype = "float32"
    name = Path(path).name
    description = name[: -len(extension_of(path))] if extension_of(path) else name
    plan = ImageFilePlan(path, format_name, raster, components, extract_size, extract_index, warnings,
                         pixel_bytes=pixel_bytes, stamp=_stamp(path), nifti=nifti)
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


def _stamp(path: str) -> tuple[int, float]:
    try:
        status = os.stat(path)
    except OSError:
        return (0, 0.0)
    return (status.st_size, status.st_mtime)


def _check_nifti(header: NiftiHeader, path: str, warnings: list[str]):
    """Refuse a NIfTI geometry that cannot be used; return the qform geometry when it replaces a bad sform."""
    warnings.extend(header.spacing_warnings())
    sform, qform = header.sform_problem(), header.qform_problem()
    if sform:  # present and broken
        if qform == "":
            warnings.append(f"{sform}: the qform orientation is used instead")
            return header.qform_geometry()
        why = "there is no qform (qform_code 0)" if qform is None else qform
        raise CorruptFileError(f"invalid geometry in the header: {sform}, and {why} to fall back to", path)
    if sform is None and qform:
        raise CorruptFileError(f"invalid geometry in the header: {qform}, and there is no sform (sform_code 0)", path)
    if sform is None and qform is None:
        warnings.append("the header has no orientation (qform_code and sform_code are 0): the directions are "
                        "assumed to be the image axes and the origin 0, so left/right may be wrong")
    return None


def _with_fallback(dimension: int, spacing, origin, direction, fallback):
    """ITK's spacing/origin/direction tuples with the first three axes replaced by the qform's."""
    q_spacing, q_origin, q_direction = fallback
    matrix = np.eye(dimension)
    matrix[:3, :3] = np.asarray(q_direction).reshape(3, 3)
    return (*q_spacing, *spacing[3:]), (*q_origin, *origin[3:]), tuple(matrix.ravel())


def _check_stored_size(path: str, format_name: str, size: tuple[int, ...], needed: int, nifti: NiftiHeader | None) -> None:
    """Refuse a header that claims more voxels than the file (or its data file) can hold."""
    extension = extension_of(path)
    stored = os.path.getsize(path)
    if nifti is not None:
        needed = nifti.volume_bytes or needed  # what is stored (ITK may hand out scaled float voxels)
        if extension != ".nii":
            problem = file_checks.implausible_size(size, needed, stored, compressed=True)
        elif needed > 4 * max(stored, 1):  # far beyond the file: the header lies
            problem = file_checks.implausible_size(size, needed, stored, compressed=False)
        elif stored - nifti.vox_offset < needed:
            available = max(stored - nifti.vox_offset, 0)
            problem = (f"the file is truncated: it holds {available} of the {needed} bytes of voxels the header "
                       f"describes ({nifti.missing_slices(available)})")
        else:
            problem = None
    elif format_name in ("MetaImage", "NRRD"):
        layout = file_checks.data_layout(path, extension)
        problem = file_checks.data_shortfall(path, layout, needed)
        if problem is None and not layout.unbounded:
            data_size = sum(os.path.getsize(f) for f in layout.files if os.path.isfile(f)) if layout.files else stored
            problem = file_checks.implausible_size(size, needed, data_size, compressed=True)
    elif format_name in ("PNG", "JPEG", "BMP"):  # TIFF's LZW/CCITT codings compress without a useful bound
        problem = file_checks.implausible_size(size, needed, stored, compressed=True)
    else:
        problem = None
    if problem:
        raise CorruptFileError(problem, path)


def _geometry(dimension: int, size, spacing, origin, direction, path: str) -> Geometry:
    values = {"spacing": spacing, "origin": origin, "direction": direction}
    broken = [name for name, numbers in values.items() if not np.all(np.isfinite(np.asarray(numbers, dtype=float)))]
    if broken:
        raise CorruptFileError(f"invalid geometry in the header: the {' and '.join(broken)} hold NaN or infinite values", path)
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
    if extension not in (".mhd", ".mha", ".nhdr", ".nrrd"):
        return []
    files = file_checks.data_layout(path, extension).files
    return [name for name in files if "%" not in os.path.basename(name)]


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
    except EOFError:  # the gzip stream ends early: count exactly what it holds, for the message
        produced, _problem = file_checks.gzip_shortfall(path, offset + len(buffer) + 1)
        filled = max(0, (produced or 0) - offset)
    except (OSError, zlib.error) as error:
        raise CorruptFileError(f"cannot be read as NIfTI: {error}", path) from None
    if filled < len(buffer):
        slice_bytes = max(1, len(buffer) // max(shape_zyx[0], 1))
        first, last = filled // slice_bytes, shape_zyx[0] - 1
        raise CorruptFileError(
            f"the file is truncated: {'the gzip stream ends after ' if opener is gzip.open else 'it holds '}"
            f"{filled} of the {len(buffer)} bytes of voxels the header describes "
            f"({f'slices {first}..{last}' if first < last else f'slice {last}'} of 0..{last} missing)", path
        )
    if not dtype.isnative:
        out.byteswap(inplace=True)
    return out


def count_non_finite(array: np.ndarray) -> int:
    """Number of NaN/Inf voxels (0 for integer arrays), slice by slice to keep memory flat."""
    if array.dtype.kind not in "fc":
        return 0
    slabs = array.reshape(-1, *array.shape[-2:]) if array.ndim >= 2 else array[None]
    return int(sum(slab.size - np.count_nonzero(np.isfinite(slab)) for slab in slabs))


def _require_complete_gzip(path: str, header: NiftiHeader) -> list[str]:
    """ITK zero-fills what a truncated .nii.gz lacks: refuse it, naming the missing slices (or warn, past volume 1)."""
    first_volume_end = header.vox_offset + header.volume_bytes
    produced, problem = file_checks.gzip_shortfall(path, header.vox_offset + header.total_bytes)
    if problem is None:
        return []
    if produced is not None and produced >= first_volume_end:
        return [f"the file is truncated after the first volume ({problem}); only the first volume is loaded"]
    missing = header.missing_slices((produced or 0) - header.vox_offset)
    raise CorruptFileError(f"the file is truncated or damaged: {problem} ({missing})", path)


def load_image_file(
    series: SeriesInfo, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None
) -> Volume:
    """Read the pixels of a file described by :func:`scan_image_file`."""
    plan: ImageFilePlan = series.plan
    if cancel is not None:
        cancel.raise_if_cancelled()
    progress(0.0, f"Reading {Path(plan.path).name}")
    file_checks.require_memory(plan.path, series.geometry.size, plan.pixel_bytes)
    array = None
    warnings = list(plan.warnings)
    gzipped = plan.path.lower().endswith(".gz")
    if plan.format == "NIfTI" and plan.components == 1 and (not gzipped or series.pixel_type.startswith("float")):
        # Uncompressed NIfTI: read the voxels directly (1x memory). For .nii.gz, ITK's
        # zlib-ng decompresses about 2.5x faster than Python's zlib, so SimpleITK stays,
        # except for float voxels: ITK's NIfTI reader turns NaN and Inf into 0 unannounced.
        array = read_nifti_voxels(plan.path, series.geometry.shape, series.pixel_type)
    if array is None:
        reader = sitk.ImageFileReader()
        reader.SetFileName(plan.path)
        if plan.extract_size is not None:
            reader.SetExtractSize(plan.extract_size)
            reader.SetExtractIndex(plan.extract_index)
        with quiet_native_stderr() as native:
            try:
                image = reader.Execute()
            except RuntimeError as error:
                failure = error
            else:
                failure = None
        if failure is not None:
            raise CorruptFileError(f"cannot be read as {plan.format}: {_short_error(failure, native)}", plan.path)
        if "Premature end of JPEG file" in native.text:  # libjpeg filled the rest with grey
            raise CorruptFileError("the JPEG file is truncated: the decoder ran out of data", plan.path)
        if "Corrupt JPEG data" in native.text:
            warnings.append(f"the JPEG decoder reported damage: {native.detail()}")
        array = array_from_image(image)
        del image
        if plan.nifti is not None and gzipped:
            warnings.extend(_require_complete_gzip(plan.path, plan.nifti))
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
        if _stamp(plan.path) != plan.stamp:
            raise InconsistentSeriesError(
                f"the file changed since it was scanned (shape {array.shape} instead of {geometry.shape})", plan.path
            )
        raise CorruptFileError(
            f"the {plan.format} reader returned voxels of shape {array.shape}, but the header describes {geometry.shape}",
            plan.path,
        )
    non_finite = count_non_finite(array)
    if non_finite:
        if non_finite == array.size:
            raise CorruptFileError(f"no voxel has a value: all {array.size} are NaN or infinite", plan.path)
        warnings.append(f"{non_finite} voxel{'s are' if non_finite != 1 else ' is'} NaN/Inf (not a number or infinite; "
                        f"{100.0 * non_finite / array.size:.2g}% of the image): value ranges leave them out")
    metadata = VolumeMetadata(
        series_description=series.description,
        calibrated=not plan.raster,
        warnings=warnings,
        source_path=plan.path,
        source_format=plan.format,
        extra={"two_dimensional": image_is_2d},
    )
    progress(1.0, "Loaded")
    return Volume(array, geometry, modality=series.modality, metadata=metadata, name=series.description)
