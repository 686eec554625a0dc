"""Verified atomic file writes: temp file in the same folder, verify, fsync, os.replace.

A crash or a full disk during a save leaves the previous file intact, never a
truncated one. Writers that do not raise on a short write (SimpleITK's NIfTI writer
only prints ``NWAD: wrote only 0 of ... bytes`` on ENOSPC) are caught by the
``verify`` callback, which must prove the temporary file complete before it replaces
anything. A failed write raises :class:`WriteFailedError`, or :class:`DiskFullError`
when the disk is full.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from medviewer.core.errors import MedviewerError

#: Suffixes that compress the format before them: ``.nii.gz`` is one extension.
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst"}
#: Free space below which a failed write is blamed on a full disk.
_FULL_DISK_BYTES = 1 << 20
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}

Verifier = Callable[[Path], None]


class WriteFailedError(MedviewerError):
    """A file could not be written completely; what was at its place before is unchanged."""


class DiskFullError(WriteFailedError):
    """The disk (or the user's quota) is full (ENOSPC)."""


def temp_suffix(name: str) -> str:
    """The format extension of ``name`` only (``.nii.gz`` of ``a.nii.nii.gz``).

    Temporary names end in it so writers that choose a format by extension still work;
    keeping only one extension stops NIfTI's writer from "fixing" a doubled one
    (``x.nii.nii.gz`` -> ``x.nii.gz``) and writing beside the temporary file.
    """
    suffixes = Path(name).suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() in _COMPRESSION_SUFFIXES:
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ".tmp"


def temp_path_for(target: Path, tag: str = "part", folder: Path | None = None) -> Path:
    """Create an empty temporary file for ``target`` and return its path.

    It is hidden beside ``target`` (``.NAME.RANDOM.part.EXT``), or named
    ``NAME.RANDOM.part.EXT`` inside ``folder`` when given (a staging folder on the
    same file system, so that the final rename stays atomic).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{target.name}." if folder is not None else f".{target.name}."
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=f".{tag}{temp_suffix(target.name)}", dir=folder or target.parent)
    try:
        # mkstemp makes 0600 files; the replaced file keeps its mode, a new one gets what open() would give
        # (a dataset on a shared drive must stay readable by the other annotators).
        os.fchmod(fd, _mode_for(target))
    except (OSError, AttributeError):  # fchmod is POSIX only
        pass
    os.close(fd)
    return Path(name)


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_current_umask()


def _current_umask() -> int:
    try:  # Linux says it without changing it (setting it, as below, races with other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it and put it back
    os.umask(mask)
    return mask


def disk_is_full(folder: str | os.PathLike[str]) -> bool:
    """True when the file system holding ``folder`` has (almost) no space left."""
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # statvfs is POSIX only
        return False
    return stats.f_bavail * stats.f_frsize < _FULL_DISK_BYTES


def as_write_error(error: BaseException, target: Path, disk_full: bool, unchanged: str) -> BaseException:
    """The error to raise for a failed write of ``target``: DiskFullError when the disk is the cause."""
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        disk_full = True
    if "No space left on device" in str(error):
        disk_full = True
    if disk_full:
        return DiskFullError(f"the disk is full (ENOSPC): {target.name} could not be written; {unchanged}", target)
    if isinstance(error, WriteFailedError):
        return WriteFailedError(f"{error.message}; {unchanged}", error.path or target)
    if isinstance(error, OSError):
        return WriteFailedError(f"{target.name} could not be written ({error.strerror or error}); {unchanged}", target)
    return error


def _unchanged_text(target: Path) -> str:
    return "the previous file is unchanged" if target.exists() else "nothing was written"


def check_not_empty(path: Path) -> None:
    """The minimal verification: the writer produced a non-empty file at ``path``."""
    if not path.is_file() or path.stat().st_size == 0:
        raise WriteFailedError("the writer produced an empty file", path)


def stage(
    target: str | os.PathLike[str], writer: Callable[[Path], None], verify: Verifier | None = None,
    folder: Path | None = None,
) -> Path:
    """Write a verified, fsynced temporary file for ``target`` and return it (``target`` is untouched).

    The file lies beside ``target``, or in ``folder`` (same file system) when given.
    The caller moves it into place (``os.replace``) or deletes it.
    """
    target = Path(target)
    tmp = temp_path_for(target, folder=folder)
    try:
        writer(tmp)
        if verify is not None:
            verify(tmp)
        _fsync_file(tmp)
    except Exception as error:
        full = disk_is_full(tmp.parent)  # before the partial file frees its space
        tmp.unlink(missing_ok=True)
        raised = as_write_error(error, target, full, _unchanged_text(target))
        if raised is error:
            raise
        raise raised from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], verify: Verifier | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    ``verify(tmp)`` (when given) must raise when the file written is incomplete; the
    previous file at ``path`` then stays as it was. The temporary name ends in
    ``path``'s format extension (``.nii.gz``...) so writers that choose a format by
    extension still work.
    """
    target = Path(path)
    tmp = temp_path_for(target)
    try:
        try:
            yield tmp
            if verify is not None:
                verify(tmp)
            _fsync_file(tmp)
        except Exception as error:
            raised = as_write_error(error, target, disk_is_full(tmp.parent), _unchanged_text(target))
            if raised is error:
                raise
            raise raised from error
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path, verify=lambda tmp: _check_size(tmp, len(data))) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_with(
    path: str | os.PathLike[str], writer: Callable[[Path], None], verify: Verifier | None = None
) -> None:
    """Call ``writer(tmp_path)``, ``verify(tmp_path)`` and move the result into place atomically."""
    with atomic_path(path, verify) as tmp:
        writer(tmp)


def _check_size(path: Path, size: int) -> None:
    if path.stat().st_size != size:
        raise WriteFailedError(f"only {path.stat().st_size} of {size} bytes reached the disk", path)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Persist renames in ``folder``; not possible on every platform (e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_group(
    path: str | os.PathLike[str], writer: Callable[[Path], None], verify: Verifier | None = None
) -> list[Path]:
    """Atomically write a file that comes with side files (MHD + RAW, NHDR + RAW).

    ``writer(tmp_path)`` writes into a private temporary folder beside ``path`` using
    the final file name, so headers reference their data files by the right name;
    ``verify(tmp_path)`` then checks them there. Each produced file is fsynced and
    moved into place, data files first and the file at ``path`` last: a reader never
    sees a header without its data. Returns the paths written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        try:
            writer(staging / target.name)
            if verify is not None:
                verify(staging / target.name)
            produced = sorted(staging.iterdir(), key=lambda p: p.name == target.name)
            for item in produced:
                _fsync_file(item)
        except Exception as error:
            raised = as_write_error(error, target, disk_is_full(staging), _unchanged_text(target))
            if raised is error:
                raise
            raise raised from error
        for item in produced:
            os.replace(item, target.parent / item.name)
        fsync_dir(target.parent)
        return [target.parent / item.name for item in produced]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
