"""File formats medviewer reads and writes, recognised by extension."""

from __future__ import annotations

import os
from pathlib import Path

#: Volume formats read and written through SimpleITK, with their display names.
VOLUME_FORMATS: dict[str, str] = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}
#: 2D raster formats (read only): no physical pixel size, so loaded uncalibrated.
RASTER_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
#: Extensions that are the data half of a header/data pair; never opened on their own.
DATA_FILE_EXTENSIONS = {".raw", ".zraw", ".img", ".raw.gz"}
#: Extensions that are certainly not images (skipped quietly when scanning folders).
IGNORED_EXTENSIONS = {
    ".txt", ".md", ".json", ".xml", ".csv", ".html", ".htm", ".pdf", ".py", ".ini", ".log", ".zip",
    ".gz", ".tar", ".exe", ".dll", ".db", ".sqlite", ".doc", ".docx", ".xls", ".xlsx", ".rtf", ".cfg",
}
WRITABLE_EXTENSIONS = tuple(VOLUME_FORMATS)


def extension_of(path: str | os.PathLike[str]) -> str:
    """Lower-case extension, with the double ``.nii.gz``/``.raw.gz`` suffix kept together."""
    name = Path(path).name.lower()
    for double in (".nii.gz", ".raw.gz"):
        if name.endswith(double):
            return double
    return Path(name).suffix


def sitk_format_of(path: str | os.PathLike[str]) -> str | None:
    """Display name of a SimpleITK-readable format (NIfTI, NRRD, PNG...), or None."""
    extension = extension_of(path)
    return VOLUME_FORMATS.get(extension) or RASTER_FORMATS.get(extension)


def is_raster(path: str | os.PathLike[str]) -> bool:
    return extension_of(path) in RASTER_FORMATS


def supported_extensions_text() -> str:
    return ", ".join(sorted(set(VOLUME_FORMATS) | set(RASTER_FORMATS))) + " and DICOM"
