"""Read the attributes the study database indexes from one DICOM file (header only, never pixels).

Indexing must reach hundreds of files per second, so each file is parsed once with
pydicom's ``stop_before_pixels`` and only the tags listed here (``specific_tags``);
everything else is skipped unparsed. Files that are not DICOM, or DICOM files without
the identifiers a database needs (SOP instance, study and series UIDs), are returned as
:class:`~medviewer.io.dicom_headers.SkippedFile` with the reason.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import pydicom
import pydicom.tag
from pydicom.errors import InvalidDicomError

from medviewer.io.dicom_headers import SkippedFile
from medviewer.io.formats import IGNORED_EXTENSIONS, extension_of, sitk_format_of

#: Media storage directory (DICOMDIR): an index of a CD, not an instance to store.
MEDIA_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"

INDEX_TAGS = [
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "Modality",
    "StudyDescription",
    "SeriesDescription",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "BodyPartExamined",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "InstanceNumber",
]
_TAG_NUMBERS = sorted(int(pydicom.tag.Tag(keyword)) for keyword in INDEX_TAGS)


@dataclass
class IndexedInstance:
    """One DICOM instance as the database stores it (``path`` is where the file is read from)."""

    path: str
    size_bytes: int
    sop_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession: str = ""
    modality: str = ""
    series_description: str = ""
    series_number: int | None = None
    instance_number: int | None = None
    body_part: str = ""


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - pydicom raises many kinds on malformed values
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip(" \x00")


def _integer(ds: pydicom.Dataset, keyword: str) -> int | None:
    text = _text(ds, keyword).split("\\")[0]
    try:
        return int(round(float(text))) if text else None
    except ValueError:
        return None


def read_index_header(path: str | os.PathLike[str]) -> IndexedInstance | SkippedFile:
    """The indexed attributes of the DICOM file at ``path``, or why it cannot be indexed."""
    path = os.fspath(path)
    image_format = sitk_format_of(path)
    if image_format is not None:
        # NIfTI, NRRD, PNG...: not opened (the database holds DICOM only; File > Open reads them)
        return SkippedFile(path, f"not a DICOM file (a {image_format} image; the database holds DICOM only)", "not-dicom")
    if extension_of(path) in IGNORED_EXTENSIONS:
        return SkippedFile(path, "not a DICOM file", "not-dicom")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(handle, stop_before_pixels=True, specific_tags=_TAG_NUMBERS)
            except InvalidDicomError:
                # Old files without the preamble and DICM prefix: accept them only when a
                # forced parse finds real identifiers (random files parse into garbage).
                handle.seek(0)
                ds = pydicom.dcmread(handle, stop_before_pixels=True, specific_tags=_TAG_NUMBERS, force=True)
                if not _text(ds, "SOPInstanceUID") or not _text(ds, "StudyInstanceUID"):
                    return SkippedFile(path, "not a DICOM file", "not-dicom")
    except OSError as error:
        return SkippedFile(path, f"cannot be read ({error.strerror or error})", "corrupt")
    except Exception as error:  # noqa: BLE001 - pydicom raises anything on garbage
        return SkippedFile(path, f"not a readable DICOM file ({type(error).__name__}: {error})", "corrupt")
    sop_class = _text(ds, "SOPClassUID")
    meta = getattr(ds, "file_meta", None)
    if not sop_class and meta is not None:
        sop_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
    if sop_class == MEDIA_DIRECTORY_STORAGE:
        return SkippedFile(path, "a DICOMDIR (media index), not an instance", "non-image")
    identifiers: dict[str, Any] = {
        "SOPInstanceUID": _text(ds, "SOPInstanceUID"),
        "StudyInstanceUID": _text(ds, "StudyInstanceUID"),
        "SeriesInstanceUID": _text(ds, "SeriesInstanceUID"),
    }
    missing = [keyword for keyword, value in identifiers.items() if not value]
    if missing:
        return SkippedFile(path, f"a DICOM file without {', '.join(missing)}: it cannot be indexed", "corrupt")
    return IndexedInstance(
        path=path,
        size_bytes=size,
        sop_uid=identifiers["SOPInstanceUID"],
        sop_class_uid=sop_class,
        study_uid=identifiers["StudyInstanceUID"],
        series_uid=identifiers["SeriesInstanceUID"],
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        birth_date=_text(ds, "PatientBirthDate"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        study_description=_text(ds, "StudyDescription"),
        accession=_text(ds, "AccessionNumber"),
        modality=_text(ds, "Modality").upper(),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_integer(ds, "SeriesNumber"),
        instance_number=_integer(ds, "InstanceNumber"),
        body_part=_text(ds, "BodyPartExamined"),
    )
