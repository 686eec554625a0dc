"""``medviewer convert PATH OUT [--series INDEX_OR_UID]``: write a loaded series to NIfTI, NRRD or MetaImage.

Like dcm2niix: the volume written is what the viewer shows, after sorting, rescale and
any regularisation of tilted or irregular stacks.
"""

from __future__ import annotations

import argparse
import sys

from medviewer.cli import command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="image file or folder (DICOM, NIfTI, NRRD, MHA/MHD, PNG...)")
    parser.add_argument("out", help="output file: .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd")
    parser.add_argument(
        "--series", default=None, help="which series when PATH holds several: index from `medviewer info` or UID"
    )


@command("convert", "write one series to NIfTI, NRRD or MetaImage (after sorting, rescale and regularisation)", _add_arguments)
def run(args: argparse.Namespace) -> int:
    from medviewer.commands.info import cli_progress
    from medviewer.io import select_series, write_volume
    from medviewer.io.writers import _check_writable
    from medviewer.services.open_study import load_series, scan_path

    _check_writable(args.out)  # fail before a long scan
    progress, close = cli_progress("Scanning")
    try:
        found = scan_path(args.path, progress)
    finally:
        close()
    series = select_series(found, args.series, args.path)
    progress, close = cli_progress("Reading")
    try:
        volume = load_series(series, progress)
    finally:
        close()
    write_volume(volume, args.out)
    geometry = volume.geometry
    print(
        f"wrote {args.out}: {series.description} "
        f"({' x '.join(str(v) for v in geometry.size)} {volume.array.dtype}, "
        f"spacing {', '.join(f'{v:.4g}' for v in geometry.spacing)} mm)"
    )
    for warning in volume.metadata.warnings:
        print(f"medviewer: warning: {warning}", file=sys.stderr)
    return 0
