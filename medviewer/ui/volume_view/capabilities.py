"""Can this machine show the 3D view? A real OpenGL check, done once per process.

VTK's volume and surface rendering need OpenGL 3.2 (core profile) in a native
window. When that is missing (remote desktops without GLX, Qt's ``offscreen``
platform, very old drivers) the 3D pane shows a message instead and every 2D
part of the application keeps working. ``MEDVIEWER_DISABLE_3D=1`` forces that
path (for tests and for machines whose driver crashes instead of failing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

#: Set to 1/true/yes to turn the 3D view off without probing OpenGL.
DISABLE_ENV_VAR = "MEDVIEWER_DISABLE_3D"

#: VTK's OpenGL2 backend needs at least this version.
REQUIRED_OPENGL = (3, 2)

#: Qt platforms that give widgets a native window VTK can draw into.
_NATIVE_WINDOW_PLATFORMS = {"xcb", "windows", "cocoa"}


@dataclass(frozen=True)
class OpenGLStatus:
    """Outcome of the capability check.

    Attributes
    ----------
    available:
        True when the 3D view can render.
    reason:
        One sentence for the user when it cannot (empty otherwise).
    version:
        The OpenGL (major, minor) version Qt obtained, or None when unknown.
    """

    available: bool
    reason: str = ""
    version: tuple[int, int] | None = None


def disabled_by_environment() -> bool:
    """Whether ``MEDVIEWER_DISABLE_3D`` asks for the no-OpenGL path."""
    return os.environ.get(DISABLE_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}


def opengl_status() -> OpenGLStatus:
    """Check (once per process) whether VTK can render in a Qt widget here.

    Needs a ``QGuiApplication``. The environment variable is read on every call so
    tests can toggle it; the costly probe (about 0.1 s) is cached.
    """
    if disabled_by_environment():
        return OpenGLStatus(False, f"the 3D view is turned off ({DISABLE_ENV_VAR} is set)")
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.instance() is None:  # not cached: the answer depends on the platform
        return OpenGLStatus(False, "the OpenGL check needs a running QApplication")
    return _probe_opengl()


@lru_cache(maxsize=1)
def _probe_opengl() -> OpenGLStatus:
    from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext, QSurfaceFormat

    platform = QGuiApplication.platformName()
    if platform not in _NATIVE_WINDOW_PLATFORMS:
        return OpenGLStatus(False, f"Qt's '{platform}' platform has no native windows to draw 3D into")

    wanted = QSurfaceFormat()
    wanted.setVersion(*REQUIRED_OPENGL)
    wanted.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    context = QOpenGLContext()
    context.setFormat(wanted)
    if not context.create():
        return OpenGLStatus(False, "no OpenGL context could be created (is an OpenGL driver installed?)")
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    try:
        if not context.makeCurrent(surface):
            return OpenGLStatus(False, "the OpenGL context could not be activated")
        got = context.format()
        version = (got.majorVersion(), got.minorVersion())
        context.doneCurrent()
    finally:
        surface.destroy()
    if version < REQUIRED_OPENGL:
        needed = ".".join(map(str, REQUIRED_OPENGL))
        return OpenGLStatus(False, f"OpenGL {needed} or newer is needed, this system has {version[0]}.{version[1]}", version)

    # VTK's own probe: the same check its render windows make before drawing.
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL render window)
    from vtkmodules.vtkRenderingCore import vtkRenderWindow

    probe = vtkRenderWindow()
    probe.SetOffScreenRendering(True)
    supported = bool(probe.SupportsOpenGL())
    probe.Finalize()
    if not supported:
        return OpenGLStatus(False, "VTK cannot use this system's OpenGL driver", version)
    return OpenGLStatus(True, "", version)
