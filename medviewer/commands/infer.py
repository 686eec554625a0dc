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

Batch runs (``--batch``: every INPUT folder holds one study per subfolder or image file;
``--study-list FILE``: one path per line) write one result folder per study and
``results.csv``/``results.json`` into DIR, skip with ``--resume`` the studies whose
recorded outputs are still there and intact, and run data parallel under ``torchrun``
(``medviewer.services.batch_inference``). The exit code is 0 when every study
succeeded, 2 when any failed (each failure is a row of the table).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from medviewer.cli import EXIT_USER_ERROR, command
from medviewer.services.batch_inference import infer_study, output_stem


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
    parser.add_argument("--batch", action="store_true",
                        help="batch run: each INPUT folder holds one study per subfolder or image file; one result "
                             "folder per study and OUT/results.csv|json (also under torchrun: each rank a share)")
    parser.add_argument("--study-list", metavar="FILE", default=None,
                        help="batch run over the studies listed in FILE (one path per line; # comments)")
    parser.add_argument("--resume", action="store_true",
                        help="batch run: skip studies already done whose recorded outputs are intact")
    parser.add_argument("--force", action="store_true",
                        help="run even on an image whose voxel size or orientation was invented by the reader, or "
                             "that holds NaN/Inf voxels (those get the image's lowest value)")


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
    batch = args.batch or args.resume or args.study_list is not None
    if not args.model or not (args.inputs or args.study_list) or not args.out:
        print("medviewer infer: error: --model, --out and at least one INPUT (or --study-list) are needed (or --list)",
              file=sys.stderr)
        return EXIT_USER_ERROR
    service = InferenceService(registry)
    package = service.find(args.model)  # an unknown model is a user error: reported by the CLI
    for duplicate in registry.duplicates:
        if duplicate.used.folder == package.folder:  # say which copy runs when there are two
            print(f"medviewer: warning: {package.ref} runs from {package.folder}; {duplicate.error()}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = InferenceOptions(device=args.device, batch_size=args.batch_size, mirroring=not args.no_mirroring)
    if batch:
        return _run_batch(args, service, package, out, options)
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
                written, _series = infer_study(service, package, path, args.series, out / f"{stem}_{package.name}",
                                               options, bar.for_input(number, path), bar.write, args.force)
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


def _run_batch(args: argparse.Namespace, service, package, out: Path, options) -> int:
    """The batch mode: studies from the INPUT folders/files and --study-list, this rank's share, the table."""
    from medviewer.ai.parallel import join_batch_group
    from medviewer.services import batch_inference as batch

    studies = batch.plan_studies(batch.collect_studies(args.inputs, args.study_list))
    group = join_batch_group(args.device)
    try:
        mine = len(batch.share(studies, group.rank, group.world_size))
        title = package.manifest.display_name + (f" [rank {group.rank}/{group.world_size}]" if group.active else "")
        bar = _ProgressBar(mine, title, show=group.is_main)

        def infer(path, prefix, progress, say):
            return infer_study(service, package, path, args.series, prefix, options, progress, say, args.force)

        try:
            summary = batch.run_batch(studies, out, package.name, package.ref, infer, bar, series=args.series,
                                      resume=args.resume, group=group, error_text=_error_text)
        finally:
            bar.close()
        done = sum(1 for row in summary.rows if row.get("resumed"))
        if group.is_main and done:
            print(f"medviewer infer: {done} of {len(studies)} studies already done (--resume): skipped", file=sys.stderr)
        if group.is_main:
            print(f"wrote {out / 'results.csv'} and {out / 'results.json'} ({len(studies)} studies)")
            if summary.failed:
                print(f"medviewer infer: {summary.failed} of {len(studies)} studies failed (see the table)",
                      file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        group.barrier()  # a rank exiting 2 makes torchrun stop the others: only once rank 0 has said all
    finally:
        group.close()
    return EXIT_USER_ERROR if summary.failed else 0


def _error_text(error, path: str) -> str:
    return str(error) if _names_input(error, path) else f"{path}: {error}"


class _ProgressBar:
    """One tqdm bar over all inputs on stderr (only when stderr is a terminal)."""

    def __init__(self, inputs: int, description: str, show: bool = True) -> None:
        self._bar = None
        if show and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=inputs * 1000, desc=description, file=sys.stderr, unit="",
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]")
            self._inputs = inputs

    def for_input(self, number: int, path: str):
        if self._bar is not None:
            self._bar.set_postfix_str(f"{number + 1}/{self._inputs}: {Path(path).name}")

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
