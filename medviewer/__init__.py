"""medviewer: a desktop viewer for CT, MR and X-ray studies with AI-assisted annotation."""

__version__ = "0.1.0"
