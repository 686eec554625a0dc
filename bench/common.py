"""Shared helpers for benchmarks: timing, peak memory and one table format.

Every benchmark script in bench/ defines ``collect() -> list[Row]`` (used by
``bench/run_all.py``) and prints its table when run directly (``main()``).
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# Benchmarks run from a checkout: make `import medviewer` work without installing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class Row:
    """One measured figure: medviewer's value, a reference measured in the same run, and the goal."""

    figure: str
    medviewer: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    goal: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference in (None, 0):
            return None
        return self.medviewer / self.reference


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory_during(fn: Callable[[], object], interval: float = 0.002) -> tuple[object, int]:
    """Run ``fn``; return its result and the peak resident-memory growth in bytes (sampled, Linux)."""
    gc.collect()
    baseline = _rss_bytes()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        done.set()
        sampler.join()
    peak = max(peak, _rss_bytes())
    return result, peak - baseline


def format_table(rows: list[Row], title: str = "") -> str:
    headers = ["figure", "medviewer", "reference", "ratio", "goal"]
    lines = []
    for row in rows:
        ref = f"{row.reference:.4g} {row.unit} ({row.reference_name})" if row.reference is not None else "-"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        lines.append([row.figure, f"{row.medviewer:.4g} {row.unit}", ref, ratio, row.goal or "-"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    out = [title] if title else []
    out.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out.extend("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in lines)
    return "\n".join(out)


def print_table(rows: list[Row], title: str = "") -> None:
    print(format_table(rows, title))
