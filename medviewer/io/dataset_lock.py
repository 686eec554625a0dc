"""An exclusive lock on a dataset folder shared by processes, users and hosts.

The lock is a file (``.medviewer.lock``) created with ``O_EXCL``, which is atomic on
local disks, NFS and SMB, holding its owner (host, pid, user, time) as JSON. While
held it is also locked with ``fcntl.flock`` where the file system supports it, so a
live owner is recognised even on a host whose clock disagrees. A lock left by a
process that died (same host and the pid is gone, or no OS lock and older than
:data:`STALE_AFTER_S`) is broken; a live one is waited for, at most ``timeout``
seconds, and then :class:`DatasetLockedError` names who holds it.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from medviewer.core.errors import DatasetError
from medviewer.io.atomic import as_write_error

try:  # POSIX only; elsewhere the lock file alone decides
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".medviewer.lock"
#: A lock whose owner cannot be checked (another host, no OS lock) is stale after this long.
STALE_AFTER_S = 600.0
#: A lock file still without its owner (the writer died between create and write) is stale after this long.
EMPTY_STALE_AFTER_S = 30.0
DEFAULT_TIMEOUT_S = 30.0


class DatasetLockedError(DatasetError):
    """Another process holds the dataset's lock for longer than we may wait."""


def _owner() -> dict:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = ""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "user": user,
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "started": time.time(),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def describe(owner: dict) -> str:
    """``pid 123 (user) on host since 2026-...`` for messages."""
    if not owner:
        return "a process that has not written its name yet"
    user = f" ({owner['user']})" if owner.get("user") else ""
    return f"pid {owner.get('pid')}{user} on {owner.get('host')} since {owner.get('since')}"


def read_owner(root: str | os.PathLike[str]) -> dict:
    """The current holder of ``root``'s lock, or ``{}``."""
    try:
        return json.loads((Path(root) / LOCK_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _os_lock(fd: int) -> bool | None:
    """Try to take the OS lock: True taken, False held by another live process, None unsupported."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: a file system without locks
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


class DatasetLock:
    """Exclusive lock on one folder; use as a context manager or ``acquire()``/``release()``."""

    def __init__(self, root: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.timeout = float(timeout)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise as_write_error(error, self.root, False, "nothing was changed") from error
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            if self._try_create():
                return
            owner = self._break_if_stale()
            if owner is None:
                continue  # it was stale and is gone: try again at once
            if time.monotonic() >= deadline:
                raise DatasetLockedError(
                    f"the dataset is being saved by another process ({describe(owner)}); waited "
                    f"{self.timeout:g} s, nothing was changed. Save again when it has finished "
                    f"(if that process is gone, delete {LOCK_NAME})",
                    self.root,
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            return False
        except OSError as error:  # a read-only or full disk, no permission
            raise as_write_error(error, self.path, False, "the dataset is unchanged") from error
        try:
            if _os_lock(fd) is False:  # someone is checking our fresh file for staleness: let them finish
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps(_owner()).encode())
            os.fsync(fd)
        except BaseException as error:
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            if isinstance(error, OSError):
                raise as_write_error(error, self.path, False, "the dataset is unchanged") from error
            raise
        self._fd = fd
        return True

    def _break_if_stale(self) -> dict | None:
        """The live owner's record; None when the lock was stale (and removed) or vanished meanwhile."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None
        except OSError:
            return read_owner(self.root)
        try:
            locked = _os_lock(fd)
            if locked is False:
                return read_owner(self.root) or {"host": "?", "pid": "?"}
            if not _same_file(fd, self.path):
                return None
            try:
                owner = json.loads(os.read(fd, 65536) or b"{}")
            except ValueError:
                owner = {}
            if not self._stale(owner, os.fstat(fd).st_mtime, os_lock_works=locked is True):
                return owner
            if _same_file(fd, self.path):
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            return None
        finally:
            os.close(fd)

    @staticmethod
    def _stale(owner: dict, mtime: float, os_lock_works: bool) -> bool:
        age = time.time() - mtime
        if not owner:
            return age > EMPTY_STALE_AFTER_S
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            if owner["pid"] == os.getpid():
                return False  # another thread of ours
            # a live owner on this host holds the OS lock; without one, only a dead pid is certain
            return not _pid_alive(owner["pid"]) or (os_lock_works and age > EMPTY_STALE_AFTER_S)
        return age > STALE_AFTER_S

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path):
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(self._fd)  # releases the OS lock after the file is gone
            self._fd = None

    def __enter__(self) -> "DatasetLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def dataset_lock(root: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[DatasetLock]:
    """``with dataset_lock(root):`` hold ``root``'s lock for the block."""
    lock = DatasetLock(root, timeout)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
