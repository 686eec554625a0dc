"""Atomic file writes: temp file in the same folder, fsync, os.replace.

A crash or a full disk during a save leaves the previous file intact, never a
truncated one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary name keeps ``path``'s full suffix (``.nii.gz``...) so writers that
    choose a format by extension still work.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result into place atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    # Persist the rename itself; not possible on every platform (e.g. Windows).
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_group(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> list[Path]:
    """Atomically write a file that comes with side files (MHD + RAW, NHDR + RAW).

    ``writer(tmp_path)`` writes into a private temporary folder beside ``path`` using
    the final file name, so headers reference their data files by the right name. Each
    produced file is then fsynced and moved into place, data files first and the file
    at ``path`` last: a reader never sees a header without its data. Returns the paths
    written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        writer(staging / target.name)
        produced = sorted(staging.iterdir(), key=lambda p: p.name == target.name)
        for item in produced:
            _fsync_file(item)
        for item in produced:
            os.replace(item, target.parent / item.name)
        _fsync_dir(target.parent)
        return [target.parent / item.name for item in produced]
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
