"""Search fields shared by C-FIND and QIDO-RS, and the shape of their results.

A result is a plain dict keyed by DICOM keywords (``StudyInstanceUID``, ``Modality``,
``NumberOfSeriesRelatedInstances``...), so the CLI can print it as JSON and the study
browser can show remote studies beside local ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from medviewer.services.pacs.errors import PacsConfigError

LEVELS = ("study", "series")

STUDY_KEYS = (
    "PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate", "StudyTime",
    "StudyDescription", "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_KEYS = (
    "StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber",
    "BodyPartExamined", "NumberOfSeriesRelatedInstances",
)
_INTEGER_KEYS = {"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances", "SeriesNumber"}
_DATE_RANGE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")


@dataclass
class Query:
    """What to look for. Empty fields match everything; ``patient_name`` may use ``*`` and ``?``."""

    level: str = "study"
    patient_name: str = ""
    patient_id: str = ""
    #: ``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-`` (from) or ``-YYYYMMDD`` (until).
    study_date: str = ""
    modality: str = ""
    accession_number: str = ""
    study_uid: str = ""
    series_uid: str = ""

    def validate(self) -> "Query":
        if self.level not in LEVELS:
            raise PacsConfigError(f"query level '{self.level}' is not one of {', '.join(LEVELS)}")
        match = _DATE_RANGE.match(self.study_date.strip())
        if self.study_date.strip() and (match is None or not (match.group(1) or match.group(3))):
            raise PacsConfigError(f"study date '{self.study_date}' is not YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
        return self

    def match_keys(self) -> dict[str, str]:
        """The matching keys (keyword -> DICOM match value) this query sets."""
        keys = {
            "PatientName": self.patient_name,
            "PatientID": self.patient_id,
            "StudyDate": self.study_date.strip(),
            "AccessionNumber": self.accession_number,
            "StudyInstanceUID": self.study_uid,
        }
        if self.level == "study":
            keys["ModalitiesInStudy"] = self.modality
        else:
            keys["Modality"] = self.modality
            keys["SeriesInstanceUID"] = self.series_uid
        return {k: v for k, v in keys.items() if v}

    def return_keys(self) -> tuple[str, ...]:
        return STUDY_KEYS if self.level == "study" else SERIES_KEYS

    def identifier(self) -> Dataset:
        """The C-FIND identifier: return keys empty, matching keys set."""
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY" if self.level == "study" else "SERIES"
        for keyword in self.return_keys():
            setattr(ds, keyword, "" if keyword not in _INTEGER_KEYS else None)
        for keyword, value in self.match_keys().items():
            setattr(ds, keyword, value)
        return ds


def _plain(value: Any, keyword: str) -> Any:
    if value is None or value == "":
        return None if keyword in _INTEGER_KEYS else ""
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, (MultiValue, list, tuple)):
        return [_plain(v, keyword) for v in value]
    if keyword in _INTEGER_KEYS:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return str(value)


def result_from_dataset(ds: Dataset, keys: tuple[str, ...]) -> dict[str, Any]:
    """A C-FIND / QIDO answer as a dict of the return keys (missing ones empty)."""
    result: dict[str, Any] = {}
    for keyword in keys:
        value = ds.get(keyword)
        plain = _plain(value, keyword)
        if keyword == "ModalitiesInStudy" and isinstance(plain, str):
            plain = [plain] if plain else []
        result[keyword] = plain
    return result
