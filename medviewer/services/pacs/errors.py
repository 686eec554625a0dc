"""Errors of DICOM networking: each names the node and says what went wrong."""

from __future__ import annotations

from medviewer.core.errors import MedviewerError


class PacsError(MedviewerError):
    """A PACS operation failed (the message names the node and the problem)."""


class PacsConfigError(PacsError):
    """A PACS node's settings are incomplete or invalid."""


class PacsUnreachableError(PacsError):
    """No TCP/HTTP connection to the node (wrong host or port, server down, firewall)."""


class AssociationRejectedError(PacsError):
    """The node refused the DICOM association (often an unknown calling or called AE title)."""


class PacsTimeoutError(PacsError):
    """The node stopped answering within the configured timeout."""


class PacsAuthenticationError(PacsError):
    """The DICOMweb server refused our credentials (HTTP 401/403)."""


class PartialRetrieveError(PacsError):
    """Some instances of a retrieve or send failed; the others went through."""

    def __init__(self, message: str, completed: int = 0, failed: int = 0) -> None:
        super().__init__(message)
        self.completed = completed
        self.failed = failed
