"""``medviewer screenshot PATH --out FILE.png``: render the slice views without user interaction."""

from __future__ import annotations

import argparse

from medviewer.cli import command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="image file or DICOM folder")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--layout", choices=["1x1", "1x3", "2x2"], default="1x3", help="view layout (default 1x3)")
    parser.add_argument("--series", default=None, help="series to show when PATH holds several (index or UID)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--slice", type=int, default=None, help="axial slice index (k) to show; default: the middle")
    where.add_argument("--position", default=None, help="crosshair position in world LPS mm: X,Y,Z")
    where.add_argument("--index", default=None, help="crosshair position as voxel index: I,J,K")
    parser.add_argument("--window", default=None, help="CENTRE,WIDTH or a preset: default, auto, mr_auto, brain, lung, mediastinum, bone, liver")
    parser.add_argument("--colormap", default="gray", help="gray, hot, bone, jet or viridis")
    parser.add_argument("--labels", action="append", default=[], help="label map file to overlay (repeatable)")
    parser.add_argument("--size", default=None, help="picture size WIDTHxHEIGHT in pixels")


def _triple(text: str, option: str) -> list[float]:
    from medviewer.core.errors import MedviewerError

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise MedviewerError(f"{option} needs three comma-separated numbers, got '{text}'")
    return values


def read_volume_for_display(path: str, series: str | None = None):
    """Load the series to show from a file or folder (the largest one unless ``series`` says)."""
    from medviewer.core.errors import MedviewerError, NoImageSeriesError
    from medviewer.core.jobs import NO_PROGRESS, CancelToken
    from medviewer.services.open_study import load_series, scan_path

    found = scan_path(path, NO_PROGRESS, CancelToken())
    if not found:
        raise NoImageSeriesError("no image series found", path)
    if series is None:
        from medviewer.ui.main_window import default_series

        chosen = default_series(found)
    elif series.isdigit() and int(series) < len(found):
        chosen = found[int(series)]
    else:
        chosen = next((s for s in found if s.uid == series), None)
        if chosen is None:
            raise MedviewerError(f"no series '{series}' (there are {len(found)})", path)
    return load_series(chosen, NO_PROGRESS, CancelToken())


@command("screenshot", "render the slice views of an image to a PNG, without user interaction", _add_arguments)
def run(args: argparse.Namespace) -> int:
    import numpy as np

    from medviewer.core.errors import MedviewerError
    from medviewer.imaging.window_level import COLORMAPS, parse_window
    from medviewer.ui.main_window import read_label_map_file
    from medviewer.ui.screenshot import render_screenshot

    volume = read_volume_for_display(args.path, args.series)
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

    label_maps = [read_label_map_file(path, geometry) for path in args.labels]
    written = render_screenshot(volume, args.out, args.layout, cursor, window, label_maps, size=size, colormap=args.colormap)
    print(written)
    return 0
