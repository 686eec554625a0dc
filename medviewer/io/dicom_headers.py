"""Read DICOM headers (never pixels) into one small record per image frame.

Scanning a folder of thousands of files must be fast, so each file is read once with
pydicom, ``stop_before_pixels`` and only the tags the series builder needs. A
single-frame file gives one :class:`FrameRecord`; an enhanced multi-frame file gives
one record per frame with the geometry of its per-frame and shared functional groups.
Files that are not DICOM, or DICOM objects that hold no image (structured reports,
RT structure sets, presentation states...), are reported as :class:`SkippedFile`.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pydicom
import pydicom.tag
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

#: Transfer syntaxes whose pixel data is stored raw (its length can be checked cheaply).
UNCOMPRESSED_SYNTAXES = {
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
}
DEFLATED_SYNTAX = "1.2.840.10008.1.2.1.99"

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"

# SOP class UID prefixes of objects that carry no displayable image, and what to call them.
_NON_IMAGE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("1.2.840.10008.1.3.10", "DICOMDIR index"),
    ("1.2.840.10008.5.1.4.1.1.88.", "structured report"),
    ("1.2.840.10008.5.1.4.1.1.11.", "presentation state"),
    ("1.2.840.10008.5.1.4.1.1.9.", "waveform"),
    ("1.2.840.10008.5.1.4.1.1.104.", "encapsulated document"),
    (SEGMENTATION_STORAGE, "segmentation (open it over its image: File > Open label map, or drop it on the window)"),
    ("1.2.840.10008.5.1.4.1.1.66", "raw data / registration object"),
    (RT_STRUCTURE_SET_STORAGE, "RT structure set (open it over its image: File > Open label map, or drop it on the window)"),
    ("1.2.840.10008.5.1.4.1.1.481.4", "RT treatment record"),
    ("1.2.840.10008.5.1.4.1.1.481.5", "RT plan"),
    ("1.2.840.10008.5.1.4.1.1.481.6", "RT treatment record"),
    ("1.2.840.10008.5.1.4.1.1.481.7", "RT treatment record"),
    ("1.2.840.10008.5.1.4.1.1.481.8", "RT plan"),
    ("1.2.840.10008.5.1.4.1.1.481.9", "RT plan"),
)
_RT_PREFIX = "1.2.840.10008.5.1.4.1.1.481."
#: RT Image and RT Dose are images (a portal image, a dose grid); other RT objects are not.
_RT_IMAGE_CLASSES = {"1.2.840.10008.5.1.4.1.1.481.1", "1.2.840.10008.5.1.4.1.1.481.2"}

# Top-level tags the series builder reads. Everything else is skipped unparsed.
HEADER_TAGS = [
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "ImageType",
    "StudyDate",
    "AcquisitionTime",
    "ContentTime",
    "Modality",
    "Manufacturer",
    "StudyDescription",
    "SeriesDescription",
    "PatientName",
    "PatientID",
    "BodyPartExamined",
    "SliceThickness",
    "SpacingBetweenSlices",
    "EchoTime",
    "EchoNumbers",
    "InversionTime",
    "TriggerTime",
    "ImagerPixelSpacing",
    "DiffusionBValue",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "AcquisitionNumber",
    "InstanceNumber",
    "SliceLocation",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PatientOrientation",
    "FrameOfReferenceUID",
    "TemporalPositionIdentifier",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "PixelSpacing",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "PixelPaddingValue",
    "WindowCenter",
    "WindowWidth",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "Units",
    "VOILUTSequence",
    "GridFrameOffsetVector",
    "DoseUnits",
    "DoseGridScaling",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
]


#: The same tags as integers, converted once (pydicom would convert keywords per file).
_TAG_OF_KEYWORD = {keyword: int(pydicom.tag.Tag(keyword)) for keyword in HEADER_TAGS}
_HEADER_TAG_NUMBERS = sorted(_TAG_OF_KEYWORD.values())


@dataclass
class FrameRecord:
    """What the header says about one image frame (a single-frame file or one frame of a multi-frame file)."""

    path: str
    frame: int | None  # 0-based frame number in a multi-frame file, None for single-frame files
    number_of_frames: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    modality: str = ""
    manufacturer: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_uid: str = ""
    study_description: str = ""
    study_date: str = ""
    series_uid: str = ""
    series_description: str = ""
    series_number: int | None = None
    frame_of_reference_uid: str = ""
    body_part: str = ""
    rows: int = 0
    columns: int = 0
    samples_per_pixel: int = 1
    photometric: str = "MONOCHROME2"
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_representation: int = 0
    position: tuple[float, float, float] | None = None
    orientation: tuple[float, ...] | None = None
    #: PatientOrientation (0020,0020): patient directions of the rows and columns, e.g. ("L", "F");
    #: the only orientation a radiograph without ImageOrientationPatient has.
    patient_orientation: tuple[str, str] | None = None
    #: (row spacing, column spacing) in mm, as DICOM writes PixelSpacing.
    pixel_spacing: tuple[float, float] | None = None
    spacing_source: str = ""
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    slope: float = 1.0
    intercept: float = 0.0
    rescale_type: str = ""
    units: str = ""
    windows: list[tuple[float, float]] = field(default_factory=list)
    has_voi_lut: bool = False
    smallest_value: float | None = None
    largest_value: float | None = None
    instance_number: int | None = None
    #: Values that tell volumes apart when several share slice positions.
    acquisition_number: Any = None
    echo_number: Any = None
    echo_time: Any = None
    inversion_time: Any = None
    temporal_position: Any = None
    trigger_time: Any = None
    diffusion: Any = None
    stack_id: Any = None
    image_type: Any = None
    acquisition_time: Any = None
    content_time: Any = None
    in_stack_position: int | None = None
    #: SliceLocation (0020,1041): a distance along the normal, used only to order slices without a position.
    slice_location: float | None = None
    #: Why a present ImageOrientationPatient / ImagePositionPatient was unusable ('' when fine or absent).
    orientation_problem: str = ""
    position_problem: str = ""
    #: "float32" for Float / Double Float Pixel Data (stored as floating point), else "".
    float_pixels: str = ""
    #: A note about the pixel data element (e.g. padding after the pixels), shown as a series warning.
    pixel_note: str = ""
    #: Set when the file is shorter than its pixel data needs.
    truncated: str = ""

    @property
    def compressed(self) -> bool:
        return self.transfer_syntax not in UNCOMPRESSED_SYNTAXES

    @property
    def is_color(self) -> bool:
        return self.samples_per_pixel > 1 or self.photometric.startswith(("PALETTE", "RGB", "YBR"))


@dataclass
class SkippedFile:
    """A file that a scan passed over, and why (shown to the user as a note)."""

    path: str
    reason: str
    #: "not-dicom", "non-image", "corrupt", "duplicate" or "unsupported"
    kind: str
    #: SeriesInstanceUID when the header could be read (so the series can be told).
    series_uid: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


# ---------------------------------------------------------------------------- value helpers
def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _number(value: Any) -> float | None:
    """A float from a DS/IS/FD value (first of several); None when missing or malformed."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(round(number)) if number is not None else None


def _numbers(value: Any, count: int) -> tuple[float, ...] | None:
    """Exactly ``count`` finite floats from a multi-valued element, else None."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or any(n != n or abs(n) == float("inf") for n in numbers):
        return None
    return numbers


#: Row and column directions whose cosine exceeds this are not perpendicular (about 0.6 degrees off;
#: scanners write them perpendicular to rounding noise, ~1e-5).
_PERPENDICULAR_TOLERANCE = 1e-2


def _values(value: Any) -> list[Any] | None:
    """A multi-valued element as a list (a single value as a one-item list); None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return list(value)
    return [value]


def _shown(numbers: list[float | None]) -> str:
    """Parsed values for a message; NaN, Inf and text were parsed to None."""
    return ", ".join("not a number" if n is None else f"{n:g}" for n in numbers)


def checked_orientation(value: Any) -> tuple[tuple[float, ...] | None, str]:
    """ImageOrientationPatient as 6 floats, or None and why it cannot be used ('' when absent).

    All-zero, NaN/Inf and parallel row/column directions occur in broken exports; they
    have no slice normal, so they must never reach the geometry code as if valid.
    """
    values = _values(value)
    if values is None:
        return None, ""
    numbers = [_number(v) for v in values]
    if len(values) != 6:
        return None, f"ImageOrientationPatient has {len(values)} values instead of 6"
    if any(n is None for n in numbers):
        shown = _shown(numbers)
        return None, f"ImageOrientationPatient holds values that are not finite numbers ({shown})"
    row, column = numbers[:3], numbers[3:]
    row_length, column_length = (sum(c * c for c in vector) ** 0.5 for vector in (row, column))
    shown = ", ".join(f"{n:g}" for n in numbers)
    if row_length < 1e-6 and column_length < 1e-6:
        return None, f"ImageOrientationPatient is all zero ({shown})"
    if row_length < 1e-6 or column_length < 1e-6:
        which = "row" if row_length < 1e-6 else "column"
        return None, f"ImageOrientationPatient has a zero {which} direction ({shown})"
    cosine = sum(a * b for a, b in zip(row, column)) / (row_length * column_length)
    if abs(cosine) > 1 - 1e-6:
        return None, f"ImageOrientationPatient has parallel row and column directions ({shown})"
    if abs(cosine) > _PERPENDICULAR_TOLERANCE:
        return None, f"ImageOrientationPatient has row and column directions that are not perpendicular ({shown})"
    return tuple(numbers), ""


def checked_position(value: Any) -> tuple[tuple[float, float, float] | None, str]:
    """ImagePositionPatient as 3 floats, or None and why it cannot be used ('' when absent)."""
    values = _values(value)
    if values is None:
        return None, ""
    numbers = _numbers(values, 3)
    if numbers is None:
        shown = _shown([_number(v) for v in values])
        if len(values) != 3:
            return None, f"ImagePositionPatient has {len(values)} values instead of 3 ({shown})"
        return None, f"ImagePositionPatient holds values that are not finite numbers ({shown})"
    return numbers, ""


#: Letters of DICOM anatomical direction codes (PS3.3 C.7.6.1.1.1): anterior, posterior, right, left, head, foot.
_DIRECTION_LETTERS = frozenset("APRLHF")


def _direction_codes(value: Any) -> tuple[str, str] | None:
    """PatientOrientation's two codes (e.g. ("L", "F"), or oblique ones like "LH"); None when missing or malformed."""
    if not isinstance(value, (list, tuple, pydicom.multival.MultiValue)) or len(value) != 2:
        return None
    codes = tuple(str(v).strip().upper() for v in value)
    if not all(codes) or any(set(code) - _DIRECTION_LETTERS for code in codes):
        return None
    return codes


def _hashable(value: Any) -> Any:
    """Tag value usable as a grouping key (lists become tuples, numbers stay numbers)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, (int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _windows(get: Callable[[str], Any]) -> list[tuple[float, float]]:
    """(centre, width) pairs from WindowCenter/WindowWidth, which may be multi-valued."""
    centres, widths = get("WindowCenter"), get("WindowWidth")
    if centres is None or widths is None:
        return []
    if not isinstance(centres, (list, tuple, pydicom.multival.MultiValue)):
        centres = [centres]
    if not isinstance(widths, (list, tuple, pydicom.multival.MultiValue)):
        widths = [widths]
    pairs = []
    for centre, width in zip(centres, widths):
        c, w = _number(centre), _number(width)
        if c is not None and w is not None and w > 0:
            pairs.append((c, w))
    return pairs


def _get(item: Dataset, keyword: str) -> Any:
    """Tolerant element access: malformed values become None instead of raising."""
    try:
        return item.get(keyword)
    except Exception:  # noqa: BLE001 - pydicom raises many kinds on malformed values
        return None


_STRUCT_CODES = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_ASCII_VRS = {"CS", "UI", "DA", "TM", "DT", "AS", "AE"}
_TEXT_VRS = {"LO", "SH", "PN", "LT", "ST"}


class _Header:
    """Reads element values straight from pydicom's raw elements.

    pydicom's general value conversion costs about 30 microseconds per element; the
    numbers and codes a scan needs (DS, IS, US, CS, UI...) are decoded here directly,
    which makes header scanning several times faster. Text whose meaning depends on the
    character set (names, descriptions) and sequences still go through pydicom.
    """

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        implicit, little = ds.original_encoding
        self.byte_order = "<" if little in (True, None) else ">"
        self.text_codec: str | None = "latin-1"
        charset = self.get("SpecificCharacterSet")
        if charset:
            # Only single-byte Latin-1 and UTF-8 are decoded here; other sets go through pydicom.
            names = {charset} if isinstance(charset, str) else set(charset)
            self.text_codec = "utf-8" if names == {"ISO_IR 192"} else "latin-1" if names <= {"ISO_IR 100", "ISO_IR 6", ""} else None

    def get(self, keyword: str) -> Any:
        tag = _TAG_OF_KEYWORD[keyword]
        try:
            element = self.ds.get_item(tag)
        except (KeyError, TypeError):
            return None
        if element is None:
            return None
        if not isinstance(element, RawDataElement):
            return element.value
        vr = element.VR
        if vr is None:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "UN"
        raw = element.value
        try:
            if raw is not None and vr in _TEXT_VRS and self.text_codec is not None:
                text = raw.decode(self.text_codec, "replace").strip(" \x00")
                return text or None
            if raw is None or (vr not in ("DS", "IS") and vr not in _ASCII_VRS and vr not in _STRUCT_CODES):
                return _get(self.ds, keyword)
            if vr in _STRUCT_CODES:
                code = _STRUCT_CODES[vr]
                count = len(raw) // struct.calcsize(code)
                values = struct.unpack(f"{self.byte_order}{count}{code}", raw[: count * struct.calcsize(code)])
                return values[0] if count == 1 else list(values) if count else None
            text = raw.decode("ascii", "replace").strip(" \x00")
            if text == "":
                return None
            parts = [part.strip(" \x00") for part in text.split("\\")]
            if vr in ("DS", "IS"):
                numbers = [_number(part) for part in parts]
                return numbers[0] if len(numbers) == 1 else numbers
            return parts[0] if len(parts) == 1 else parts
        except (struct.error, ValueError):
            return None


def classify_non_image(sop_class_uid: str) -> str | None:
    """A short name when the SOP class holds no displayable image, else None."""
    for prefix, name in _NON_IMAGE_PREFIXES:
        # A prefix ending in "." names a family; otherwise the UID itself or its sub-classes.
        family = prefix if prefix.endswith(".") else prefix + "."
        if sop_class_uid == prefix or sop_class_uid.startswith(family):
            return name
    if sop_class_uid.startswith(_RT_PREFIX) and sop_class_uid not in _RT_IMAGE_CLASSES:
        return "RT object"
    return None


def segmentation_kind(path: str | os.PathLike[str]) -> str | None:
    """``"SEG"`` for a DICOM segmentation, ``"RTSTRUCT"`` for an RT structure set, else None (header only)."""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality", "SOPClassUID"])
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, TypeError, KeyError, struct.error, EOFError):
        return None  # anything unreadable is simply not a segmentation
    sop_class, modality = str(_get(header, "SOPClassUID") or ""), str(_get(header, "Modality") or "")
    if sop_class == SEGMENTATION_STORAGE or modality == "SEG":
        return "SEG"
    if sop_class == RT_STRUCTURE_SET_STORAGE or modality == "RTSTRUCT":
        return "RTSTRUCT"
    return None


def frame_group(own: Dataset | None, shared: Dataset | None, name: str) -> Dataset | None:
    """A functional group's item for one frame: the frame's own, else the shared one."""
    return _functional_group(own, name) or _functional_group(shared, name)


# ---------------------------------------------------------------------------- reading
def read_frame_records(path: str) -> list[FrameRecord] | SkippedFile:
    """Header records for every image frame of one file, or why the file was skipped."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forced = False
            try:
                ds = pydicom.dcmread(handle, stop_before_pixels=True, specific_tags=_HEADER_TAG_NUMBERS)
            except InvalidDicomError:
                # Old files without the 128-byte preamble/DICM prefix are still DICOM;
                # accept them only if the forced parse finds real image identifiers.
                handle.seek(0)
                ds = pydicom.dcmread(handle, stop_before_pixels=True, specific_tags=_HEADER_TAG_NUMBERS, force=True)
                forced = True
            pixel_offset = handle.tell()
            pixel_element = handle.read(12)
    except OSError as error:
        return SkippedFile(path, f"cannot be read ({error.strerror or error})", "corrupt")
    except Exception as error:  # noqa: BLE001 - pydicom raises anything on garbage
        return SkippedFile(path, f"not a readable DICOM file ({type(error).__name__}: {error})", "corrupt")

    header = _Header(ds)
    sop_class = _text(header.get("SOPClassUID"))
    if not sop_class and getattr(ds, "file_meta", None) is not None:
        sop_class = _text(ds.file_meta.get("MediaStorageSOPClassUID"))  # e.g. DICOMDIR
    if forced and not (sop_class and ds.get("SOPInstanceUID")):
        return SkippedFile(path, "not a DICOM file", "not-dicom")
    if not forced and not sop_class and "Rows" not in ds:
        return SkippedFile(path, "holds no image: a DICOM file without a SOP class or pixels", "non-image")
    non_image = classify_non_image(sop_class)
    if non_image is not None:
        return SkippedFile(path, f"holds no image: it is a {non_image} ({UID(sop_class).name})", "non-image")
    if _integer(header.get("Rows")) in (None, 0) or _integer(header.get("Columns")) in (None, 0):
        name = UID(sop_class).name if sop_class else "unknown SOP class"
        return SkippedFile(path, f"holds no image: a DICOM object without pixel rows/columns ({name})", "non-image")

    transfer_syntax = ""
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        transfer_syntax = _text(file_meta.get("TransferSyntaxUID"))
    if not transfer_syntax:
        implicit, little = ds.original_encoding
        transfer_syntax = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
        if little is False:
            transfer_syntax = "1.2.840.10008.1.2.2"
    try:
        base = _base_record(header, path, sop_class, transfer_syntax)
    except Exception as error:  # noqa: BLE001
        return SkippedFile(path, f"DICOM header cannot be interpreted ({type(error).__name__}: {error})", "corrupt")

    if base.transfer_syntax in UNCOMPRESSED_SYNTAXES:
        # Float pixel data is always native; the element header is where pydicom stopped.
        implicit, little = ds.original_encoding
        element = _pixel_element(pixel_element, bool(implicit), little is not False)
        if element is not None and element[0] in _FLOAT_PIXEL_TAGS:
            base.float_pixels = "float32"
        problem = _check_pixel_length(base, size, pixel_offset, bool(implicit))
        if not problem and element is not None:
            problem, base.pixel_note = _check_pixel_excess(base, element[1])
        if problem:
            return SkippedFile(path, problem, "corrupt", base.series_uid)

    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _enhanced_records(ds, base)
    if base.number_of_frames > 1:
        return _classic_multiframe_records(ds, base)
    return [base]


def _check_pixel_length(record: FrameRecord, file_size: int, pixel_offset: int, implicit_vr: bool) -> str:
    """A message when an uncompressed file is too short for its pixel data, else ''."""
    bits = record.bits_allocated
    pixels = record.rows * record.columns * record.samples_per_pixel * record.number_of_frames
    expected = (pixels + 7) // 8 if bits == 1 else pixels * max(bits, 8) // 8
    header = 8 if implicit_vr else 12
    available = file_size - pixel_offset - header
    if pixel_offset >= file_size:
        return "the file holds no pixel data (truncated?)"
    if available < expected:
        return f"the file is truncated: pixel data has {max(available, 0)} of {expected} bytes"
    return ""


#: Float Pixel Data and Double Float Pixel Data (parametric maps, some PET/MR exports).
_FLOAT_PIXEL_TAGS = {0x7FE00008: "Float Pixel Data", 0x7FE00009: "Double Float Pixel Data"}
_PIXEL_TAGS = {0x7FE00010, *_FLOAT_PIXEL_TAGS}
_LONG_LENGTH_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"}


def _pixel_element(raw: bytes, implicit_vr: bool, little_endian: bool) -> tuple[int, int | None] | None:
    """(tag, value length or None when undefined) of the pixel data element header, else None."""
    order = "<" if little_endian else ">"
    if len(raw) < 8:
        return None
    group, element = struct.unpack(f"{order}HH", raw[:4])
    tag = (group << 16) | element
    if tag not in _PIXEL_TAGS:
        return None
    if implicit_vr:
        length = struct.unpack(f"{order}I", raw[4:8])[0]
    elif raw[4:6] in _LONG_LENGTH_VRS and len(raw) >= 12:
        length = struct.unpack(f"{order}I", raw[8:12])[0]
    else:
        return tag, None
    return tag, None if length == 0xFFFFFFFF else length


def _check_pixel_excess(record: FrameRecord, length: int | None) -> tuple[str, str]:
    """(refusal, note) when the pixel data element is longer than the header's image size needs.

    At least a whole row more means Rows/Columns/NumberOfFrames/BitsAllocated do not
    describe the pixels (reading them would scramble the image), so the file is refused;
    a few bytes of padding are only noted. One pad byte (even length) is normal.
    """
    if length is None:
        return "", ""
    bits = record.bits_allocated
    pixels = record.rows * record.columns * record.samples_per_pixel * record.number_of_frames
    expected = (pixels + 7) // 8 if bits == 1 else pixels * max(bits, 8) // 8
    excess = length - expected - (expected % 2)
    if excess <= 0:
        return "", ""
    row_bytes = max(1, record.columns * record.samples_per_pixel * max(bits, 8) // 8)
    frames = f" x {record.number_of_frames} frames" if record.number_of_frames > 1 else ""
    size = f"Rows {record.rows} x Columns {record.columns}{frames} at {bits} bits"
    if excess >= row_bytes:
        return (
            f"the pixel data holds {length} bytes but {size} needs {expected}: "
            "the header's image size does not match the pixel data",
            "",
        )
    return "", f"the pixel data has {excess} bytes more than {size} needs; they were ignored"


def _base_record(header: "_Header", path: str, sop_class: str, transfer_syntax: str) -> FrameRecord:
    ds = header.ds
    record = FrameRecord(
        path=path,
        frame=None,
        number_of_frames=max(1, _integer(header.get("NumberOfFrames")) or 1),
        sop_class_uid=sop_class,
        sop_instance_uid=_text(header.get("SOPInstanceUID")),
        transfer_syntax=transfer_syntax,
        modality=_text(header.get("Modality")).upper(),
        manufacturer=_text(header.get("Manufacturer")),
        patient_id=_text(header.get("PatientID")),
        patient_name=_text(header.get("PatientName")),
        study_uid=_text(header.get("StudyInstanceUID")),
        study_description=_text(header.get("StudyDescription")),
        study_date=_text(header.get("StudyDate")),
        series_uid=_text(header.get("SeriesInstanceUID")),
        series_description=_text(header.get("SeriesDescription")),
        series_number=_integer(header.get("SeriesNumber")),
        frame_of_reference_uid=_text(header.get("FrameOfReferenceUID")),
        body_part=_text(header.get("BodyPartExamined")),
        rows=_integer(header.get("Rows")) or 0,
        columns=_integer(header.get("Columns")) or 0,
        samples_per_pixel=_integer(header.get("SamplesPerPixel")) or 1,
        photometric=_text(header.get("PhotometricInterpretation")).upper() or "MONOCHROME2",
        bits_allocated=_integer(header.get("BitsAllocated")) or 16,
        pixel_representation=_integer(header.get("PixelRepresentation")) or 0,
        slice_location=_number(header.get("SliceLocation")),
        patient_orientation=_direction_codes(header.get("PatientOrientation")),
        slice_thickness=_number(header.get("SliceThickness")),
        spacing_between_slices=_number(header.get("SpacingBetweenSlices")),
        rescale_type=_text(header.get("RescaleType")),
        units=_text(header.get("Units")),
        windows=_windows(header.get),
        has_voi_lut="VOILUTSequence" in ds,
        smallest_value=_number(header.get("SmallestImagePixelValue")),
        largest_value=_number(header.get("LargestImagePixelValue")),
        instance_number=_integer(header.get("InstanceNumber")),
        acquisition_number=_hashable(header.get("AcquisitionNumber")),
        echo_number=_hashable(header.get("EchoNumbers")),
        echo_time=_hashable(header.get("EchoTime")),
        inversion_time=_hashable(header.get("InversionTime")),
        temporal_position=_hashable(header.get("TemporalPositionIdentifier")),
        trigger_time=_hashable(header.get("TriggerTime")),
        diffusion=_hashable(header.get("DiffusionBValue")),
        image_type=_hashable(header.get("ImageType")),
        acquisition_time=_hashable(header.get("AcquisitionTime")),
        content_time=_hashable(header.get("ContentTime")),
    )
    record.bits_stored = _integer(header.get("BitsStored")) or record.bits_allocated
    record.position, record.position_problem = checked_position(header.get("ImagePositionPatient"))
    record.orientation, record.orientation_problem = checked_orientation(header.get("ImageOrientationPatient"))
    slope, intercept = _number(header.get("RescaleSlope")), _number(header.get("RescaleIntercept"))
    record.slope = slope if slope not in (None, 0.0) else 1.0
    record.intercept = intercept if intercept is not None else 0.0
    dose_scaling = _number(header.get("DoseGridScaling"))
    if record.modality == "RTDOSE" and dose_scaling:
        # RT dose grids store dose / DoseGridScaling; treat the scaling as a rescale slope.
        record.slope, record.units = dose_scaling, _text(header.get("DoseUnits")) or "GY"
    _set_spacing(record, header.get)
    return record


def _set_spacing(record: FrameRecord, get: Callable[[str], Any]) -> None:
    """PixelSpacing, else ImagerPixelSpacing (projection radiographs); zero counts as missing."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = _numbers(get(keyword), 2)
        if spacing is not None and spacing[0] > 0 and spacing[1] > 0:
            record.pixel_spacing = spacing
            record.spacing_source = keyword
            return


def _functional_group(item: Dataset | None, sequence: str) -> Dataset | None:
    if item is None:
        return None
    value = item.get(sequence)
    return value[0] if value else None


def _enhanced_records(ds: Dataset, base: FrameRecord) -> list[FrameRecord]:
    """One record per frame, merging the shared and per-frame functional groups."""
    shared_sequence = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_sequence[0] if shared_sequence else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    records = []
    for frame in range(base.number_of_frames):
        own = per_frame[frame] if frame < len(per_frame) else None
        record = FrameRecord(**{**base.__dict__, "windows": list(base.windows)})
        record.frame = frame

        def group(name: str) -> Dataset | None:
            return frame_group(own, shared, name)

        position = group("PlanePositionSequence")
        if position is not None:
            record.position, record.position_problem = checked_position(_get(position, "ImagePositionPatient"))
        orientation = group("PlaneOrientationSequence")
        if orientation is not None:
            record.orientation, record.orientation_problem = checked_orientation(
                _get(orientation, "ImageOrientationPatient")
            )
        measures = group("PixelMeasuresSequence")
        if measures is not None:
            _set_spacing(record, lambda keyword: _get(measures, keyword))
            record.slice_thickness = _number(_get(measures, "SliceThickness"))
            record.spacing_between_slices = _number(_get(measures, "SpacingBetweenSlices")) or record.spacing_between_slices
        transform = group("PixelValueTransformationSequence")
        if transform is not None:
            slope, intercept = _number(_get(transform, "RescaleSlope")), _number(_get(transform, "RescaleIntercept"))
            record.slope = slope if slope not in (None, 0.0) else 1.0
            record.intercept = intercept if intercept is not None else 0.0
            record.rescale_type = _text(_get(transform, "RescaleType")) or record.rescale_type
        voi = group("FrameVOILUTSequence")
        if voi is not None:
            record.windows = _windows(lambda keyword: _get(voi, keyword)) or record.windows
        content = group("FrameContentSequence")
        if content is not None:
            record.stack_id = _hashable(_get(content, "StackID"))
            record.temporal_position = _hashable(_get(content, "TemporalPositionIndex")) or record.temporal_position
            record.in_stack_position = _integer(_get(content, "InStackPositionNumber"))
            record.acquisition_number = _hashable(_get(content, "FrameAcquisitionNumber")) or record.acquisition_number
        echo = group("MREchoSequence")
        if echo is not None:
            record.echo_time = _hashable(_get(echo, "EffectiveEchoTime"))
        diffusion = group("MRDiffusionSequence")
        if diffusion is not None:
            direction = diffusion.get("DiffusionGradientDirectionSequence")
            gradient = _hashable(direction[0].get("DiffusionGradientOrientation")) if direction else None
            record.diffusion = (_hashable(_get(diffusion, "DiffusionBValue")), gradient)
        frame_type = group("MRImageFrameTypeSequence") or group("CTImageFrameTypeSequence")
        if frame_type is not None:
            record.image_type = _hashable(_get(frame_type, "FrameType")) or record.image_type
        cardiac = group("CardiacSynchronizationSequence")
        if cardiac is not None:
            record.trigger_time = _hashable(_get(cardiac, "NominalCardiacTriggerDelayTime"))
        records.append(record)
    return records


def _classic_multiframe_records(ds: Dataset, base: FrameRecord) -> list[FrameRecord]:
    """Frames of a classic multi-frame file; RT dose grids place them with GridFrameOffsetVector."""
    offsets = _get(ds, "GridFrameOffsetVector")
    offsets = [float(v) for v in offsets] if offsets is not None and len(offsets) == base.number_of_frames else None
    records = []
    for frame in range(base.number_of_frames):
        record = FrameRecord(**{**base.__dict__, "windows": list(base.windows)})
        record.frame = frame
        if offsets is not None and base.position is not None and base.orientation is not None:
            # Offsets are along the normal relative to the first frame (DICOM C.8.8.3.2).
            row, col = base.orientation[:3], base.orientation[3:]
            normal = (
                row[1] * col[2] - row[2] * col[1],
                row[2] * col[0] - row[0] * col[2],
                row[0] * col[1] - row[1] * col[0],
            )
            shift = offsets[frame] - offsets[0]
            record.position = tuple(p + shift * n for p, n in zip(base.position, normal))
        else:
            # Frames without their own position (cine, NM...): stacked in frame order.
            record.position = None
        records.append(record)
    return records
