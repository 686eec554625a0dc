"""User settings: recent files, view layout, window geometry, annotator name.

Stored as JSON in ``medviewer.core.paths.config_dir()`` (platformdirs; the
``MEDVIEWER_HOME`` override isolates tests). Reading never fails: a missing or
damaged file gives the defaults, so a bad settings file cannot stop the app from
starting. Writes are atomic.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from medviewer.core.paths import config_dir
from medviewer.io.atomic import atomic_write_text

SETTINGS_FILE = "settings.json"
MAX_RECENT_FILES = 10
LAYOUTS = ("1x1", "1x3", "2x2", "3d")  # "3d": the 3D view alone


@dataclass
class Settings:
    """Everything remembered between sessions."""

    recent_files: list[str] = field(default_factory=list)
    layout: str = "1x3"
    #: Base64 of QMainWindow.saveGeometry() / saveState() (opaque to non-Qt code).
    window_geometry: str = ""
    window_state: str = ""
    annotator_name: str = ""
    last_directory: str = ""

    def add_recent_file(self, path: str | os.PathLike[str]) -> None:
        """Put ``path`` first in the recent list (no duplicates, at most MAX_RECENT_FILES)."""
        path = os.path.abspath(os.fspath(path))
        self.recent_files = [path] + [p for p in self.recent_files if p != path]
        del self.recent_files[MAX_RECENT_FILES:]

    def remove_recent_file(self, path: str | os.PathLike[str]) -> None:
        path = os.path.abspath(os.fspath(path))
        self.recent_files = [p for p in self.recent_files if p != path]


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load_settings(path: Path | None = None) -> Settings:
    """Settings from disk; defaults for anything missing, unknown or malformed."""
    path = path or settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Settings()
    if not isinstance(data, dict):
        return Settings()
    settings = Settings()
    for spec in fields(Settings):
        value = data.get(spec.name)
        default = getattr(settings, spec.name)
        if isinstance(default, list):
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                setattr(settings, spec.name, value[:MAX_RECENT_FILES])
        elif isinstance(value, str):
            setattr(settings, spec.name, value)
    if settings.layout not in LAYOUTS:
        settings.layout = "1x3"
    return settings


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write the settings atomically."""
    atomic_write_text(path or settings_path(), json.dumps(asdict(settings), indent=2))
