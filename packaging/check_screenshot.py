"""Check that a screenshot shows a picture: big enough, with contrast and many colours (not blank).

    python packaging/check_screenshot.py SCREENSHOT.png [--min-size 400x400]

Used by packaging/smoke_test.sh on the screenshot the built app saved; exit code 0 when
it is a real picture, 1 otherwise. Independent of medviewer's own checks on purpose.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import SimpleITK as sitk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png")
    parser.add_argument("--min-size", default="400x400", help="smallest accepted WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    pixels = sitk.GetArrayFromImage(sitk.ReadImage(args.png))  # (height, width[, channels])
    height, width = pixels.shape[:2]
    min_width, min_height = (int(v) for v in args.min_size.split("x"))
    rgb = pixels[..., :3] if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    colours = len(np.unique(rgb.reshape(-1, 3), axis=0))
    spread = float(rgb.std())
    print(f"{args.png}: {width}x{height}, {colours} colours, standard deviation {spread:.1f}")
    problems = []
    if width < min_width or height < min_height:
        problems.append(f"smaller than {args.min_size}")
    if colours < 64:
        problems.append("fewer than 64 colours")
    if spread < 8.0:
        problems.append("almost no contrast")
    if problems:
        print(f"not a real picture: {', '.join(problems)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
