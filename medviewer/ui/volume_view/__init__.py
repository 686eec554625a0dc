"""The 3D view (VTK): volume rendering, label surfaces, cursor and detection boxes, picking.

The only package allowed to import VTK (see the import-linter contracts).
``VolumeView`` is the widget; ``opengl_status`` tells whether it can render here.
"""

from medviewer.ui.volume_view.capabilities import DISABLE_ENV_VAR, OpenGLStatus, opengl_status
from medviewer.ui.volume_view.presets import PRESETS, VolumePreset
from medviewer.ui.volume_view.widget import CAMERA_PRESETS, QUALITY_BEST, QUALITY_FAST, VolumeView

__all__ = [
    "CAMERA_PRESETS",
    "DISABLE_ENV_VAR",
    "PRESETS",
    "QUALITY_BEST",
    "QUALITY_FAST",
    "OpenGLStatus",
    "VolumePreset",
    "VolumeView",
    "opengl_status",
]
