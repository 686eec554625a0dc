"""``medviewer infer --model NAME[:VERSION] INPUT... --out DIR``: run a model on many studies without a display.

For each input (a DICOM folder or an image file) it writes, into DIR (each task's
writer in ``medviewer.ai.tasks``):

* segmentation: ``<input>_<model>_labels.nii.gz`` on the input's own grid;
* detection: ``<input>_<model>_detections.json`` (boxes in world LPS mm and voxel indices);
* classification: ``<input>_<model>_probabilities.json``;
* enhancement: ``<input>_<model>_<image name>.nii.gz`` on the input's grid.

``--model-dir`` also takes nnU-Net v2 result folders (``Trainer__Plans__configuration/`` or a
``Dataset*/`` folder); ``--model`` may then be left out when that folder holds one model.

A failing input is reported and skipped; the exit code is 2 when any input failed.
What the reader had to assume about an input is printed as
``medviewer infer: warning: PATH: ...`` lines; an input whose voxel size or
orientation was invented, or that holds NaN/Inf voxels, is refused unless ``--force``
(see ``medviewer.services.load_warnings``).
``--list`` prints the available models (and packages that could not be loaded).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from medviewer.cli import EXIT_USER_ERROR, command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="DICOM folders or image files (NIfTI, NRRD, MHA...)")
    parser.add_argument("--model", "-m", help="model name, optionally with :VERSION (default: its newest version)")
    parser.add_argument("--out", "-o", help="output folder (created if needed)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="where to run (auto: CUDA, then Apple MPS, then CPU)")
    parser.add_argument("--series", default=None, help="which series of each input: index (as in `medviewer info`) or UID")
    parser.add_argument("--model-dir", action="append", default=[], metavar="DIR",
                        help="also look for model packages in DIR (repeatable)")
    parser.add_argument("--batch-size", type=int, default=None, help="sliding windows per batch (default: the model's)")
    parser.add_argument("--no-mirroring", action="store_true",
                        help="nnU-Net models: skip test-time mirroring (faster, slightly less accurate)")
    parser.add_argument("--list", action="store_true", help="list the available models and exit")
    parser.add_argument("--force", action="store_true",
                        help="run even on an image whose voxel size or orientation was invented by the reader, or "
                             "that holds NaN/Inf voxels (those get the image's lowest value)")


def output_stem(path: str) -> str:
    """File-name stem for an input: its name without image extensions (``ct.nii.gz`` -> ``ct``)."""
    name = Path(path.rstrip("/\\")).name or "input"
    name = re.sub(r"(\.nii\.gz|\.nii|\.nrrd|\.nhdr|\.mha|\.mhd|\.dcm|\.png|\.jpe?g|\.tiff?)$", "", name, flags=re.I)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "input"


def _list_models(registry) -> int:
    refused = {}
    for duplicate in registry.duplicates:
        refused.setdefault(duplicate.used.folder, []).append(duplicate.package)
    for package in registry.packages:
        shown_folder = f" {package.folder}" if package.folder in refused else ""
        print(_listing_line(package, f"[{package.origin}]{shown_folder}"))
        for other in refused.get(package.folder, []):
            print(_listing_line(other, f"[{other.origin}, NOT USED: same name and version as the {package.origin} "
                                       f"package above, which comes first] {other.folder}"))
    for error in registry.errors:
        print(f"medviewer: warning: model not loaded: {error}", file=sys.stderr)
    return 0


def _listing_line(package, note: str) -> str:
    manifest = package.manifest
    return f"{manifest.ref:28s} {manifest.task:15s} {','.join(manifest.modality):8s} {manifest.title} {note}"


@command("infer", "run an AI model on one or more studies and write its results (labels, boxes, probabilities, images)",
         _add_arguments)
def run(args: argparse.Namespace) -> int:
    from medviewer.ai.registry import ModelRegistry
    from medviewer.ai.results import InferenceOptions
    from medviewer.core.errors import MedviewerError
    from medviewer.services.inference import InferenceService

    registry = ModelRegistry.default(extra_folders=args.model_dir)
    if args.list:
        return _list_models(registry)
    if not args.model and args.model_dir:  # one model in the given folders (e.g. an nnU-Net result folder)
        given = {Path(folder).resolve() for folder in args.model_dir}
        mine = {p.name for p in registry.packages
                if any(p.folder.resolve() == g or p.folder.resolve().is_relative_to(g) for g in given)}
        if len(mine) == 1:
            args.model = mine.pop()
    if not args.model or not args.inputs or not args.out:
        print("medviewer infer: error: --model, --out and at least one INPUT are needed (or --list)", file=sys.stderr)
        return EXIT_USER_ERROR
    service = InferenceService(registry)
    package = service.find(args.model)  # an unknown model is a user error: reported by the CLI
    for duplicate in registry.duplicates:
        if duplicate.used.folder == package.folder:  # say which copy runs when there are two
            print(f"medviewer: warning: {package.ref} runs from {package.folder}; {duplicate.error()}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = InferenceOptions(device=args.device, batch_size=args.batch_size, mirroring=not args.no_mirroring)
    bar = _ProgressBar(len(args.inputs), package.manifest.display_name)
    failures = 0
    stems: dict[str, int] = {}
    try:
        for number, path in enumerate(args.inputs):
            stem = output_stem(path)
            stems[stem] = stems.get(stem, 0) + 1
            if stems[stem] > 1:
                stem = f"{stem}-{stems[stem]}"
            try:
                written = _infer_one(service, package, path, args.series, out / f"{stem}_{package.name}", options,
                                     bar.for_input(number, path), bar.write, args.force)
            except MedviewerError as error:
                failures += 1
                bar.write(f"medviewer: error: {error}" if _names_input(error, path) else f"medviewer: error: {path}: {error}")
                continue
            for line in written:
                bar.write(line)
    finally:
        bar.close()
    if failures:
        print(f"medviewer infer: {failures} of {len(args.inputs)} input(s) failed", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


def _names_input(error, path: str) -> bool:
    """True when the error's own path already is the input (or a file in it), so it need not be repeated."""
    if error.path is None:
        return False
    return Path(error.path).resolve().is_relative_to(Path(path).resolve())


def _infer_one(service, package, path: str, series, prefix: Path, options, progress, say, force: bool) -> list[str]:
    """Load ``path``, run the model, write its outputs beside ``prefix``; returns lines to print.

    The reader's warnings are said (``say``) at once, so they are seen even when the
    input is then refused.
    """
    from medviewer.ai.tasks import task_hooks
    from medviewer.core.jobs import scaled_progress
    from medviewer.services import load_warnings
    from medviewer.services.open_study import open_path

    volume, _series, _found = open_path(path, series, scaled_progress(progress, 0.0, 0.2))
    for warning in volume.metadata.warnings:
        say(f"medviewer infer: warning: {path}: {warning}")
    if not force:
        load_warnings.check_model_input(volume, path)
    elif load_warnings.non_finite_count(volume):
        count = load_warnings.non_finite_count(volume)
        volume, lowest = load_warnings.fill_non_finite(volume)
        voxels = "voxel was" if count == 1 else "voxels were"
        say(f"medviewer infer: warning: {path}: --force: the {count} NaN/Inf {voxels} given the value {lowest:g} "
            "for the model; its output there is not based on image data")
    result = service.run(package, volume, scaled_progress(progress, 0.2, 1.0), options=options)
    lines = [f"medviewer: warning: {path}: {w}" for w in result.warnings]
    header = {"model": package.ref, "model_title": package.manifest.title, "input": str(path),
              "device": result.device, "seconds": round(result.seconds, 3), "geometry": volume.geometry.to_dict()}
    return lines + task_hooks(package.task).write(result, prefix, header, package.manifest, volume.geometry)


class _ProgressBar:
    """One tqdm bar over all inputs on stderr (only when stderr is a terminal)."""

    def __init__(self, inputs: int, description: str) -> None:
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=inputs * 1000, desc=description, file=sys.stderr, unit="",
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")

    def for_input(self, number: int, path: str):
        if self._bar is not None:
            self._bar.set_postfix_str(f"{number + 1}: {Path(path).name}")

        def report(fraction: float, message: str = "") -> None:
            if self._bar is not None:
                target = int((number + min(max(fraction, 0.0), 1.0)) * 1000)
                self._bar.update(max(0, target - self._bar.n))

        return report

    def write(self, line: str) -> None:
        stream = sys.stderr if line.startswith(("medviewer:", "medviewer infer:")) else sys.stdout
        if self._bar is not None:
            self._bar.write(line, file=stream)
        else:
            print(line, file=stream)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
