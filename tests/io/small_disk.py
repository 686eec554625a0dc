"""Real small disks for full-disk tests: tmpfs mounts (root only), filled to an exact free space.

``small_disk(folder, size_kib)`` mounts a tmpfs there and always unmounts it; tests
skip with a message when not root or when the mount fails.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

FILLER = "filler.bin"


@contextlib.contextmanager
def small_disk(folder: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB mounted at ``folder`` (skips the test where that is impossible)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("full-disk tests mount a tmpfs, which needs root")
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {result.stderr.strip() or result.returncode}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill_to(disk: Path, free: int) -> None:
    """Leave about ``free`` bytes free on ``disk`` (tmpfs counts whole pages) with a filler file."""
    filler = disk / FILLER
    filler.unlink(missing_ok=True)
    size = max(free_bytes(disk) - free, 0)
    with open(filler, "wb") as handle:
        with contextlib.suppress(OSError):
            handle.write(b"\0" * size)
    while free_bytes(disk) > free + 4096:  # page rounding: top up
        with open(filler, "ab") as handle:
            handle.write(b"\0" * 4096)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes (None for folders) under ``root``: the dataset's exact state."""
    state: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        state[str(path.relative_to(root))] = path.read_bytes() if path.is_file() else None
    return state


def gunzip_ok(data: bytes) -> bool:
    try:
        gzip.decompress(data)
    except (OSError, EOFError):
        return False
    return True
