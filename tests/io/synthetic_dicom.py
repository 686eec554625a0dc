"""Write small DICOM series with pydicom for the reader tests (and bench/bench_load.py).

Everything here is explicit: the caller gives the stored pixel values, the position of
every slice and the orientation, so a test knows exactly which geometry the reader must
produce. Nothing is random unless the caller passes a seed for the file order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
BASIC_TEXT_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.11"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"

SOP_CLASS_BY_MODALITY = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE, "CR": CR_IMAGE_STORAGE, "DX": DX_IMAGE_STORAGE}

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def normal_of(orientation: Sequence[float]) -> np.ndarray:
    """Slice normal (row direction x column direction) of an ImageOrientationPatient."""
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return np.cross(row, col)


def stack_positions(
    origin: Sequence[float],
    orientation: Sequence[float],
    offsets_along_normal: Sequence[float],
    shear_per_mm: Sequence[float] = (0.0, 0.0),
) -> np.ndarray:
    """ImagePositionPatient of slices at the given distances along the normal.

    ``shear_per_mm`` moves each slice in-plane by (row, column) direction mm per mm of
    normal distance: a gantry tilt of angle a gives (0, tan(a)).
    """
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = normal_of(orientation)
    offsets = np.asarray(offsets_along_normal, float)
    return (
        np.asarray(origin, float)[None, :]
        + offsets[:, None] * normal[None, :]
        + (offsets * shear_per_mm[0])[:, None] * row[None, :]
        + (offsets * shear_per_mm[1])[:, None] * col[None, :]
    )


def _base_dataset(sop_class: str, modality: str, study_uid: str, series_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Synthetic^Test"
    ds.PatientID = "SYN001"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDescription = "Synthetic study"
    ds.StudyDate = "20240101"
    ds.FrameOfReferenceUID = study_uid + ".1" if len(study_uid) < 60 else generate_uid()
    return ds


def _set_pixels(ds: Dataset, pixels: np.ndarray) -> None:
    pixels = np.asarray(pixels)
    if pixels.dtype not in (np.int16, np.uint16, np.uint8):
        raise ValueError(f"stored pixels must be int16, uint16 or uint8, got {pixels.dtype}")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = ds.get("PhotometricInterpretation", "MONOCHROME2")
    ds.Rows, ds.Columns = int(pixels.shape[-2]), int(pixels.shape[-1])
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()


def write_series(
    folder: str | Path,
    pixels: np.ndarray,
    positions: np.ndarray,
    orientation: Sequence[float] = AXIAL,
    pixel_spacing: Sequence[float] | None = (0.8, 0.7),
    *,
    modality: str = "CT",
    rescale: tuple[float, float] | None = (1.0, -1024.0),
    series_uid: str | None = None,
    study_uid: str | None = None,
    series_number: int = 1,
    description: str = "Synthetic series",
    seed: int | None = 0,
    per_slice: Sequence[dict] | None = None,
    extra: dict | None = None,
    prefix: str = "IMG",
    orientations: Sequence[Sequence[float]] | None = None,
) -> list[Path]:
    """Write one single-frame DICOM file per slice and return the paths.

    ``pixels`` is (n, rows, columns) of stored values; ``positions`` the (n, 3)
    ImagePositionPatient of each slice, in the same order. File names are shuffled
    with ``seed`` (None keeps the slice order) and InstanceNumbers are shuffled the
    same way, so a reader that sorts by either gets the order wrong.
    ``pixel_spacing`` is DICOM's (row spacing, column spacing); None omits the tag.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(pixels)
    positions = np.asarray(positions, float)
    count = pixels.shape[0]
    if positions.shape != (count, 3):
        raise ValueError(f"need {count} positions, got {positions.shape}")
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    order = np.arange(count)
    if seed is not None:
        order = np.random.default_rng(seed).permutation(count)
    sop_class = SOP_CLASS_BY_MODALITY.get(modality, CT_IMAGE_STORAGE)
    paths = []
    for slice_index in range(count):
        ds = _base_dataset(sop_class, modality, study_uid, series_uid)
        ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        # InstanceNumber deliberately disagrees with the geometric order when shuffled.
        ds.InstanceNumber = int(order[slice_index]) + 1
        ds.ImagePositionPatient = [float(v) for v in positions[slice_index]]
        slice_orientation = orientations[slice_index] if orientations is not None else orientation
        ds.ImageOrientationPatient = [float(v) for v in slice_orientation]
        if pixel_spacing is not None:
            ds.PixelSpacing = [float(v) for v in pixel_spacing]
        ds.SliceThickness = 99.0  # deliberately wrong: spacing must come from positions
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
            ds.RescaleType = "HU" if modality == "CT" else "US"
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        for key, value in (per_slice[slice_index] if per_slice else {}).items():
            setattr(ds, key, value)
        _set_pixels(ds, pixels[slice_index])
        path = folder / f"{prefix}{int(order[slice_index]):05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced(
    path: str | Path,
    frames: np.ndarray,
    positions: np.ndarray,
    orientation: Sequence[float] = AXIAL,
    pixel_spacing: Sequence[float] = (0.5, 0.6),
    *,
    modality: str = "MR",
    rescale: Sequence[tuple[float, float]] | None = None,
    frame_order: Sequence[int] | None = None,
    window: tuple[float, float] | None = (300.0, 800.0),
    series_uid: str | None = None,
    description: str = "Enhanced synthetic",
) -> Path:
    """Write an enhanced multi-frame image with per-frame positions.

    Frame ``f`` of the file holds ``frames[frame_order[f]]`` at ``positions[frame_order[f]]``
    so the file order can differ from the geometric order. ``rescale`` gives a per-frame
    (slope, intercept) in geometric order (put in the per-frame functional groups);
    orientation and pixel spacing go in the shared functional groups.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    count = frames.shape[0]
    order = list(frame_order) if frame_order is not None else list(range(count))
    sop_class = ENHANCED_MR_IMAGE_STORAGE if modality == "MR" else ENHANCED_CT_IMAGE_STORAGE
    ds = _base_dataset(sop_class, modality, generate_uid(), series_uid or generate_uid())
    ds.SeriesNumber = 7
    ds.SeriesDescription = description
    ds.InstanceNumber = 1
    ds.NumberOfFrames = count
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]

    shared = Dataset()
    plane_orientation = Dataset()
    plane_orientation.ImageOrientationPatient = [float(v) for v in orientation]
    shared.PlaneOrientationSequence = DicomSequence([plane_orientation])
    measures = Dataset()
    measures.PixelSpacing = [float(v) for v in pixel_spacing]
    measures.SliceThickness = 42.0  # wrong on purpose
    shared.PixelMeasuresSequence = DicomSequence([measures])
    if window is not None:
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = window
        shared.FrameVOILUTSequence = DicomSequence([voi])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    for file_frame, geometric_index in enumerate(order):
        item = Dataset()
        plane_position = Dataset()
        plane_position.ImagePositionPatient = [float(v) for v in positions[geometric_index]]
        item.PlanePositionSequence = DicomSequence([plane_position])
        content = Dataset()
        content.InStackPositionNumber = file_frame + 1  # wrong on purpose
        item.FrameContentSequence = DicomSequence([content])
        if rescale is not None:
            transform = Dataset()
            transform.RescaleSlope, transform.RescaleIntercept = rescale[geometric_index]
            transform.RescaleType = "US"
            item.PixelValueTransformationSequence = DicomSequence([transform])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    _set_pixels(ds, frames[order])
    ds.save_as(path, enforce_file_format=True)
    return path


def write_radiograph(
    path: str | Path,
    pixels: np.ndarray,
    *,
    modality: str = "CR",
    pixel_spacing: Sequence[float] | None = None,
    imager_pixel_spacing: Sequence[float] | None = None,
    photometric: str = "MONOCHROME2",
    window: tuple | None = None,
) -> Path:
    """Write a single-frame projection radiograph (no position or orientation tags)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _base_dataset(SOP_CLASS_BY_MODALITY.get(modality, CR_IMAGE_STORAGE), modality, generate_uid(), generate_uid())
    ds.SeriesNumber = 3
    ds.SeriesDescription = "Chest PA"
    ds.PhotometricInterpretation = photometric
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = [float(v) for v in imager_pixel_spacing]
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    _set_pixels(ds, pixels)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_structured_report(path: str | Path, series_uid: str | None = None, study_uid: str | None = None) -> Path:
    """A Basic Text SR: a valid DICOM file that holds no image."""
    path = Path(path)
    ds = _base_dataset(BASIC_TEXT_SR_STORAGE, "SR", study_uid or generate_uid(), series_uid or generate_uid())
    ds.SeriesNumber = 99
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rtstruct(path: str | Path, study_uid: str | None = None) -> Path:
    """A minimal RT Structure Set (no image pixels)."""
    path = Path(path)
    ds = _base_dataset(RT_STRUCTURE_SET_STORAGE, "RTSTRUCT", study_uid or generate_uid(), generate_uid())
    ds.SeriesNumber = 98
    ds.StructureSetLabel = "Contours"
    roi = Dataset()
    roi.ROINumber = 1
    roi.ROIName = "Lung"
    ds.StructureSetROISequence = DicomSequence([roi])
    ds.save_as(path, enforce_file_format=True)
    return path


def smooth_volume(shape: tuple[int, int, int], spacing_zyx: Sequence[float], seed: int = 0) -> np.ndarray:
    """Stored int16 values of a smooth function of (z, y, x) mm, exact to reproduce in a test."""
    return smooth_function(*np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing_zyx)], indexing="ij"))


def smooth_function(z_mm: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray) -> np.ndarray:
    """A smooth, non-separable test pattern (slowly varying in mm) rounded to int16."""
    value = 1000 + 400 * np.sin(z_mm / 9.0 + 0.3) * np.cos(y_mm / 11.0) + 300 * np.cos(x_mm / 13.0 - z_mm / 17.0)
    return np.rint(value).astype(np.int16)


def read_back(path: str | Path) -> Dataset:
    """Read a file written here (for assertions that compare with pydicom directly)."""
    return pydicom.dcmread(path)


#: Pass as a value to :func:`edit_files` to delete the attribute.
DELETE = object()


def edit_files(paths: Sequence[str | Path], **changes) -> None:
    """Rewrite written files with attributes changed (``DELETE`` removes one): broken exports on demand."""
    for path in paths:
        ds = pydicom.dcmread(path)
        for key, value in changes.items():
            if value is DELETE:
                if key in ds:
                    delattr(ds, key)
            else:
                setattr(ds, key, value)
        ds.save_as(path)


def write_float_image(
    path: str | Path,
    values: np.ndarray,
    position: Sequence[float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = AXIAL,
    pixel_spacing: Sequence[float] = (1.0, 1.0),
) -> Path:
    """A single-frame image whose pixels are Float Pixel Data (7FE0,0008), as parametric maps store them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.asarray(values, dtype=np.float32)
    ds = _base_dataset(MR_IMAGE_STORAGE, "MR", generate_uid(), generate_uid())
    ds.SeriesNumber = 5
    ds.SeriesDescription = "Float map"
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(values.shape[0]), int(values.shape[1])
    ds.BitsAllocated = 32
    ds.FloatPixelData = np.ascontiguousarray(values).astype("<f4").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
