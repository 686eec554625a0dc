"""``medviewer screenshot PATH --out FILE.png``: render the slice views without user interaction."""

from __future__ import annotations

import argparse

from medviewer.cli import command
from medviewer.services.settings import LAYOUTS


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="image file or DICOM folder")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--layout", choices=LAYOUTS, default="1x3",
                        help="view layout (default 1x3); 2x2 and 3d include the 3D view (needs OpenGL)")
    parser.add_argument("--series", default=None, help="series to show when PATH holds several (index or UID)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--slice", type=int, default=None, help="axial slice index (k) to show; default: the middle")
    where.add_argument("--position", default=None, help="crosshair position in world LPS mm: X,Y,Z")
    where.add_argument("--index", default=None, help="crosshair position as voxel index: I,J,K")
    parser.add_argument("--window", default=None, help="CENTRE,WIDTH or a preset: default, auto, mr_auto, brain, lung, mediastinum, bone, liver")
    parser.add_argument("--colormap", default="gray", help="gray, hot, bone, jet or viridis")
    parser.add_argument("--labels", action="append", default=[], help="label map file to overlay (repeatable)")
    parser.add_argument("--boxes", default=None, help="detections to draw: JSON list of boxes (center_mm, size_mm, ...) or an object holding one")
    parser.add_argument("--size", default=None, help="picture size WIDTHxHEIGHT in pixels")


def read_boxes(path: str):
    """Detections from a JSON file: a list of ``Detection.to_dict`` records, or an object with a list under any key."""
    import json

    from medviewer.core.detection import Detection
    from medviewer.core.errors import CorruptFileError

    try:
        with open(path, encoding="utf-8") as handle:  # closed at once (an open handle is a ResourceWarning)
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise CorruptFileError(f"cannot read the boxes: {error}", path) from None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict) and "center_mm" in v[0]), [])
    try:
        return [Detection.from_dict(record) for record in data]
    except (KeyError, TypeError, ValueError) as error:
        raise CorruptFileError(f"a box lacks center_mm/size_mm or has bad values ({error})", path) from None


def _triple(text: str, option: str) -> list[float]:
    from medviewer.core.errors import MedviewerError

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise MedviewerError(f"{option} needs three comma-separated numbers, got '{text}'")
    return values


@command("screenshot", "render the slice views of an image to a PNG, without user interaction", _add_arguments)
def run(args: argparse.Namespace) -> int:
    import numpy as np

    from medviewer.core.errors import MedviewerError
    from medviewer.imaging.window_level import COLORMAPS, parse_window
    from medviewer.io import read_label_layers
    from medviewer.io.native_noise import quiet_native_stderr
    from medviewer.services.open_study import open_path
    from medviewer.ui.screenshot import render_screenshot

    volume, _series, _found = open_path(args.path, args.series)
    geometry = volume.geometry
    cursor = None
    if args.position:
        cursor = np.asarray(_triple(args.position, "--position"))
    elif args.index:
        cursor = geometry.index_to_world(_triple(args.index, "--index"))
    elif args.slice is not None:
        if not 0 <= args.slice < geometry.size[2]:
            raise MedviewerError(f"--slice {args.slice} is outside 0..{geometry.size[2] - 1}", args.path)
        index = (np.asarray(geometry.size) - 1) / 2.0
        index[2] = args.slice
        cursor = geometry.index_to_world(np.floor(index + 0.5))
    try:
        window = parse_window(args.window, volume) if args.window else None
    except ValueError as error:
        raise MedviewerError(f"--window: {error}") from None
    if args.colormap not in COLORMAPS:
        raise MedviewerError(f"--colormap must be one of {', '.join(COLORMAPS)}")
    size = None
    if args.size:
        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise MedviewerError(f"--size must look like 1200x600, got '{args.size}'") from None
        size = (width, height)

    label_maps = [layer for path in args.labels for layer in read_label_layers(path, geometry)]
    detections = read_boxes(args.boxes) if args.boxes else []
    # Qt's offscreen platform and VTK print notes such as "This plugin does not support
    # propagateSizeHints()" on the native stderr; a failed render still raises.
    with quiet_native_stderr():
        written = render_screenshot(
            volume, args.out, args.layout, cursor, window, label_maps, detections, size=size, colormap=args.colormap
        )
    print(written)
    return 0
