"""``medviewer smoke-test``: start the real viewer, open the demo study, use it, quit; exit code 0 when all worked.

Meant for checking an installation or a packaged build (``make package-test`` runs
it from the PyInstaller folder under Xvfb): it exercises what a frozen or pip
install most often gets wrong - Qt's platform plugin, the bundled resources (demo
template, built-in models), DICOM writing and reading, VTK's OpenGL view, and torch
and MONAI - through the same code paths as ``medviewer --demo``:

1. the main window with the editing tools and the welcome screen;
2. the demo chest CT (generated into the cache on first use) opened in the background;
3. its ground-truth label map loaded as a layer;
4. the 2x2 layout with the 3D view;
5. with ``--model``, a built-in model run through the AI panel;
6. a screenshot of the views, checked to be an actual picture (not blank).

Each step prints one line; any failure, timeout or uncaught exception makes the
exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from medviewer.cli import command

DEFAULT_TIMEOUT_S = 600.0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="where to save the screenshot (PNG); default: not kept")
    parser.add_argument("--model", default=None, help="also run this built-in model through the AI panel, e.g. ct-lung-seg")
    parser.add_argument("--no-3d", action="store_true", help="skip the 3D view step")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds allowed for the whole test")


@command("smoke-test", "start the viewer, open the demo study, save a screenshot and quit (checks an installation)", _add_arguments)
def run(args: argparse.Namespace) -> int:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        print("smoke-test: no display; run it under xvfb-run (the 3D view needs an X server)", file=sys.stderr)
        return 2
    from medviewer.ui.smoke_test import run_smoke_test  # Qt is imported only here, inside medviewer.ui

    return run_smoke_test(args)
