"""Write volumes as DICOM series and 2D images as DICOM radiographs (pydicom).

Used to turn the generated demo data into real DICOM, so the demo exercises the same
reading path as scanner data, and by tests that need DICOM with known geometry.

Geometry follows DICOM's image plane module: ``ImageOrientationPatient`` holds the
world directions of the i (row) and j (column) axes, ``ImagePositionPatient`` the
world centre of each slice's first voxel, ``PixelSpacing`` is (row spacing = j
spacing, column spacing = i spacing). A series with a right-handed direction matrix
(det +1, every scanner series) reads back with exactly the written geometry; a
left-handed one reads back with the same world positions but its slices in the
opposite order, because readers sort slices along the normal ``row x column``.

UIDs are derived from ``uid_seed`` (or the volume's own UIDs) with pydicom's
hash-based ``generate_uid``, so writing the same volume twice gives identical files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medviewer import __version__
from medviewer.core.errors import MedviewerError
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.core.volume import Volume
from medviewer.io.atomic import atomic_path

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"

_SOP_CLASS_BY_MODALITY = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE, "PT": PET_IMAGE_STORAGE}
_MANUFACTURER = "medviewer"


class DicomWriteError(MedviewerError):
    """A DICOM series or image could not be written (target exists, unsupported data...)."""


# ---------------------------------------------------------------------------- values
def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) as close to ``value`` as fits."""
    value = float(value)
    if value == 0:
        return "0"
    for digits in range(16, 0, -1):
        text = f"{value:.{digits}g}"
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot write {value} as a DICOM decimal string")


def _pixel_encoding(array: np.ndarray) -> tuple[np.ndarray, float, float, int]:
    """Stored pixels, rescale slope and intercept, and PixelRepresentation for ``array``.

    Integer data that fits 16 bits is stored as is (slope 1, intercept 0) so it reads
    back bit-exact; other data is mapped linearly onto int16 (lossy, documented by the
    rescale values).
    """
    if array.dtype in (np.int16, np.int8):
        return array.astype(np.int16, copy=False), 1.0, 0.0, 1
    if array.dtype in (np.uint16, np.uint8, np.bool_):
        return array.astype(np.uint16, copy=False), 1.0, 0.0, 0
    if array.size == 0:
        raise DicomWriteError("cannot write an empty image")
    low, high = float(np.min(array)), float(np.max(array))
    if np.issubdtype(array.dtype, np.integer) and low >= -32768 and high <= 32767:
        return array.astype(np.int16), 1.0, 0.0, 1
    if np.issubdtype(array.dtype, np.integer) and low >= 0 and high <= 65535:
        return array.astype(np.uint16), 1.0, 0.0, 0
    if not np.isfinite(low) or not np.isfinite(high):
        raise DicomWriteError("cannot write an image with NaN or infinite values")
    slope = (high - low) / 65535.0 if high > low else 1.0
    intercept = low + 32768.0 * slope
    stored = np.clip(np.rint((array - intercept) / slope), -32768, 32767).astype(np.int16)
    return stored, slope, intercept, 1


def _uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"MEDVIEWER_{__version__}"[:16]
    return meta


def _set_patient_and_study(
    ds: Dataset,
    *,
    patient_name: str,
    patient_id: str,
    study_uid: str,
    study_description: str,
    study_date: str,
) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = study_date
    ds.StudyTime = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study_description
    ds.Manufacturer = _MANUFACTURER
    ds.ManufacturerModelName = "medviewer synthetic data"
    ds.SoftwareVersions = __version__


def _set_pixels(ds: Dataset, stored: np.ndarray, pixel_representation: int, photometric: str = "MONOCHROME2") -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = pixel_representation
    little = stored.astype(stored.dtype.newbyteorder("<"), copy=False)
    ds.PixelData = np.ascontiguousarray(little).tobytes()


def _set_windows(ds: Dataset, windows: Sequence[tuple[float, float]]) -> None:
    windows = [(float(c), float(w)) for c, w in windows if float(w) > 0]
    if not windows:
        return
    centres = [_ds(c) for c, _ in windows]
    widths = [_ds(w) for _, w in windows]
    ds.WindowCenter = centres if len(centres) > 1 else centres[0]
    ds.WindowWidth = widths if len(widths) > 1 else widths[0]


# ---------------------------------------------------------------------------- series
def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike[str],
    *,
    series_description: str | None = None,
    series_number: int | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    uid_seed: str | None = None,
    modality: str | None = None,
    patient_name: str | None = None,
    patient_id: str | None = None,
    study_description: str | None = None,
    windows: Sequence[tuple[float, float]] | None = None,
    overwrite: bool = False,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """Write ``volume`` as a DICOM series, one file per slice, into ``folder``.

    The folder appears complete or not at all: files are written into a temporary
    folder beside it that is renamed at the end. An existing non-empty ``folder`` is
    replaced only with ``overwrite=True``.

    Parameters
    ----------
    volume:
        The image; its geometry (any direction matrix), modality and metadata are used.
    folder:
        Target folder.
    series_description, series_number, study_uid, series_uid, modality, patient_name,
    patient_id, study_description, windows:
        Override the volume's metadata (``windows`` = [(centre, width), ...]).
    uid_seed:
        Text from which missing UIDs are derived deterministically; by default the
        volume's UIDs, else random ones.
    progress, cancel:
        Job hooks (``medviewer.core.jobs``); cancelling leaves no folder behind.

    Returns
    -------
    list[Path]
        The written files, in slice order (k = 0 first).
    """
    target = Path(folder)
    metadata = volume.metadata
    geometry = volume.geometry
    modality = (modality or volume.modality or "OT").upper()
    sop_class = _SOP_CLASS_BY_MODALITY.get(modality, SECONDARY_CAPTURE_STORAGE)
    # Without a seed or UIDs in the metadata there is nothing to derive reproducible UIDs from.
    seed = uid_seed or metadata.series_uid or str(generate_uid())
    study_uid = study_uid or metadata.study_uid or _uid(seed, "study")
    series_uid = series_uid or metadata.series_uid or _uid(seed, "series")
    body_part = str((metadata.extra or {}).get("body_part", "") or "")
    frame_of_reference = _uid(study_uid, "frame-of-reference", seed)
    description = series_description if series_description is not None else metadata.series_description
    number = series_number if series_number is not None else (metadata.series_number or 1)
    window_list = list(windows) if windows is not None else list(metadata.windows)
    stored_all, slope, intercept, pixel_representation = _pixel_encoding(np.asarray(volume.array))
    matrix = geometry.direction_matrix
    row_direction, column_direction = matrix[:, 0], matrix[:, 1]
    orientation = [_ds(v) for v in (*row_direction, *column_direction)]
    spacing_x, spacing_y, spacing_z = geometry.spacing

    if target.exists() and any(target.iterdir()) and not overwrite:
        raise DicomWriteError("the folder already exists and is not empty", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    names: list[str] = []
    try:
        count = geometry.size[2]
        for k in range(count):
            if cancel is not None:
                cancel.raise_if_cancelled()
            sop_instance = _uid(series_uid, "instance", k)
            ds = Dataset()
            ds.file_meta = _file_meta(sop_class, sop_instance)
            ds.SOPClassUID = sop_class
            ds.SOPInstanceUID = sop_instance
            _set_patient_and_study(
                ds,
                patient_name=patient_name if patient_name is not None else (metadata.patient_name or "ANONYMOUS"),
                patient_id=patient_id if patient_id is not None else (metadata.patient_id or "UNKNOWN"),
                study_uid=study_uid,
                study_description=study_description if study_description is not None else metadata.study_description,
                study_date=metadata.study_date,
            )
            ds.Modality = modality
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = int(number)
            ds.SeriesDescription = description or ""
            ds.FrameOfReferenceUID = frame_of_reference
            ds.PositionReferenceIndicator = ""
            ds.InstanceNumber = k + 1
            ds.AcquisitionNumber = 1
            ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if geometry.orientation_code()[2] in "SI" else ["DERIVED", "SECONDARY"]
            ds.PatientPosition = "HFS"
            if body_part:
                ds.BodyPartExamined = body_part
            position = geometry.index_to_world(np.array([0.0, 0.0, float(k)]))
            ds.ImagePositionPatient = [_ds(v) for v in position]
            ds.ImageOrientationPatient = orientation
            ds.PixelSpacing = [_ds(spacing_y), _ds(spacing_x)]
            ds.SliceThickness = _ds(spacing_z)
            ds.SpacingBetweenSlices = _ds(spacing_z)
            normal = np.cross(row_direction, column_direction)
            ds.SliceLocation = _ds(float(position @ normal))
            if modality == "CT":
                ds.KVP = ""
                ds.RescaleType = "HU"
            if modality == "MR":
                ds.ScanningSequence = "RM"
                ds.SequenceVariant = "NONE"
                ds.ScanOptions = ""
                ds.MRAcquisitionType = "3D"
                ds.EchoTime = ""
                ds.RepetitionTime = ""
                ds.EchoTrainLength = ""
                ds.MagneticFieldStrength = ""
            if modality != "MR" or slope != 1.0 or intercept != 0.0:
                ds.RescaleIntercept = _ds(intercept)
                ds.RescaleSlope = _ds(slope)
                if modality != "CT":
                    ds.RescaleType = "US"
            _set_windows(ds, window_list)
            _set_pixels(ds, stored_all[k], pixel_representation)
            name = f"{modality}{k + 1:05d}.dcm"
            path = staging / name
            ds.save_as(path, enforce_file_format=True)
            names.append(name)
            if k % 8 == 0 or k == count - 1:
                progress((k + 1) / count, f"writing DICOM slice {k + 1}/{count}")
        _publish_folder(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [target / name for name in names]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some platforms cannot fsync folders
        pass
    finally:
        os.close(fd)


def _publish_folder(staging: Path, target: Path, overwrite: bool) -> None:
    """Make a fully written staging folder appear at ``target`` in one rename."""
    for item in staging.iterdir():
        _fsync(item)
    _fsync(staging)
    old: Path | None = None
    if target.exists():
        if any(target.iterdir()) and not overwrite:
            raise DicomWriteError("the folder already exists and is not empty", target)
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:  # put the previous folder back
            os.replace(old / target.name, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync(target.parent)


# ---------------------------------------------------------------------------- radiograph
def write_dicom_radiograph(
    array2d: np.ndarray,
    path: str | os.PathLike[str],
    pixel_spacing: tuple[float, float],
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    *,
    patient_name: str = "ANONYMOUS",
    patient_id: str = "UNKNOWN",
    study_uid: str | None = None,
    series_uid: str | None = None,
    uid_seed: str | None = None,
    study_description: str = "",
    series_description: str = "",
    series_number: int = 1,
    body_part: str = "CHEST",
    view_position: str = "PA",
    patient_orientation: tuple[str, str] = ("L", "F"),
) -> Path:
    """Write a projection radiograph (rows, columns) as a single-frame DX or CR DICOM file.

    ``pixel_spacing`` is (row spacing, column spacing) in mm at the detector; it is
    written as ImagerPixelSpacing and, as the image has no magnification, also as
    PixelSpacing. ``photometric`` ``"MONOCHROME1"`` declares that high values are
    dark. ``window`` is (centre, width); by default the full value range.
    ``patient_orientation`` gives the patient directions of increasing column and row
    (``("L", "F")``: a PA chest seen as if facing the patient). The file is written
    atomically.
    """
    modality = modality.upper()
    if modality not in ("DX", "CR"):
        raise DicomWriteError(f"radiograph modality must be DX or CR, got {modality}", path)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomWriteError(f"photometric interpretation must be MONOCHROME1 or MONOCHROME2, got {photometric}", path)
    array = np.asarray(array2d)
    if array.ndim != 2:
        raise DicomWriteError(f"a radiograph must be a 2D array, got shape {array.shape}", path)
    if array.dtype in (np.uint8, np.uint16, np.bool_):
        stored = array.astype(np.uint16, copy=False)
    elif np.issubdtype(array.dtype, np.integer) and array.min() >= 0 and array.max() <= 65535:
        stored = array.astype(np.uint16)
    else:
        raise DicomWriteError(f"radiograph pixels must be unsigned integers up to 65535, got {array.dtype}", path)
    target = Path(path)
    seed = uid_seed if uid_seed is not None else str(generate_uid())
    study_uid = study_uid or _uid(seed, "study")
    series_uid = series_uid or _uid(seed, "series")
    sop_class = DX_PRESENTATION_STORAGE if modality == "DX" else CR_IMAGE_STORAGE
    sop_instance = _uid(series_uid, "instance", 0)
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_instance)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    _set_patient_and_study(
        ds, patient_name=patient_name, patient_id=patient_id, study_uid=study_uid,
        study_description=study_description, study_date="",
    )
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(series_number)
    ds.SeriesDescription = series_description
    ds.InstanceNumber = 1
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.BodyPartExamined = body_part
    ds.ViewPosition = view_position
    ds.PatientOrientation = list(patient_orientation)
    ds.ImagerPixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
    ds.PixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1 if photometric == "MONOCHROME2" else -1
        ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
        ds.DetectorType = ""
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    if window is None:
        low, high = float(stored.min()), float(stored.max())
        window = ((low + high) / 2.0, max(high - low, 1.0))
    _set_windows(ds, [window])
    _set_pixels(ds, stored, 0, photometric)
    with atomic_path(target) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return target


__all__ = ["DicomWriteError", "write_dicom_radiograph", "write_dicom_series"]
