"""Per-user folders (platformdirs). ``MEDVIEWER_HOME`` overrides them all, for tests and portable use."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "medviewer"


def _base(kind: str) -> Path:
    home = os.environ.get("MEDVIEWER_HOME")
    if home:
        path = Path(home) / kind
    elif kind == "config":
        path = Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    elif kind == "cache":
        path = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    else:
        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Settings (recent files, layout, annotator name)."""
    return _base("config")


def cache_dir() -> Path:
    """Regenerable data: the generated demo study, thumbnails."""
    return _base("cache")


def recovery_dir() -> Path:
    """Autosaved unsaved edits, offered back after a crash."""
    return _base("recovery")


def user_models_dir() -> Path:
    """Model packages the user trained or installed."""
    return _base("models")


def datasets_dir() -> Path:
    """Default home of annotation datasets."""
    return _base("datasets")


def database_dir() -> Path:
    """The local study database: its SQLite index, copied DICOM files and series thumbnails."""
    return _base("database")


def resources_dir() -> Path:
    """Read-only files shipped with medviewer: built-in models, demo data, icons.

    An installed package (wheel, ``pip install .``) and the frozen desktop app carry
    them as the ``medviewer.resources`` package folder; a source checkout (and an
    editable install) has them in the repository's top-level ``resources/``.
    """
    package_folder = Path(__file__).resolve().parents[1]
    installed = package_folder / "resources"
    if installed.is_dir():
        return installed
    checkout = package_folder.parent / "resources"
    if checkout.is_dir():
        return checkout
    return installed  # missing: callers name the file they cannot find
