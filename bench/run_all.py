"""Run every benchmark in bench/ and print one table.

    python bench/run_all.py                     # everything (about 10-20 minutes on 2 cores)
    python bench/run_all.py --only viewer,editing
    python bench/run_all.py --quick             # fewer repeats where a benchmark has a ``repeats`` knob
    python bench/run_all.py --list              # the benchmark names

Every ``bench/bench_<name>.py`` defines ``collect() -> list[Row]``; this script finds
them all (a new file is picked up without changes here). Each one runs in its own
Python process so that one benchmark's memory, threads or Qt application cannot
skew the next one's figures, and a crash costs only that benchmark's rows. Without a
display the processes run under ``xvfb-run`` (the viewer and 3D benchmarks need an X
server). The table has one row per figure: medviewer's value, the reference measured
in the same run, their ratio, the goal and whether the goal is met (for goals written
as a comparison such as ``< 2 s`` or ``<= 1.3x``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import inspect
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from common import Row  # noqa: E402  (also puts the checkout on sys.path)

#: ``repeats`` given to benchmarks that take it, with ``--quick``.
QUICK_REPEATS = 1
XVFB_ARGS = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"]
DEFAULT_TIMEOUT_S = 1800


@dataclass
class BenchResult:
    """What one benchmark module gave: its rows, how long it took, or why it failed."""

    name: str
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


# ---------------------------------------------------------------------------- finding and running
def discover(folder: Path = BENCH_DIR) -> dict[str, Path]:
    """Benchmark name -> file, for every ``bench_<name>.py`` in ``folder``, sorted by name."""
    return {path.stem.removeprefix("bench_"): path for path in sorted(folder.glob("bench_*.py"))}


def select(available: dict[str, Path], only: str | None) -> dict[str, Path]:
    """The benchmarks named in ``only`` (comma-separated; ``bench_`` prefix optional), in the given order."""
    if not only:
        return dict(available)
    chosen = {}
    for raw in only.split(","):
        name = raw.strip().removeprefix("bench_").removesuffix(".py")
        if not name:
            continue
        if name not in available:
            raise SystemExit(f"run_all.py: no benchmark '{name}' (available: {', '.join(available)})")
        chosen[name] = available[name]
    return chosen


def collect_arguments(collect: Callable[..., list[Row]], quick: bool) -> dict:
    """Keyword arguments for ``collect``: with ``quick``, fewer repeats (or ``quick=True``) where it accepts them."""
    if not quick:
        return {}
    parameters = inspect.signature(collect).parameters
    if "quick" in parameters:
        return {"quick": True}
    if "repeats" in parameters:
        return {"repeats": QUICK_REPEATS}
    return {}


def run_collect(name: str, collect: Callable[..., list[Row]], quick: bool = False) -> BenchResult:
    """Call one ``collect`` in this process; an exception becomes the result's ``error``."""
    start = time.perf_counter()
    try:
        rows = list(collect(**collect_arguments(collect, quick)))
        return BenchResult(name, rows, time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001 - one broken benchmark must not hide the others
        return BenchResult(name, [], time.perf_counter() - start, f"{type(error).__name__}: {error}")


def load_collect(path: Path) -> Callable[..., list[Row]]:
    """Import a benchmark file and return its ``collect``."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module.collect


def worker_command(name: str, quick: bool, out: Path, display: str | None = None, folder: Path = BENCH_DIR) -> list[str]:
    """The command running one benchmark in a child process (under xvfb-run when there is no display)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--out", str(out), "--bench-dir", str(folder)]
    if quick:
        command.append("--quick")
    display = os.environ.get("DISPLAY") if display is None else display
    if not display and shutil.which(XVFB_ARGS[0]):
        command = XVFB_ARGS + command
    return command


def _stderr_or_inherit():
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stderr (e.g. captured): let the child inherit ours
        return None


def run_in_subprocess(
    name: str, quick: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S, folder: Path = BENCH_DIR
) -> BenchResult:
    """Run one benchmark in a child process; its own output goes to stderr, its rows come back as JSON."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medviewer-bench-") as scratch:
        out = Path(scratch) / "rows.json"
        try:
            completed = subprocess.run(
                worker_command(name, quick, out, folder=folder), stdout=_stderr_or_inherit(), timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            return BenchResult(name, [], time.perf_counter() - start, f"timed out after {timeout_s:.0f} s")
        seconds = time.perf_counter() - start
        if not out.exists():
            return BenchResult(name, [], seconds, f"the benchmark process exited with code {completed.returncode}")
        data = json.loads(out.read_text(encoding="utf-8"))
    rows = [Row(**row) for row in data["rows"]]
    return BenchResult(name, rows, seconds, data.get("error", ""))


def _worker(name: str, quick: bool, out: Path, folder: Path) -> int:
    path = discover(folder)[name]
    try:
        result = run_collect(name, load_collect(path), quick)
    except Exception as error:  # noqa: BLE001 - an import error is reported like any other failure
        result = BenchResult(name, [], 0.0, f"{type(error).__name__}: {error}")
    data = {"rows": [dataclasses.asdict(row) for row in result.rows], "error": result.error}
    out.write_text(json.dumps(data), encoding="utf-8")
    return 0


# ---------------------------------------------------------------------------- the table
_GOAL = re.compile(r"^\s*(<=|>=|<|>|≤|≥)\s*([0-9]*\.?[0-9]+)\s*([A-Za-zµ%]*)")
_SCALES = {
    "s": ("time", 1.0), "ms": ("time", 1e-3), "us": ("time", 1e-6), "µs": ("time", 1e-6), "min": ("time", 60.0),
    "B": ("bytes", 1.0), "KB": ("bytes", 2.0**10), "KiB": ("bytes", 2.0**10), "MB": ("bytes", 2.0**20),
    "MiB": ("bytes", 2.0**20), "GB": ("bytes", 2.0**30), "GiB": ("bytes", 2.0**30),
}


def goal_met(row: Row) -> bool | None:
    """Whether ``row`` meets its goal, for goals that are a comparison (``< 2 s``, ``<= 1.3x``); else None.

    A goal in ``x`` is compared with the ratio to the reference; one in a unit with the
    value converted to that unit (s/ms, MB/GB); free-text goals give None.
    """
    match = _GOAL.match(row.goal or "")
    if not match:
        return None
    operator, number, unit = match.group(1), float(match.group(2)), match.group(3)
    if unit == "x":
        value = row.ratio
    elif not unit or unit == row.unit:
        value = row.medviewer
    elif unit in _SCALES and row.unit in _SCALES and _SCALES[unit][0] == _SCALES[row.unit][0]:
        value = row.medviewer * _SCALES[row.unit][1] / _SCALES[unit][1]
    else:
        return None
    if value is None:
        return None
    return {
        "<": value < number, "<=": value <= number, "≤": value <= number,
        ">": value > number, ">=": value >= number, "≥": value >= number,
    }[operator]


def _number(value: float) -> str:
    return f"{value:.4g}"


def table_lines(results: list[BenchResult]) -> list[list[str]]:
    """Cells of the table: bench, figure, medviewer, reference, ratio, goal, met."""
    lines = []
    for result in results:
        for row in result.rows:
            reference = f"{_number(row.reference)} {row.unit} ({row.reference_name})" if row.reference is not None else "-"
            if row.reference is not None and not row.reference_name:
                reference = f"{_number(row.reference)} {row.unit}"
            ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
            met = {True: "yes", False: "**NO**", None: "-"}[goal_met(row)]
            lines.append([result.name, row.figure, f"{_number(row.medviewer)} {row.unit}", reference, ratio, row.goal or "-", met])
        if result.error:
            lines.append([result.name, f"FAILED: {result.error}", "-", "-", "-", "-", "-"])
        elif not result.rows:
            lines.append([result.name, "(no figures: this benchmark skipped itself)", "-", "-", "-", "-", "-"])
    return lines


def build_table(results: list[BenchResult]) -> str:
    """One Markdown table of every figure, and a line counting goals met and missed."""
    headers = ["bench", "figure", "medviewer", "reference (same run)", "ratio", "goal", "met"]
    lines = table_lines(results)
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(headers)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out.extend("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in lines)
    checks = [goal_met(row) for result in results for row in result.rows]
    met, missed = checks.count(True), checks.count(False)
    failed = [result.name for result in results if result.error]
    summary = f"{sum(len(r.rows) for r in results)} figures from {len(results)} benchmarks; goals met: {met}, missed: {missed}"
    if failed:
        summary += f"; failed: {', '.join(failed)}"
    return "\n".join(out + ["", summary])


def machine_line() -> str:
    """Where the figures were measured."""
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}")


# ---------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every medviewer benchmark and print one table.")
    parser.add_argument("--only", help="comma-separated benchmark names, e.g. viewer,editing (see --list)")
    parser.add_argument("--quick", action="store_true", help=f"fewer repeats ({QUICK_REPEATS}) where a benchmark allows it")
    parser.add_argument("--list", action="store_true", help="print the benchmark names and exit")
    parser.add_argument("--in-process", action="store_true", help="run all benchmarks in this process (faster start, less isolated)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds allowed per benchmark")
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    available = discover(args.bench_dir)
    if args.worker:
        return _worker(args.worker, args.quick, Path(args.out), args.bench_dir)
    if args.list:
        print("\n".join(available))
        return 0
    chosen = select(available, args.only)
    started = time.perf_counter()
    results = []
    for name, path in chosen.items():
        print(f"[run_all] {name} ...", file=sys.stderr, flush=True)
        if args.in_process:
            result = run_collect(name, load_collect(path), args.quick)
        else:
            result = run_in_subprocess(name, args.quick, args.timeout, args.bench_dir)
        print(f"[run_all] {name}: {len(result.rows)} figures in {result.seconds:.0f} s{' - ' + result.error if result.error else ''}",
              file=sys.stderr, flush=True)
        results.append(result)
    mode = "quick" if args.quick else "full"
    print(f"medviewer benchmarks ({mode} run, {time.perf_counter() - started:.0f} s; {machine_line()})\n")
    print(build_table(results))
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
