"""Readers and writers: DICOM, NIfTI, NRRD, MHA/MHD, 2D images, label maps, datasets.

The public API (other layers code against these names):

* :func:`scan` - a file or folder -> ``SeriesList`` (a ``list[SeriesInfo]`` with
  ``.notes`` about skipped files); headers only, with progress and cancel.
* :func:`load` - one ``SeriesInfo`` -> ``Volume`` with its metadata.
* :func:`read_volume` - scan + load one series, by index or UID.
* :func:`write_volume`, :func:`write_label_map`, :func:`read_label_map`, :func:`read_label_layers`
  (NIfTI, NRRD, MetaImage, DICOM SEG, RT structure sets).
"""

from medviewer.io.dicom_headers import SkippedFile
from medviewer.io.formats import RASTER_FORMATS, VOLUME_FORMATS, WRITABLE_EXTENSIONS
from medviewer.io.reader import (
    SeriesList,
    SeriesSelectionError,
    load,
    read_volume,
    scan,
    scan_file,
    scan_folder,
    select_series,
)
from medviewer.io.writers import read_label_layers, read_label_map, write_label_map, write_volume

__all__ = [
    "RASTER_FORMATS",
    "VOLUME_FORMATS",
    "WRITABLE_EXTENSIONS",
    "SeriesList",
    "SeriesSelectionError",
    "SkippedFile",
    "load",
    "read_label_layers",
    "read_label_map",
    "read_volume",
    "scan",
    "scan_file",
    "scan_folder",
    "select_series",
    "write_label_map",
    "write_volume",
]
