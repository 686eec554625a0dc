"""``medviewer info PATH [--json]``: what a file or folder holds, series by series."""

from __future__ import annotations

import argparse
import json
import sys

from medviewer.cli import command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="image file or folder (DICOM, NIfTI, NRRD, MHA/MHD, PNG/JPEG/TIFF/BMP)")
    parser.add_argument("--json", action="store_true", help="print a JSON list with one object per series")
    parser.add_argument(
        "--headers-only",
        action="store_true",
        help="do not read pixels (faster; the value range is then shown only when the headers state it)",
    )


def cli_progress(description: str):
    """A tqdm bar on stderr when it is a terminal, else a silent progress callback."""
    from medviewer.core.jobs import NO_PROGRESS

    if not sys.stderr.isatty():
        return NO_PROGRESS, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=description, file=sys.stderr, leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}|")

    def report(fraction: float, message: str = "") -> None:
        bar.update(max(0, int(fraction * 1000) - bar.n))

    return report, bar.close


def series_records(path: str, read_pixels: bool = True) -> list[dict]:
    """``SeriesInfo.summary_dict()`` for every series, with the value range (and load warnings) filled in."""
    from medviewer.core.errors import MedviewerError, OperationCancelled
    from medviewer.services.open_study import load_series, scan_path

    progress, close = cli_progress("Scanning")
    try:
        found = scan_path(path, progress)
    finally:
        close()
    records = []
    refusals: list[MedviewerError] = []
    for index, info in enumerate(found):
        record = {"index": index, **info.summary_dict()}
        for key in ("spacing", "origin", "direction"):
            if record[key] is not None:
                record[key] = [value + 0.0 for value in record[key]]  # no "-0.0" in the output
        if read_pixels:
            progress, close = cli_progress(f"Reading series {index}")
            try:
                volume = load_series(info, progress)
            except OperationCancelled:
                raise
            except MedviewerError as error:
                # One unreadable series must not hide the others.
                record["warnings"] = record["warnings"] + [f"pixels cannot be read: {error}"]
                refusals.append(error)
                records.append(record)
                continue
            finally:
                close()
            record["value_range"] = list(volume.value_range())
            record["pixel_type"] = str(volume.array.dtype)
            record["units"] = volume.metadata.units
            record["calibrated"] = volume.metadata.calibrated
            record["windows"] = [list(w) for w in volume.metadata.windows]
            record["warnings"] = list(dict.fromkeys(record["warnings"] + volume.metadata.warnings))
            del volume
        records.append(record)
    if refusals and len(refusals) == len(found):
        # Nothing could be read: that is an error (exit 2), not a table of warnings.
        raise refusals[0] if len(refusals) == 1 else MedviewerError(
            f"none of the {len(found)} series can be read; the first: {refusals[0]}", path
        )
    if found.notes:
        print(f"medviewer: note: {found.notes_summary()}", file=sys.stderr)
        for note in found.notes[:10]:
            print(f"  {note}", file=sys.stderr)
        if len(found.notes) > 10:
            print(f"  ... and {len(found.notes) - 10} more", file=sys.stderr)
    return records


def _numbers(values, digits: int = 4) -> str:
    return ", ".join(f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in values)


def format_table(records: list[dict]) -> str:
    """Readable key/value table per series."""
    blocks = []
    for record in records:
        direction = record["direction"] or []
        rows = [
            ("series", f"[{record['index']}] #{record['series_number'] if record['series_number'] is not None else '-'} "
                       f"{record['description']}"),
            ("uid", record["series_uid"]),
            ("modality", record["modality"] or "-"),
            ("format", f"{record['format']} ({record['files']} file{'s' if record['files'] != 1 else ''})"),
            ("size (x, y, z)", " x ".join(str(v) for v in record["size"])),
            ("spacing (mm)", _numbers(record["spacing"], 6)
             + ("" if record.get("calibrated", True) else "  (uncalibrated: pixels)")),
            ("origin (LPS mm)", _numbers(record["origin"], 7)),
            ("direction", "  ".join(_numbers(direction[i:i + 3], 4) for i in (0, 3, 6))),
            ("orientation", f"{record['orientation']} (closest {record['closest_orientation']})"),
            ("pixel type", record["pixel_type"] or "-"),
            ("value range", (_numbers(record["value_range"], 6).replace(", ", " .. ") + (f" {record['units']}" if record.get("units") else ""))
             if record["value_range"] else "- (not read)"),
        ]
        if record.get("windows"):
            rows.append(("window (c/w)", "; ".join(f"{c:g}/{w:g}" for c, w in record["windows"])))
        warnings = record["warnings"] or ["none"]
        rows.append(("warnings", warnings[0]))
        rows.extend(("", warning) for warning in warnings[1:])
        width = max(len(key) for key, _ in rows)
        blocks.append("\n".join(f"  {key.ljust(width)}  {value}" for key, value in rows))
    return "\n\n".join(blocks)


@command("info", "print the series in a file or folder: size, spacing, origin, direction, orientation, warnings", _add_arguments)
def run(args: argparse.Namespace) -> int:
    records = series_records(args.path, read_pixels=not args.headers_only)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(f"{args.path}: {len(records)} series")
        print(format_table(records))
    return 0
