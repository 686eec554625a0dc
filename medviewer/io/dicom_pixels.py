"""Load the pixels of a scanned DICOM series into a Volume.

Pixels are decoded slice by slice straight into one preallocated ``(z, y, x)`` array,
so memory stays close to the size of the final volume (SimpleITK's series reader plus
``GetArrayFromImage`` needs twice that). Uncompressed files are decoded by pydicom
(the fastest path); compressed files go through SimpleITK/GDCM, which decodes JPEG
lossless, JPEG 2000, JPEG-LS and RLE, with pydicom as the fallback. The modality
rescale (RescaleSlope/Intercept, per file or per frame) is applied here, so every
decoder returns the same values.
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, iter_pixels, pixel_array
from pydicom.uid import UID

from medviewer.core.errors import CorruptFileError, InconsistentSeriesError, OperationCancelled
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback, scaled_progress
from medviewer.core.study import SeriesInfo
from medviewer.core.volume import Volume
from medviewer.imaging.resample import resample_stack
from medviewer.io.dicom_series import DicomPlan, DicomSlice

#: ITU-R BT.601 luma weights, used for colour -> grayscale.
LUMINANCE_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_WIDER_TYPES = ("uint8", "int16", "uint16", "int32")


def load_dicom_series(
    series: SeriesInfo, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None
) -> Volume:
    """Decode, rescale and (when planned) regularise a DICOM series."""
    plan: DicomPlan = series.plan
    reading = scaled_progress(progress, 0.0, 0.85 if plan.resample is not None else 1.0)
    stack = _SliceStack(len(plan.slices), plan.rows, plan.columns, np.dtype(plan.dtype))

    single = [(slot, item) for slot, item in enumerate(plan.slices) if item.frame is None]
    by_file: dict[str, list[tuple[int, DicomSlice]]] = defaultdict(list)
    for slot, item in enumerate(plan.slices):
        if item.frame is not None:
            by_file[item.path].append((slot, item))
    done, total = 0, len(plan.slices)
    monochrome1 = plan.photometric == "MONOCHROME1"
    gdcm_inverted = False
    for slot, item in single:
        if cancel is not None:
            cancel.raise_if_cancelled()
        frame, rescaled = _decode_single(item, prefer_pydicom=monochrome1)
        gdcm_inverted |= monochrome1 and rescaled
        stack.put(slot, frame, item, rescaled, plan)
        done += 1
        reading(done / total, "Reading DICOM slices")
    for path, items in by_file.items():
        for slot, item, frame, rescaled, by_gdcm in _decode_frames(path, items, cancel):
            gdcm_inverted |= monochrome1 and by_gdcm
            stack.put(slot, frame, item, rescaled, plan)
            done += 1
            reading(done / total, "Reading DICOM frames")

    array = stack.array
    nan, inf = stack.nan, stack.inf
    if plan.resample is not None:
        resample = plan.resample
        fill_value = float(array.min()) if array.size else 0.0
        array = resample_stack(
            array,
            resample.slice_positions,
            resample.slice_offsets_xy,
            resample.output_positions,
            resample.output_shape_yx,
            fill_value,
            dtype=array.dtype,
            progress=scaled_progress(progress, 0.85, 1.0),
            cancel=cancel,
        )
        del stack
    metadata = copy.deepcopy(plan.metadata)
    if gdcm_inverted:
        # GDCM turns MONOCHROME1 into MONOCHROME2 while decoding: the values are already display-ready.
        metadata.display_inverted = False
        metadata.warnings.append("MONOCHROME1 pixels were inverted by the GDCM decoder (bright = dense)")
    if str(array.dtype) != series.pixel_type:
        metadata.warnings.append(f"pixel values needed {array.dtype} instead of {series.pixel_type}")
    if nan or inf:
        counts = " and ".join(text for count, text in ((nan, f"{nan} NaN"), (inf, f"{inf} infinite (+/-Inf)")) if count)
        metadata.warnings.append(
            f"the pixel data holds {counts} voxel{'s' if nan + inf != 1 else ''}: they are not measurements"
        )
    progress(1.0, "Loaded")
    return Volume(array, series.geometry, modality=series.modality, metadata=metadata, name=series.description)


class _SliceStack:
    """A preallocated (z, y, x) array that widens its type only when a slice needs it."""

    def __init__(self, count: int, rows: int, columns: int, dtype: np.dtype) -> None:
        self.array = np.empty((count, rows, columns), dtype=dtype)
        self.shape_yx = (rows, columns)
        self.low = np.inf
        self.high = -np.inf
        #: Non-finite voxels seen (Float Pixel Data can hold NaN/Inf; integers cannot).
        self.nan = 0
        self.inf = 0

    def put(self, slot: int, values: np.ndarray, item: DicomSlice, rescaled: bool, plan: DicomPlan) -> None:
        name = item.path if item.frame is None else f"{item.path} (frame {item.frame + 1})"
        if values.ndim == 3 and values.shape[-1] in (3, 4):
            values = _luminance(values[..., :3], self.array.dtype)
        if values.shape != self.shape_yx:
            raise InconsistentSeriesError(
                f"slice is {values.shape[1]}x{values.shape[0]} pixels but the series is "
                f"{self.shape_yx[1]}x{self.shape_yx[0]}",
                name,
            )
        needs_rescale = not rescaled and not plan.color and (item.slope != 1.0 or item.intercept != 0.0)
        if needs_rescale and item.slope == 1.0 and float(item.intercept).is_integer() and values.dtype.kind in "iu":
            # Fast path (CT): check the range on the stored values, then add in place.
            low, high = _min_max(values)
            self._include(low + item.intercept, high + item.intercept, fractional=False)
            if self.array.dtype.kind in "iu":
                np.add(values, np.int64(item.intercept), out=self.array[slot], casting="unsafe")
            else:
                self.array[slot] = values.astype(np.float64) + item.intercept
            return
        if needs_rescale:
            values = _rescale(values, item.slope, item.intercept)
        if values.dtype.kind == "f":
            nan, inf = int(np.count_nonzero(np.isnan(values))), int(np.count_nonzero(np.isinf(values)))
            self.nan, self.inf = self.nan + nan, self.inf + inf
            low, high = _min_max(values[np.isfinite(values)] if nan or inf else values)
        else:
            low, high = _min_max(values)
        fractional = self.array.dtype.kind in "iu" and values.dtype.kind == "f" and not np.array_equal(values, np.rint(values))
        self._include(low, high, fractional)
        self.array[slot] = values

    def _include(self, low: float, high: float, fractional: bool) -> None:
        """Widen the array's type when values outside it (or fractions) arrive."""
        self.low, self.high = min(self.low, low), max(self.high, high)
        if self.array.dtype.kind in "iu":
            info = np.iinfo(self.array.dtype)
            if fractional or self.low < info.min or self.high > info.max:
                self._widen(fractional)

    def _widen(self, fractional: bool) -> None:
        target = "float32"
        if not fractional:
            for name in _WIDER_TYPES:
                info = np.iinfo(name)
                if info.min <= self.low and self.high <= info.max:
                    target = name
                    break
        self.array = self.array.astype(target)


def _min_max(values: np.ndarray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)


def _rescale(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    if float(slope).is_integer() and float(intercept).is_integer() and values.dtype.kind in "iu":
        result = values.astype(np.int64)
        if slope != 1.0:
            result *= int(slope)
        result += int(intercept)
        return result
    return values.astype(np.float64) * slope + intercept


def _luminance(rgb: np.ndarray, dtype: np.dtype) -> np.ndarray:
    luma = rgb.astype(np.float32) @ LUMINANCE_WEIGHTS
    return np.rint(luma) if dtype.kind in "iu" else luma


# ---------------------------------------------------------------------------- decoding
def _decode_single(item: DicomSlice, prefer_pydicom: bool = False) -> tuple[np.ndarray, bool]:
    """Pixels of a single-frame file and whether they came from GDCM (rescaled, MONOCHROME1 inverted)."""
    gdcm_first = item.compressed and not prefer_pydicom
    decoders = (_gdcm_frames, _pydicom_frame) if gdcm_first else (_pydicom_frame, _gdcm_frames)
    errors = []
    for decoder in decoders:
        try:
            if decoder is _gdcm_frames:
                frames = decoder(item.path)
                return frames[0], True
            return decoder(item.path, None), False
        except Exception as error:  # noqa: BLE001 - any decoder failure falls through to the next one
            errors.append(f"{type(error).__name__}: {error}")
    raise CorruptFileError(_decode_message(item.path, errors), item.path)


def _decode_frames(path: str, items: list[tuple[int, DicomSlice]], cancel: CancelToken | None):
    """Yield (slot, item, pixels, already_rescaled, decoded_by_gdcm) for the requested frames of a file."""
    wanted = {item.frame: (slot, item) for slot, item in items}
    errors = []
    try:
        ds_out = Dataset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for frame, pixels in zip(sorted(wanted), iter_pixels(path, ds_out=ds_out, indices=sorted(wanted))):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                slot, item = wanted[frame]
                yield slot, item, _palette_to_rgb(pixels, ds_out), False, False
        return
    except OperationCancelled:
        raise
    except Exception as error:  # noqa: BLE001 - fall back to GDCM
        errors.append(f"{type(error).__name__}: {error}")
    try:
        frames = _gdcm_frames(path)
    except Exception as error:  # noqa: BLE001
        errors.append(f"{type(error).__name__}: {error}")
        raise CorruptFileError(_decode_message(path, errors), path) from None
    # GDCM rescales every frame with the first frame's slope/intercept; undo that and
    # apply each frame's own values.
    first = min(wanted)
    first_item = wanted[first][1]
    for frame in sorted(wanted):
        if cancel is not None:
            cancel.raise_if_cancelled()
        slot, item = wanted[frame]
        values = frames[frame]
        if first_item.slope != item.slope or first_item.intercept != item.intercept:
            values = (values.astype(np.float64) - first_item.intercept) / first_item.slope
            yield slot, item, values, False, True
        else:
            yield slot, item, values, True, True


def _pydicom_frame(path: str, frame: int | None) -> np.ndarray:
    ds_out = Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels = pixel_array(path, ds_out=ds_out, index=frame)
    if pixels.ndim == 3 and frame is None and pixels.shape[-1] not in (3, 4):
        pixels = pixels[0]
    return _palette_to_rgb(pixels, ds_out)


def _palette_to_rgb(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    if str(ds.get("PhotometricInterpretation", "")).upper().startswith("PALETTE"):
        rgb = apply_color_lut(pixels, ds)
        if rgb.dtype == np.uint16:
            # 16-bit palette entries hold 8-bit colours in their high byte (0xFF00 or 0xFFFF).
            rgb = (rgb >> 8).astype(np.uint8)
        return rgb
    return pixels


def _gdcm_frames(path: str) -> np.ndarray:
    """All frames as (frames, rows, columns[, 3]) via SimpleITK/GDCM (rescale applied by GDCM)."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(path)
    image = reader.Execute()
    array = sitk.GetArrayFromImage(image)
    if image.GetDimension() == 2:
        array = array[None]
    return array


def _decode_message(path: str, errors: list[str]) -> str:
    try:
        import pydicom

        syntax = UID(str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)).name
    except Exception:  # noqa: BLE001
        syntax = "unknown transfer syntax"
    detail = errors[-1].splitlines()[-1] if errors else ""
    return f"pixel data cannot be decoded ({syntax}): {detail}"[:400]
