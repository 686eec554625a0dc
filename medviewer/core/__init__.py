"""Qt-free data model: geometry, volumes, label maps, detections, documents, jobs, errors."""

from medviewer.core.detection import Detection, DetectionStatus
from medviewer.core.document import Document, Region
from medviewer.core.errors import MedviewerError
from medviewer.core.geometry import Geometry
from medviewer.core.jobs import NO_PROGRESS, CancelToken
from medviewer.core.labels import LabelInfo, LabelMap, LabelTable
from medviewer.core.study import SeriesInfo, Study
from medviewer.core.volume import Volume, VolumeMetadata

__all__ = [
    "NO_PROGRESS",
    "CancelToken",
    "Detection",
    "DetectionStatus",
    "Document",
    "Geometry",
    "LabelInfo",
    "LabelMap",
    "LabelTable",
    "MedviewerError",
    "Region",
    "SeriesInfo",
    "Study",
    "Volume",
    "VolumeMetadata",
]
