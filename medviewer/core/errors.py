"""Errors a user can cause. Each names the file (when there is one) and the problem.

The CLI prints ``str(error)`` as one line and exits with code 2; the GUI shows it in
a dialog. Anything that is not a ``MedviewerError`` is a bug.
"""

from __future__ import annotations

import os


class MedviewerError(Exception):
    """Base class for every error a user can cause (bad file, bad geometry, cancel...)."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class PathNotFoundError(MedviewerError):
    """The file or folder the user named does not exist."""


class UnsupportedFormatError(MedviewerError):
    """The file extension or content type is not one medviewer can read or write."""


class CorruptFileError(MedviewerError):
    """A file is truncated or its content cannot be decoded."""


class NotAnImageError(MedviewerError):
    """A readable file that holds no image (e.g. a DICOM structured report)."""


class EmptyFolderError(MedviewerError):
    """A folder holds no files at all."""


class NoImageSeriesError(MedviewerError):
    """A folder holds files, but no image series could be assembled from them."""


class InconsistentSeriesError(MedviewerError):
    """The slices of one series cannot be stacked (different sizes, types...)."""


class GeometryMismatchError(MedviewerError):
    """A label map or overlay does not share its image's geometry."""


class OperationCancelled(MedviewerError):
    """The user cancelled a long operation; nothing was changed."""

    def __init__(self, message: str = "Cancelled by the user", path: str | None = None) -> None:
        super().__init__(message, path)


class ModelError(MedviewerError):
    """A model package is broken, unsafe or does not fit the input."""


class DatasetError(MedviewerError):
    """An annotation dataset is malformed (missing files, wrong geometry...)."""
