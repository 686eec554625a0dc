"""Batch inference over many studies: one result folder per study, a results table, resumable, data parallel.

``medviewer infer --batch`` (or ``--study-list FILE``) runs one model over a folder of
studies or a list of paths. For study *i* (in list order) with file-name stem *s*:

* its outputs go to ``OUT/s/s_<model>_*`` (the task writers of ``medviewer.ai.tasks``);
* ``OUT/s/s_<model>.record.json`` is written (atomically) once the study is done: what
  ran, how long, and each output's size and SHA-256. ``--resume`` skips a study only
  when this record says it succeeded with the same model and series choice *and*
  every output it lists still exists with that size and hash; anything else is rerun.
  Records are written as the batch goes, so a killed batch resumes where it stopped;
* ``OUT/results.csv`` and ``OUT/results.json`` (one row per study, in list order:
  study, series, model, status, seconds, output files, error) are written at the end.

A study that fails (unreadable, refused, a model error, even an unexpected exception)
gets ``status = failed`` and its error in the table; the batch goes on.

Under ``torchrun`` rank *r* of *W* takes the studies with index ``i % W == r``; the
ranks then exchange their rows (``medviewer.ai.parallel``, gloo) and rank 0 writes
the table. Stems are assigned on the whole list before sharding, so they do not
depend on the number of ranks and a batch may be resumed with another world size.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medviewer.core.errors import MedviewerError
from medviewer.core.jobs import ProgressCallback

TABLE_COLUMNS = ("study", "series", "model", "status", "seconds", "outputs", "error")
STUDY_FILE = re.compile(r"\.(nii\.gz|nii|nrrd|nhdr|mha|mhd|dcm|png|jpe?g|tiff?)$", re.I)


class BatchError(MedviewerError):
    """The batch itself cannot start (a missing study folder or list file, no studies)."""


def output_stem(path: str) -> str:
    """File-name stem for an input: its name without image extensions (``ct.nii.gz`` -> ``ct``)."""
    name = Path(path.rstrip("/\\")).name or "input"
    name = re.sub(r"(\.nii\.gz|\.nii|\.nrrd|\.nhdr|\.mha|\.mhd|\.dcm|\.png|\.jpe?g|\.tiff?)$", "", name, flags=re.I)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "input"


def unique_stems(paths: Sequence[str]) -> list[str]:
    """One stem per path; a repeated stem gets ``-2``, ``-3``... in list order (stable across runs)."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = output_stem(path)
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def studies_in_folder(folder: str | os.PathLike[str]) -> list[str]:
    """Each subfolder and image file directly in ``folder`` is one study (hidden entries are left out)."""
    root = Path(folder)
    if not root.is_dir():
        raise BatchError("the study folder does not exist or is not a folder", path=str(root))
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    return [str(p) for p in entries if p.is_dir() or (p.is_file() and STUDY_FILE.search(p.name))]


def studies_in_list(list_file: str | os.PathLike[str]) -> list[str]:
    """One path per line; blank lines and ``#`` comments are skipped, relative paths are relative to the list."""
    path = Path(list_file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BatchError(f"cannot read the study list: {getattr(error, 'strerror', None) or error}", path=str(path)) from error
    studies = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            studies.append(line if Path(line).is_absolute() else str(path.parent / line))
    return studies


def collect_studies(inputs: Sequence[str], list_file: str | None = None) -> list[str]:
    """The batch's studies in order: each INPUT folder expanded, each INPUT file as is, then the list's paths."""
    studies: list[str] = []
    for item in inputs:
        if Path(item).is_dir():
            found = studies_in_folder(item)
            if not found:
                raise BatchError("no studies (subfolders or image files) in this folder", path=item)
            studies.extend(found)
        else:
            studies.append(item)  # a missing file fails as a study, with its own message
    if list_file is not None:
        studies.extend(studies_in_list(list_file))
    if not studies:
        raise BatchError("the batch has no studies" + (f" (the list {list_file} is empty)" if list_file else ""),
                         path=list_file)
    return studies


@dataclass(frozen=True)
class Study:
    index: int
    path: str
    stem: str

    def folder(self, out: Path) -> Path:
        return out / self.stem

    def prefix(self, out: Path, model_name: str) -> Path:
        return self.folder(out) / f"{self.stem}_{model_name}"

    def record_path(self, out: Path, model_name: str) -> Path:
        return self.folder(out) / f"{self.stem}_{model_name}.record.json"


def plan_studies(paths: Sequence[str]) -> list[Study]:
    return [Study(i, p, s) for i, (p, s) in enumerate(zip(paths, unique_stems(paths)))]


def share(studies: Sequence[Study], rank: int, world_size: int) -> list[Study]:
    """This rank's studies: index ``i % world_size == rank`` (interleaved, so large and small studies mix)."""
    return [s for s in studies if s.index % world_size == rank]


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_outputs(files: Sequence[Path], out: Path) -> list[dict]:
    return [{"file": f.relative_to(out).as_posix(), "bytes": f.stat().st_size, "sha256": file_digest(f)}
            for f in sorted(files)]


def done_record(study: Study, out: Path, model_name: str, model_ref: str, series: str | None) -> dict | None:
    """The study's record when it is done and still valid for this run, else None."""
    try:
        record = json.loads(study.record_path(out, model_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(record, dict) or record.get("status") != "ok" or record.get("model") != model_ref
            or os.path.abspath(str(record.get("study"))) != os.path.abspath(study.path) or record.get("series_requested") != series
            or not record.get("outputs")):
        return None
    for output in record["outputs"]:
        file = out / output.get("file", "")
        try:
            if not file.is_file() or file.stat().st_size != output.get("bytes") or file_digest(file) != output.get("sha256"):
                return None
        except OSError:
            return None
    return record


class BatchDisplay(Protocol):
    """What the batch reports to: a per-study progress callback and lines for the user."""

    def for_input(self, number: int, path: str) -> ProgressCallback: ...

    def write(self, line: str) -> None: ...


class Group(Protocol):
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool: ...

    def gather(self, value: Any) -> list[Any]: ...

    def barrier(self) -> None: ...


class _SingleProcess:
    rank, world_size, is_main = 0, 1, True

    def gather(self, value: Any) -> list[Any]:
        return [value]

    def barrier(self) -> None:
        pass


# infer(path, prefix, progress, say) -> (lines to print, the series used); raises on failure.
InferOne = Callable[[str, Path, ProgressCallback, Callable[[str], None]], tuple[list[str], Any]]


@dataclass
class BatchSummary:
    rows: list[dict] = field(default_factory=list)  # every study's row (all ranks), in list order
    ran: int = 0  # studies this rank ran
    resumed: int = 0  # studies this rank skipped as done

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if row["status"] != "ok")


def run_batch(studies: Sequence[Study], out: Path, model_name: str, model_ref: str, infer: InferOne,
              display: BatchDisplay, *, series: str | None = None, resume: bool = False,
              group: Group | None = None, error_text: Callable[[BaseException, str], str] | None = None
              ) -> BatchSummary:
    """Run ``infer`` on this rank's share of ``studies``; every rank returns the merged rows, rank 0 writes the table."""
    group = group or _SingleProcess()
    error_text = error_text or (lambda error, path: f"{path}: {error}")
    mine = share(studies, group.rank, group.world_size)
    summary = BatchSummary()
    rows: list[dict] = []
    for number, study in enumerate(mine):
        record = done_record(study, out, model_name, model_ref, series) if resume else None
        if record is not None:
            summary.resumed += 1
            rows.append({**record, "index": study.index, "resumed": True, "rank": group.rank})
            display.for_input(number, study.path)(1.0)
            continue
        summary.ran += 1
        row = _run_one(study, out, model_name, model_ref, series, infer, display, number, error_text)
        rows.append({**row, "rank": group.rank})
    merged = [row for part in group.gather(rows) for row in part]
    summary.rows = sorted(merged, key=lambda row: row["index"])
    if group.is_main:
        write_table(summary.rows, out)
    group.barrier()  # nobody leaves before the table is written
    return summary


def _run_one(study: Study, out: Path, model_name: str, model_ref: str, series: str | None, infer: InferOne,
             display: BatchDisplay, number: int, error_text) -> dict:
    prefix = study.prefix(out, model_name)
    record_path = study.record_path(out, model_name)
    record_path.unlink(missing_ok=True)  # a stale "ok" must not survive a rerun that fails
    row: dict[str, Any] = {"index": study.index, "study": study.path, "series": "", "series_description": "",
                           "series_requested": series, "model": model_ref, "status": "failed", "seconds": 0.0,
                           "outputs": [], "error": ""}
    start = time.perf_counter()
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        lines, chosen = infer(study.path, prefix, display.for_input(number, study.path), display.write)
        outputs = [p for p in prefix.parent.glob(prefix.name + "_*") if p.is_file()]
        if not outputs:
            raise BatchError("the model ran but wrote no output file", path=study.path)
        row.update(status="ok", outputs=describe_outputs(outputs, out), series=getattr(chosen, "uid", "") or "",
                   series_description=getattr(chosen, "description", "") or "")
        for line in lines:
            display.write(line)
    except Exception as error:  # noqa: BLE001 - one failing study never stops the batch; its error is recorded
        row["error"] = error_text(error, study.path) if isinstance(error, MedviewerError) \
            else f"{study.path}: {type(error).__name__}: {error}"
        display.write(f"medviewer: error: {row['error']}")
        try:
            prefix.parent.rmdir()  # only when empty: a study that never wrote anything leaves no folder
        except OSError:
            pass
    row["seconds"] = round(time.perf_counter() - start, 3)
    if row["status"] == "ok":
        from medviewer.io.atomic import atomic_write_text

        atomic_write_text(record_path, json.dumps({k: v for k, v in row.items() if k != "index"}, indent=2) + "\n")
    return row


def write_table(rows: Sequence[dict], out: Path) -> tuple[Path, Path]:
    """``OUT/results.csv`` (outputs ``;``-separated) and ``OUT/results.json`` (outputs with sizes and hashes)."""
    from medviewer.io.atomic import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    for row in rows:
        writer.writerow([row["study"], row["series"], row["model"], row["status"], f"{row['seconds']:.3f}",
                         ";".join(o["file"] for o in row["outputs"]), row["error"]])
    csv_path, json_path = out / "results.csv", out / "results.json"
    atomic_write_text(csv_path, buffer.getvalue())
    failed = sum(1 for row in rows if row["status"] != "ok")
    table = {"studies": len(rows), "ok": len(rows) - failed, "failed": failed,
             "rows": [{k: row.get(k) for k in (*TABLE_COLUMNS, "series_description", "resumed", "rank")} for row in rows]}
    for entry in table["rows"]:
        entry["resumed"] = bool(entry["resumed"])
    atomic_write_text(json_path, json.dumps(table, indent=2) + "\n")
    return csv_path, json_path


def infer_study(service, package, path: str, series, prefix: Path, options, progress: ProgressCallback,
                say: Callable[[str], None], force: bool) -> tuple[list[str], Any]:
    """Load ``path``, run the model, write its outputs beside ``prefix``; returns (lines to print, the series used).

    The reader's warnings are said (``say``) at once, so they are seen even when the
    input is then refused (``medviewer.services.load_warnings``).
    """
    from medviewer.ai.tasks import task_hooks
    from medviewer.core.jobs import scaled_progress
    from medviewer.services import load_warnings
    from medviewer.services.open_study import open_path

    volume, chosen, _found = open_path(path, series, scaled_progress(progress, 0.0, 0.2))
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
    return lines + task_hooks(package.task).write(result, prefix, header, package.manifest, volume.geometry), chosen
