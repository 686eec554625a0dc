"""All-or-nothing updates of several files in one folder tree, with a journal for crashes.

Every new file is first *staged*: written to a temporary file in the hidden staging
folder ``ROOT/.medviewer-staging/`` and verified (see :mod:`medviewer.io.atomic`); a
full disk fails here, before anything is replaced. The staging folder lies on the
targets' file system (the final rename stays atomic) but outside the folders whose
files are listed by suffix: nnU-Net takes every ``imagesTr/*.nii.gz`` for a case, so a
staged ``CASE_0000.nii.gz.RANDOM.part.nii.gz`` beside its target would be counted as
one while a save is in flight or after a crash. :meth:`Transaction.commit` then

1. keeps each file about to be replaced or removed as a hard link in the staging
   folder (``NAME.RANDOM.bak``; a copy where links are impossible),
2. writes the journal (``.medviewer-journal.json``) naming targets, staged files,
   backups, appends and folders made,
3. moves the staged files into place, removes what is to be removed and appends
   lines to append-only files (their old length is in the journal),
4. deletes the journal (the commit point) and then the backups.

Any failure in step 3 rolls everything back from the journal; a crash in step 3
leaves the journal, and :func:`recover` (called under the folder's lock on the next
open or save) rolls it back. Without a journal, the staging folder and leftover
``.part``/``.bak`` files (which older versions staged beside their targets) are the
debris of an unfinished or committed transaction and :func:`remove_debris` deletes
them. The caller must hold the folder's lock (:mod:`medviewer.io.dataset_lock`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from medviewer.io.atomic import Verifier, WriteFailedError, as_write_error, disk_is_full, fsync_dir, stage

JOURNAL_NAME = ".medviewer-journal.json"
#: Hidden folder under the root that holds staged files and backups while a transaction runs.
STAGING_NAME = ".medviewer-staging"


class Transaction:
    """Stage file writes, removals and appends under ``root``; then :meth:`commit` or :meth:`rollback`."""

    def __init__(self, root: str | os.PathLike[str], unchanged: str = "nothing was changed") -> None:
        self.root = Path(root)
        self.unchanged = unchanged
        self._replace: list[tuple[Path, Path]] = []  # (target, staged)
        self._remove: list[Path] = []
        self._append: list[tuple[Path, bytes]] = []
        self._made_dirs: list[Path] = []

    # ------------------------------------------------------------------ staging
    def _make_dirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists() and folder != self.root and self.root in folder.parents:
            missing.append(folder)
            folder = folder.parent
        for item in reversed(missing):
            item.mkdir()
            self._made_dirs.append(item)

    def write(self, target: str | os.PathLike[str], writer: Callable[[Path], None], verify: Verifier | None = None) -> Path:
        """Stage ``writer(tmp)`` (checked by ``verify``) to replace or create ``target``."""
        target = Path(target)
        try:
            try:
                self._make_dirs(target.parent)
            except OSError as error:  # mkdir needs a block on most file systems
                raise as_write_error(error, target.parent, False, self.unchanged) from error
            staged = stage(target, writer, verify, self._staging_for(target))
        except WriteFailedError as error:
            self.rollback()
            raise type(error)(_with_unchanged(error, self.unchanged), error.path) from error
        except BaseException:
            self.rollback()
            raise
        self._replace.append((target, staged))
        return staged

    def _staging_for(self, target: Path) -> Path | None:
        """The staging folder, or None (stage beside ``target``) when it is on another file system."""
        staging = self.root / STAGING_NAME
        staging.mkdir(exist_ok=True)
        if os.stat(staging).st_dev != os.stat(target.parent).st_dev:  # a mount inside the dataset: rename would fail
            return None
        return staging

    def write_bytes(self, target: str | os.PathLike[str], data: bytes) -> Path:
        def verify(tmp: Path) -> None:
            if tmp.stat().st_size != len(data):
                raise WriteFailedError(f"only {tmp.stat().st_size} of {len(data)} bytes reached the disk", tmp)

        return self.write(target, lambda tmp: tmp.write_bytes(data), verify)

    def write_text(self, target: str | os.PathLike[str], text: str) -> Path:
        return self.write_bytes(target, text.encode("utf-8"))

    def link(self, source: Path, target: str | os.PathLike[str]) -> Path:
        """Stage ``target`` as a hard link to (or, where links are impossible, a copy of) ``source``."""
        size = source.stat().st_size

        def writer(tmp: Path) -> None:
            tmp.unlink()
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)

        def verify(tmp: Path) -> None:
            if tmp.stat().st_size != size:
                raise WriteFailedError(f"the copy of {source.name} is incomplete", tmp)

        return self.write(target, writer, verify)

    def remove(self, target: str | os.PathLike[str]) -> None:
        target = Path(target)
        if target.exists():
            self._remove.append(target)

    def append(self, target: str | os.PathLike[str], data: bytes) -> None:
        """Append ``data`` to ``target`` at commit (created when missing); rolled back by truncation."""
        self._append.append((Path(target), data))

    # ------------------------------------------------------------------ commit
    def rollback(self) -> None:
        """Forget everything staged (before :meth:`commit`); the targets were never touched."""
        for _, staged in self._replace:
            staged.unlink(missing_ok=True)
        self._replace.clear()
        _remove_dirs(self._made_dirs)
        self._made_dirs.clear()
        _remove_staging(self.root)

    def commit(self) -> None:
        backups: list[tuple[Path, Path]] = []
        journal_path = self.root / JOURNAL_NAME
        try:
            for target in [t for t, _ in self._replace if t.exists()] + self._remove:
                backups.append((target, _backup(target, self._staging_for(target) or target.parent)))
            for folder in {b.parent for _, b in backups} | {s.parent for _, s in self._replace}:
                fsync_dir(folder)  # backups and staged files exist on disk before the journal names them
            journal = {
                "replace": [{"target": self._rel(t), "staged": self._rel(s)} for t, s in self._replace],
                "remove": [self._rel(t) for t in self._remove],
                "backups": {self._rel(t): self._rel(b) for t, b in backups},
                "append": [{"target": self._rel(t), "length": _size(t)} for t, _ in self._append],
                "made_dirs": [self._rel(d) for d in self._made_dirs],
            }
            _write_journal(journal_path, journal)
        except BaseException as error:
            for _, backup in backups:
                backup.unlink(missing_ok=True)
            full = disk_is_full(self.root)
            self.rollback()
            if isinstance(error, Exception):
                raised = as_write_error(error, journal_path, full, self.unchanged)
                if raised is not error:
                    raise raised from error
            raise
        try:
            for target, staged in self._replace:
                os.replace(staged, target)
            for target in self._remove:
                target.unlink()
            for target, data in self._append:
                _append(target, data)
            for folder in {t.parent for t, _ in self._replace} | {t.parent for t in self._remove} | {t.parent for t, _ in self._append}:
                fsync_dir(folder)
        except BaseException as error:
            full = disk_is_full(self.root)
            _roll_back(self.root, journal)
            if isinstance(error, Exception):
                raised = as_write_error(error, journal_path, full, self.unchanged)
                if raised is not error:
                    raise raised from error
            raise
        journal_path.unlink()  # the commit point
        fsync_dir(self.root)
        for _, backup in backups:
            backup.unlink(missing_ok=True)
        _remove_staging(self.root)
        self._replace.clear()
        self._remove.clear()
        self._append.clear()
        self._made_dirs.clear()

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def _with_unchanged(error: WriteFailedError, unchanged: str) -> str:
    message = error.message
    for tail in ("; the previous file is unchanged", "; nothing was written", f"; {unchanged}"):
        message = message.removesuffix(tail)
    return f"{message}; {unchanged}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _backup(target: Path, folder: Path) -> Path:
    prefix = f".{target.name}." if folder == target.parent else f"{target.name}."
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".bak", dir=folder)
    os.close(fd)
    backup = Path(name)
    backup.unlink()
    try:
        os.link(target, backup)
    except OSError:
        try:
            shutil.copy2(target, backup)
        except BaseException:
            backup.unlink(missing_ok=True)
            raise
    return backup


def _write_journal(path: Path, journal: dict) -> None:
    data = json.dumps(journal, indent=1).encode()
    try:
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.stat().st_size != len(data):
            raise WriteFailedError("the save journal could not be written", path)
        fsync_dir(path.parent)
    except BaseException:
        path.unlink(missing_ok=True)  # nothing was replaced yet: no journal means nothing to undo
        raise


def _append(target: Path, data: bytes) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_dirs(folders: Iterable[Path]) -> None:
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _roll_back(root: Path, journal: dict) -> None:
    """Undo a transaction from its journal: restore backups, delete what it created, truncate appends."""
    backups = {root / t: root / b for t, b in journal.get("backups", {}).items()}
    for entry in journal.get("replace", []):
        target, staged = root / entry["target"], root / entry["staged"]
        if target in backups:
            continue
        if not staged.exists():  # it was moved into place: the target is ours
            target.unlink(missing_ok=True)
        staged.unlink(missing_ok=True)
    for target, backup in backups.items():
        if not backup.exists():
            continue
        if target.exists() and os.path.samefile(backup, target):
            backup.unlink()  # never replaced; rename() of two links to one file would do nothing
        else:
            os.replace(backup, target)
    for entry in journal.get("replace", []):
        (root / entry["staged"]).unlink(missing_ok=True)
    for entry in journal.get("append", []):
        target, length = root / entry["target"], int(entry["length"])
        if length < 0:
            (root / entry["target"]).unlink(missing_ok=True)
        elif target.exists() and target.stat().st_size > length:
            with open(target, "rb+") as handle:
                handle.truncate(length)
                os.fsync(handle.fileno())
    _remove_dirs(root / d for d in journal.get("made_dirs", []))
    _remove_staging(root)
    fsync_dir(root)
    (root / JOURNAL_NAME).unlink(missing_ok=True)
    fsync_dir(root)


def recover(root: str | os.PathLike[str]) -> bool:
    """Roll back a transaction a crash interrupted (hold the folder's lock). True when there was one."""
    root = Path(root)
    path = root / JOURNAL_NAME
    if not path.exists():
        return False
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        journal = None  # torn while written: nothing had been replaced yet
    if journal is None:
        path.unlink()
        return True
    _roll_back(root, journal)
    return True


def _remove_staging(root: Path) -> None:
    """Remove the staging folder once empty (a transaction left nothing in flight there)."""
    with contextlib.suppress(OSError):
        (root / STAGING_NAME).rmdir()


def remove_debris(folders: Iterable[Path]) -> None:
    """Delete staged and backup files an interrupted transaction left (no journal; hold the lock).

    A staging folder directly in one of ``folders`` is removed with all it holds.
    """
    for folder in folders:
        if not folder.is_dir():
            continue
        if (folder / STAGING_NAME).is_dir():
            shutil.rmtree(folder / STAGING_NAME, ignore_errors=True)
        for path in folder.iterdir():
            if path.name.startswith(".") and (".part" in path.name or path.name.endswith(".bak")):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
