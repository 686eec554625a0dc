"""Nothing lost: autosave unsaved edits and offer them back after a crash.

Each running editor owns one folder in ``medviewer.core.paths.recovery_dir()``::

    <session>/lock            held with an OS file lock while the process lives
    <session>/manifest.json   source series/path, geometry, label maps, detections
    <session>/labels_G_N.bin  zlib-compressed label array N as of autosave generation G
    <session>/patch_G_N.bin   the block of label map N edited since its base (region in the manifest)

The OS drops the lock when the process dies - even by ``kill -9`` - so a folder
whose lock can be taken belongs to a crashed session and is offered at the next
start (:func:`list_recoverable`). Files are written atomically, arrays before the
manifest that names them, so a crash during an autosave leaves the previous
autosave intact. Folders are removed after a successful save or an explicit
discard; a dead session's folder without a manifest is removed as an orphan.

:class:`Autosaver` is Qt-free: the GUI calls :meth:`Autosaver.autosave_if_due` once a
second and the :class:`~medviewer.services.autosave_policy.AutosavePolicy` decides
(after a pause, at the latest some seconds after the first unsaved change, or after
many changed voxels). Only the block edited since the last autosave is copied and
written; the slow part (compressing and writing) runs on a background thread after a
quick snapshot on the caller's thread. Failures are kept in ``last_error`` and
announced by the ``failed`` signal, and the write is retried.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from psygnal import Signal

from medviewer.core.detection import Detection
from medviewer.core.document import Document, Region
from medviewer.core.errors import CorruptFileError, GeometryMismatchError, MedviewerError
from medviewer.core.geometry import Geometry
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.core.paths import recovery_dir
from medviewer.core.signal_links import SignalLinks
from medviewer.io.atomic import atomic_write_bytes, atomic_write_text
from medviewer.services.autosave_policy import AutosavePolicy, EditClock

MANIFEST = "manifest.json"
LOCK = "lock"
#: 2 adds per-label-map patches (blocks written after the base array); 1 is still read.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
#: A folder without a readable manifest whose owner is gone is removed after this long (seconds).
ORPHAN_AGE_S = 60


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- process locks
class _ProcessLock:
    """An exclusive OS lock on a file, held for the life of the process (released by the OS at death)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = open(path, "a+b")
        if not _try_lock(self._handle):
            self._handle.close()
            raise MedviewerError("the recovery folder is in use by another medviewer", path.parent)
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"{os.getpid()}\n".encode())
        self._handle.flush()

    def release(self) -> None:
        if not self._handle.closed:
            _unlock(self._handle)
            self._handle.close()

    def __del__(self) -> None:  # an autosaver dropped without close(): its folder becomes recoverable
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _try_lock(handle) -> bool:
    try:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(handle) -> None:
    try:
        if sys.platform == "win32":  # pragma: no cover
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError:
        pass


def _owner_alive(folder: Path) -> bool:
    """True while the process that wrote ``folder`` still holds its lock."""
    path = folder / LOCK
    if not path.exists():
        return False
    try:
        with open(path, "a+b") as handle:
            if _try_lock(handle):
                _unlock(handle)
                return False
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------- snapshots
#: A label map's whole array must be written (first autosave, a replaced layer, a compaction).
_WHOLE = "whole"


@dataclass
class _LabelSnapshot:
    """What to write for one label map: the whole array, or one changed block of it, or nothing."""

    label_map: LabelMap
    proposal: object  # the tracker's token of its model proposal (None: none); ``original`` is its array
    name: str
    source: str
    table: dict
    active: bool
    array: np.ndarray | None = None  # the whole array (a copy)
    block: np.ndarray | None = None  # the changed block (a copy) ...
    region: Region | None = None  # ... and where it lies
    original: np.ndarray | None = None  # the model proposal, when it changed since the last write


@dataclass
class RecoverySnapshot:
    """A consistent copy of what to autosave, taken quickly on the UI thread."""

    generation: int
    manifest: dict
    label_maps: list[_LabelSnapshot] = field(default_factory=list)
    #: what was pending when it was taken (dirty marks, edit clock): put back if the write fails
    pending: dict = field(default_factory=dict)
    edits: EditClock = field(default_factory=EditClock)


@dataclass
class _StoredMap:
    """What the recovery folder holds for one label map: a base array and the blocks written since."""

    label_map: LabelMap
    base: dict
    patches: list[dict] = field(default_factory=list)
    original: dict | None = None
    original_of: object = None  # the proposal object ``original`` was written from

    @property
    def files(self) -> list[str]:
        names = [self.base["file"], *(p["file"] for p in self.patches)]
        return names + ([self.original["file"]] if self.original else [])

    @property
    def patch_bytes(self) -> int:
        return sum(p["bytes"] for p in self.patches)


def _pack(array: np.ndarray) -> tuple[bytes, dict]:
    array = np.ascontiguousarray(array)
    data = zlib.compress(array.tobytes(), 1)
    return data, {"shape": list(array.shape), "dtype": array.dtype.str, "crc32": zlib.crc32(data), "bytes": len(data)}


def _unpack(path: Path, info: dict) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorruptFileError(f"recovery file cannot be read: {error}", path) from None
    if zlib.crc32(data) != info["crc32"]:
        raise CorruptFileError("recovery file is damaged (checksum mismatch)", path)
    return np.frombuffer(zlib.decompress(data), np.dtype(info["dtype"])).reshape(info["shape"]).copy()


def _region_voxels(region: Region | None, shape: tuple[int, ...]) -> int:
    if region is None:
        return int(np.prod(shape))
    return int(np.prod([max(0, s.stop - s.start) for s in region]))


def _union(first, second):
    """Union of two dirty marks: a region, or ``_WHOLE`` (``None`` = clean)."""
    if first is None:
        return second
    if first == _WHOLE or second == _WHOLE:
        return _WHOLE
    return tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(first, second))


# ---------------------------------------------------------------------------- autosaver
class Autosaver:
    """Autosaves one document's unsaved label maps and detections.

    After the first autosave only what changed is written: the bounding block of the
    voxels edited since the last autosave, appended to that label map's list of
    patches (the base array is rewritten when the patches outgrow it). The manifest is
    written last and names every file, so a crash at any moment leaves the previous
    autosave whole.

    Parameters
    ----------
    document:
        The document to protect.
    tracker:
        Optional ``ProposalTracker``: model proposals are saved too, so a restored
        session still records what the model proposed.
    root:
        Recovery folder (``recovery_dir()`` by default).
    policy:
        When :meth:`autosave_if_due` writes (``AutosavePolicy()`` by default).
    clock:
        Monotonic seconds (``time.monotonic``; tests pass a fake clock).
    """

    #: A background write failed: (exception). Emitted on the writing thread.
    failed = Signal(object)
    #: A write succeeded: (folder). Emitted on the writing thread.
    succeeded = Signal(object)

    def __init__(self, document: Document, tracker=None, root: Path | None = None,
                 policy: AutosavePolicy | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.document = document
        self.tracker = tracker
        self.policy = policy or AutosavePolicy()
        self._clock = clock
        self.root = Path(root) if root is not None else recovery_dir()
        self.folder = self._new_folder(self.root)
        self._lock: _ProcessLock | None = None
        # A document that already has unsaved edits needs its first autosave.
        self._generation = 1 if document.modified else 0
        self._saved_generation = 0
        self._stored: dict[int, _StoredMap] = {}
        self._dirty: dict[int, object] = {}  # id(label_map) -> Region or _WHOLE
        self._edits = EditClock()
        if document.modified:
            self._edits.record(clock(), 0)
        self._old_folders: list[Path] = []
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last_error: Exception | None = None
        self._links = SignalLinks([
            (document.labels_changed, self._labels_changed), (document.label_table_changed, self._changed),
            (document.detections_changed, self._changed), (document.label_maps_changed, self._layers_changed),
            (document.modified_changed, self._on_modified),
        ])

    @staticmethod
    def _new_folder(root: Path) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return root / f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"

    # ------------------------------------------------------------------ state
    def _changed(self, *args, voxels: int = 0) -> None:
        self._generation += 1
        with self._state_lock:
            self._edits.record(self._clock(), voxels)

    def _labels_changed(self, label_map: LabelMap, region) -> None:
        with self._state_lock:
            key = id(label_map)
            self._dirty[key] = _union(self._dirty.get(key), _WHOLE if region is None else tuple(region))
        self._changed(voxels=_region_voxels(region, label_map.array.shape))

    def _layers_changed(self) -> None:
        present = {id(lm) for lm in self.document.label_maps}
        with self._state_lock:
            for key in list(self._dirty):
                if key not in present:
                    del self._dirty[key]
        self._changed()

    def _on_modified(self, modified: bool) -> None:
        if not modified:  # saved (or undone back to the saved state): the recovery copy is not needed
            self.discard()

    @property
    def needs_autosave(self) -> bool:
        """Unsaved edits that are not in the recovery folder yet."""
        return self.document.modified and self._generation != self._saved_generation

    def is_due(self) -> bool:
        """True when there are unsaved edits and the policy says to write them now."""
        with self._state_lock:
            return self.needs_autosave and self._edits.due(self.policy, self._clock())

    # ------------------------------------------------------------------ snapshot and write
    def snapshot(self) -> RecoverySnapshot:
        """Copy what changed since the last autosave (fast; call on the thread that owns the document)."""
        document = self.document
        volume = document.volume
        metadata = volume.metadata
        series = document.series
        manifest = {
            "format": FORMAT_VERSION,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "saved_at": _now(),
            "source_path": metadata.source_path or (series.source_path if series else ""),
            "source_format": metadata.source_format,
            "series_uid": metadata.series_uid or (series.uid if series else ""),
            "series_description": metadata.series_description,
            "modality": volume.modality,
            "volume_name": volume.name,
            "geometry": document.geometry.to_dict(),
            "detections": [d.to_dict() for d in document.detections],
            "selected_detection": document.selected_detection.id if document.selected_detection else None,
        }
        with self._state_lock:
            dirty, self._dirty = self._dirty, {}
            edits, self._edits = self._edits, EditClock()
        label_maps = []
        for label_map in document.label_maps:
            key = id(label_map)
            stored = self._stored.get(key)
            if stored is not None and stored.label_map is not label_map:
                stored = None
            mark = dirty.get(key)
            proposal = self.tracker.proposal_token(label_map) if self.tracker is not None else None
            item = _LabelSnapshot(label_map, proposal, label_map.name, label_map.source, label_map.table.to_dict(),
                                  label_map is document.active_label_map)
            if proposal is not None and (stored is None or stored.original_of is not proposal):
                item.original = self.tracker.original_of(label_map).array  # a fresh copy: written once per proposal
            if stored is None or mark == _WHOLE or self._should_compact(stored, mark, label_map):
                item.array = label_map.array.copy()
            elif mark is not None:
                item.region = mark
                item.block = label_map.array[mark].copy()
            label_maps.append(item)
        return RecoverySnapshot(self._generation, manifest, label_maps, dirty, edits)

    @staticmethod
    def _should_compact(stored: _StoredMap, mark, label_map: LabelMap) -> bool:
        """Rewrite the whole array once the patches would outweigh it (restores stay quick)."""
        if mark is None:
            return False
        block_bytes = _region_voxels(mark, label_map.array.shape) * label_map.array.itemsize
        return len(stored.patches) >= 64 or stored.patch_bytes + block_bytes // 8 > max(stored.base["bytes"], 1 << 16)

    def write(self, snapshot: RecoverySnapshot) -> Path:
        """Write a snapshot (slow part; safe on a background thread). Raises on failure, changing nothing."""
        with self._write_lock:
            try:
                folder = self._write(snapshot)
            except BaseException:
                self._restore_pending(snapshot)
                raise
            return folder

    def _write(self, snapshot: RecoverySnapshot) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._lock is None:
            self._lock = _ProcessLock(self.folder / LOCK)
        generation = snapshot.generation
        stored = {}
        entries = []
        for n, item in enumerate(snapshot.label_maps):
            key = id(item.label_map)
            previous = self._stored.get(key)
            if previous is not None and previous.label_map is not item.label_map:
                previous = None
            if item.array is not None:
                data, info = _pack(item.array)
                info["file"] = f"labels_{generation}_{n}.bin"
                atomic_write_bytes(self.folder / info["file"], data)
                current = _StoredMap(item.label_map, info)
            else:
                assert previous is not None
                current = _StoredMap(item.label_map, previous.base, list(previous.patches))
                if item.block is not None and item.region is not None:
                    data, info = _pack(item.block)
                    info["file"] = f"patch_{generation}_{n}.bin"
                    info["region"] = [[int(s.start), int(s.stop)] for s in item.region]
                    atomic_write_bytes(self.folder / info["file"], data)
                    current.patches.append(info)
            if item.original is not None:
                data, info = _pack(item.original)
                info["file"] = f"original_{generation}_{n}.bin"
                atomic_write_bytes(self.folder / info["file"], data)
                current.original, current.original_of = info, item.proposal
            elif previous is not None and item.proposal is not None and previous.original_of is item.proposal:
                current.original, current.original_of = previous.original, previous.original_of  # unchanged
            stored[key] = current
            entry = {**current.base, "patches": current.patches, "name": item.name, "source": item.source,
                     "table": item.table, "active": item.active}
            if current.original is not None:
                entry["original"] = current.original
            entries.append(entry)
        manifest = dict(snapshot.manifest, label_maps=entries, generation=generation)
        atomic_write_text(self.folder / MANIFEST, json.dumps(manifest, indent=1))
        # Only now is the new state on disk: forget files the manifest no longer names.
        keep = {name for s in stored.values() for name in s.files}
        old = {name for s in self._stored.values() for name in s.files}
        for name in old - keep:
            (self.folder / name).unlink(missing_ok=True)
        self._stored = stored
        self._saved_generation = generation
        for folder in self._old_folders:  # the previous root's autosave is superseded
            shutil.rmtree(folder, ignore_errors=True)
        self._old_folders = []
        return self.folder

    def _restore_pending(self, snapshot: RecoverySnapshot) -> None:
        """A write failed: what it was to write is pending again (merged with newer changes)."""
        now = self._clock()
        with self._state_lock:
            for key, mark in snapshot.pending.items():
                self._dirty[key] = _union(self._dirty.get(key), mark)
            older = snapshot.edits
            newer = self._edits
            first = [t for t in (older.first_change, newer.first_change) if t is not None]
            self._edits = EditClock(min(first) if first else now, newer.last_change or older.last_change or now,
                                    older.changed_voxels + newer.changed_voxels, now)

    def autosave_now(self) -> bool:
        """Autosave synchronously when there are unsaved, un-autosaved edits; True if written."""
        self.wait()
        if not self.needs_autosave:
            return False
        self.write(self.snapshot())
        return True

    def autosave_async(self) -> bool:
        """Snapshot now and write on a background thread (skipped while a write is running).

        The outcome is kept in :attr:`last_error` and announced by :attr:`failed` or
        :attr:`succeeded` (on the writing thread).
        """
        if not self.needs_autosave or (self._thread is not None and self._thread.is_alive()):
            return False
        snapshot = self.snapshot()

        def run() -> None:
            try:
                folder = self.write(snapshot)
            except Exception as error:  # noqa: BLE001 - reported to the GUI, never fatal
                self.last_error = error
                self.failed.emit(error)
            else:
                self.last_error = None
                self.succeeded.emit(folder)

        self._thread = threading.Thread(target=run, name="medviewer-autosave", daemon=True)
        self._thread.start()
        return True

    def autosave_if_due(self) -> bool:
        """Start a background autosave when the policy says it is time (the GUI calls this every second)."""
        return self.is_due() and self.autosave_async()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background write to finish."""
        if self._thread is not None:
            self._thread.join(timeout)

    def move_to(self, root: Path) -> None:
        """Autosave into another folder from now on (the user chose one after a failure).

        Everything is written anew there at the next autosave; the old folder is removed
        once that succeeded, so an older autosave is never lost in between.
        """
        self.wait()
        with self._write_lock:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            if self.folder.exists():
                self._old_folders.append(self.folder)
            self.root = Path(root)
            self.folder = self._new_folder(self.root)
            self._stored = {}
            self._saved_generation = -1 if self.document.modified else self._generation
        with self._state_lock:
            for label_map in self.document.label_maps:
                self._dirty[id(label_map)] = _WHOLE
            self._edits.record(self._clock(), 0)
            self._edits.last_failure = None

    def discard(self) -> None:
        """Remove this session's recovery folder (after a save, or when the user discards)."""
        self.wait()
        with self._write_lock:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            shutil.rmtree(self.folder, ignore_errors=True)
            self._stored = {}
            self._saved_generation = self._generation
        with self._state_lock:
            self._dirty = {}
            self._edits = EditClock()

    def close(self) -> None:
        """Stop watching the document and drop its autosave (it was saved or discarded)."""
        self.discard()
        self._disconnect()

    def detach(self) -> None:
        """Stop watching the document but keep its unsaved edits for the next start.

        Used when another document replaces this one while it has unsaved edits: they
        are autosaved now and the folder is unlocked, so it is offered for recovery.
        """
        try:
            self.autosave_now()
        except (OSError, MedviewerError) as error:
            self.last_error = error
        self.wait()
        with self._write_lock:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
        self._disconnect()

    def _disconnect(self) -> None:
        self._links.disconnect()


# ---------------------------------------------------------------------------- recovering
@dataclass
class RecoveryEntry:
    """An autosave left behind by a session that ended without saving."""

    folder: Path
    manifest: dict

    @property
    def source_path(self) -> str:
        return self.manifest.get("source_path", "")

    @property
    def series_uid(self) -> str:
        return self.manifest.get("series_uid", "")

    @property
    def saved_at(self) -> str:
        return self.manifest.get("saved_at", "")

    @property
    def geometry(self) -> Geometry:
        return Geometry.from_dict(self.manifest["geometry"])

    def describe(self) -> str:
        """One line for the restore dialog."""
        name = self.manifest.get("series_description") or self.manifest.get("volume_name") or "image"
        layers = len(self.manifest.get("label_maps", []))
        boxes = len(self.manifest.get("detections", []))
        return f"{name} ({self.source_path or 'unknown source'}), autosaved {self.saved_at}: {layers} label map(s), {boxes} box(es)"


def list_recoverable(root: Path | None = None, orphan_age_s: float = ORPHAN_AGE_S) -> list[RecoveryEntry]:
    """Autosaves of sessions that are no longer running, newest first.

    Folders of dead sessions that hold no readable manifest (a kill during the very
    first autosave) contain nothing that could be restored: they are removed once
    older than ``orphan_age_s`` (a live session creating its folder is never touched:
    it holds the lock).
    """
    root = Path(root) if root is not None else recovery_dir()
    if not root.is_dir():
        return []
    entries = []
    for folder in root.iterdir():
        if not folder.is_dir() or _owner_alive(folder):
            continue
        manifest_path = folder / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
        if not isinstance(manifest, dict):
            _remove_orphan(folder, orphan_age_s)
            continue
        if manifest.get("format") in READABLE_FORMATS:
            entries.append(RecoveryEntry(folder, manifest))
    return sorted(entries, key=lambda e: e.saved_at, reverse=True)


def _remove_orphan(folder: Path, min_age_s: float) -> None:
    try:
        newest = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.iterdir())])
    except OSError:
        return
    if time.time() - newest >= min_age_s:
        shutil.rmtree(folder, ignore_errors=True)


def discard_entry(entry: RecoveryEntry) -> None:
    """Delete an autosave the user chose not to restore."""
    shutil.rmtree(entry.folder, ignore_errors=True)


@dataclass
class RecoveredLayers:
    """What :func:`restore_into` put into the document."""

    label_maps: list[LabelMap]
    originals: dict[int, LabelMap]
    detections: list[Detection]


def restore_into(document: Document, entry: RecoveryEntry, tracker=None) -> RecoveredLayers:
    """Put an autosave's label maps and detections into ``document`` (opened on the same image).

    Raises ``GeometryMismatchError`` when the document's image does not have the
    autosave's geometry, and ``CorruptFileError`` for damaged files. The document
    stays modified (the restored edits are still unsaved). The entry's folder is
    kept: remove it with :func:`discard_entry` once the new session has autosaved
    (:func:`adopt` does both), so a second crash cannot lose the edits.
    """
    geometry = entry.geometry
    problems = document.geometry.differences(geometry)
    if problems:
        raise GeometryMismatchError(
            "the autosaved labels were made on an image with another geometry: " + "; ".join(problems), entry.folder
        )
    label_maps, originals = [], {}
    active = None
    for item in entry.manifest.get("label_maps", []):
        array = _unpack(entry.folder / item["file"], item)
        for patch in item.get("patches", []):  # blocks written after the base, in order
            region = tuple(slice(int(a), int(b)) for a, b in patch["region"])
            block = _unpack(entry.folder / patch["file"], patch)
            if block.shape != array[region].shape:
                raise CorruptFileError("recovery patch does not fit its label map", entry.folder / patch["file"])
            array[region] = block
        label_map = LabelMap(array, document.geometry, LabelTable.from_dict(item["table"]), item["name"], item["source"])
        label_maps.append(label_map)
        if item.get("active"):
            active = label_map
        if "original" in item:
            originals[id(label_map)] = LabelMap(
                _unpack(entry.folder / item["original"]["file"], item["original"]), document.geometry,
                LabelTable.from_dict(item["table"]), item["name"], item["source"],
            )
    detections = [Detection.from_dict(d) for d in entry.manifest.get("detections", [])]
    for label_map in label_maps:
        if tracker is not None and id(label_map) in originals:
            tracker.set_original(label_map, originals[id(label_map)])
        document.add_label_map(label_map, make_active=label_map is active)
    document.set_detections(detections)
    selected = entry.manifest.get("selected_detection")
    document.select_detection(next((d for d in detections if d.id == selected), None))
    document.mark_modified(True)
    return RecoveredLayers(label_maps, originals, detections)


def adopt(document: Document, entry: RecoveryEntry, autosaver: Autosaver, tracker=None) -> RecoveredLayers:
    """Restore ``entry`` into ``document``, autosave it under this session, then delete the old entry."""
    recovered = restore_into(document, entry, tracker)
    autosaver.autosave_now()
    discard_entry(entry)
    return recovered
