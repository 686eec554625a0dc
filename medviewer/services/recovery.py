"""Nothing lost: autosave unsaved edits and offer them back after a crash.

Each running editor owns one folder in ``medviewer.core.paths.recovery_dir()``::

    <session>/lock            held with an OS file lock while the process lives
    <session>/manifest.json   source series/path, geometry, label maps, detections
    <session>/labels_G_N.bin  zlib-compressed label arrays of autosave generation G

The OS drops the lock when the process dies - even by ``kill -9`` - so a folder
whose lock can be taken belongs to a crashed session and is offered at the next
start (:func:`list_recoverable`). Files are written atomically, arrays before the
manifest that names them, so a crash during an autosave leaves the previous
autosave intact. Folders are removed after a successful save or an explicit
discard.

:class:`Autosaver` is Qt-free: the GUI calls :meth:`Autosaver.autosave_async` from a
timer (every 60 s) and when idle; the slow part (compressing and writing) runs on a
background thread after a quick snapshot on the caller's thread.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from medviewer.core.detection import Detection
from medviewer.core.document import Document
from medviewer.core.errors import CorruptFileError, GeometryMismatchError, MedviewerError
from medviewer.core.geometry import Geometry
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.core.paths import recovery_dir
from medviewer.io.atomic import atomic_write_bytes, atomic_write_text

MANIFEST = "manifest.json"
LOCK = "lock"
FORMAT_VERSION = 1
#: How often the GUI autosaves unsaved edits (seconds).
AUTOSAVE_INTERVAL_S = 60
#: Idle time after an edit before the GUI autosaves early (seconds).
IDLE_AUTOSAVE_S = 5


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
@dataclass
class _LabelSnapshot:
    array: np.ndarray
    name: str
    source: str
    table: dict
    active: bool
    original: np.ndarray | None = None


@dataclass
class RecoverySnapshot:
    """A consistent copy of what to autosave, taken quickly on the UI thread."""

    generation: int
    manifest: dict
    label_maps: list[_LabelSnapshot] = field(default_factory=list)


def _pack(array: np.ndarray) -> tuple[bytes, dict]:
    array = np.ascontiguousarray(array)
    data = zlib.compress(array.tobytes(), 1)
    return data, {"shape": list(array.shape), "dtype": array.dtype.str, "crc32": zlib.crc32(data)}


def _unpack(path: Path, info: dict) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorruptFileError(f"recovery file cannot be read: {error}", path) from None
    if zlib.crc32(data) != info["crc32"]:
        raise CorruptFileError("recovery file is damaged (checksum mismatch)", path)
    return np.frombuffer(zlib.decompress(data), np.dtype(info["dtype"])).reshape(info["shape"]).copy()


# ---------------------------------------------------------------------------- autosaver
class Autosaver:
    """Autosaves one document's unsaved label maps and detections.

    Parameters
    ----------
    document:
        The document to protect.
    tracker:
        Optional ``ProposalTracker``: model proposals are saved too, so a restored
        session still records what the model proposed.
    root:
        Recovery folder (``recovery_dir()`` by default).
    """

    def __init__(self, document: Document, tracker=None, root: Path | None = None) -> None:
        self.document = document
        self.tracker = tracker
        self.root = Path(root) if root is not None else recovery_dir()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.folder = self.root / f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
        self._lock: _ProcessLock | None = None
        # A document that already has unsaved edits needs its first autosave.
        self._generation = 1 if document.modified else 0
        self._saved_generation = 0
        self._written_files: list[str] = []
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last_error: Exception | None = None
        for signal in (document.labels_changed, document.label_table_changed, document.detections_changed,
                       document.label_maps_changed):
            signal.connect(self._changed)
        document.modified_changed.connect(self._on_modified)

    # ------------------------------------------------------------------ state
    def _changed(self, *args) -> None:
        self._generation += 1

    def _on_modified(self, modified: bool) -> None:
        if not modified:  # saved: the recovery copy is no longer needed
            self.discard()

    @property
    def needs_autosave(self) -> bool:
        """Unsaved edits that are not in the recovery folder yet."""
        return self.document.modified and self._generation != self._saved_generation

    # ------------------------------------------------------------------ snapshot and write
    def snapshot(self) -> RecoverySnapshot:
        """Copy the document's label maps and detections (fast; call on the thread that owns the document)."""
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
        label_maps = []
        for label_map in document.label_maps:
            original = self.tracker.original_of(label_map) if self.tracker is not None else None
            label_maps.append(
                _LabelSnapshot(
                    label_map.array.copy(), label_map.name, label_map.source, label_map.table.to_dict(),
                    label_map is document.active_label_map, original.array if original is not None else None,
                )
            )
        return RecoverySnapshot(self._generation, manifest, label_maps)

    def write(self, snapshot: RecoverySnapshot) -> Path:
        """Write a snapshot atomically (slow part; safe on a background thread)."""
        with self._write_lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            if self._lock is None:
                self._lock = _ProcessLock(self.folder / LOCK)
            written = []
            entries = []
            for n, item in enumerate(snapshot.label_maps):
                data, info = _pack(item.array)
                name = f"labels_{snapshot.generation}_{n}.bin"
                atomic_write_bytes(self.folder / name, data)
                written.append(name)
                entry = {"file": name, **info, "name": item.name, "source": item.source, "table": item.table,
                         "active": item.active}
                if item.original is not None:
                    original_data, original_info = _pack(item.original)
                    original_name = f"original_{snapshot.generation}_{n}.bin"
                    atomic_write_bytes(self.folder / original_name, original_data)
                    written.append(original_name)
                    entry["original"] = {"file": original_name, **original_info}
                entries.append(entry)
            manifest = dict(snapshot.manifest, label_maps=entries, generation=snapshot.generation)
            atomic_write_text(self.folder / MANIFEST, json.dumps(manifest, indent=1))
            for old in set(self._written_files) - set(written):
                (self.folder / old).unlink(missing_ok=True)
            self._written_files = written
            self._saved_generation = snapshot.generation
            return self.folder

    def autosave_now(self) -> bool:
        """Autosave synchronously when there are unsaved, un-autosaved edits; True if written."""
        if not self.needs_autosave:
            return False
        self.write(self.snapshot())
        return True

    def autosave_async(self) -> bool:
        """Snapshot now and write on a background thread (skipped while a write is running)."""
        if not self.needs_autosave or (self._thread is not None and self._thread.is_alive()):
            return False
        snapshot = self.snapshot()

        def run() -> None:
            try:
                self.write(snapshot)
                self.last_error = None
            except Exception as error:  # noqa: BLE001 - reported to the GUI, never fatal
                self.last_error = error

        self._thread = threading.Thread(target=run, name="medviewer-autosave", daemon=True)
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background write to finish."""
        if self._thread is not None:
            self._thread.join(timeout)

    def discard(self) -> None:
        """Remove this session's recovery folder (after a save, or when the user discards)."""
        self.wait()
        with self._write_lock:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            shutil.rmtree(self.folder, ignore_errors=True)
            self._written_files = []
            self._saved_generation = self._generation

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
        for signal in (self.document.labels_changed, self.document.label_table_changed,
                       self.document.detections_changed, self.document.label_maps_changed):
            signal.disconnect(self._changed)
        self.document.modified_changed.disconnect(self._on_modified)


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


def list_recoverable(root: Path | None = None) -> list[RecoveryEntry]:
    """Autosaves of sessions that are no longer running, newest first."""
    root = Path(root) if root is not None else recovery_dir()
    if not root.is_dir():
        return []
    entries = []
    for folder in root.iterdir():
        manifest_path = folder / MANIFEST
        if not folder.is_dir() or not manifest_path.is_file() or _owner_alive(folder):
            continue
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("format") == FORMAT_VERSION:
            entries.append(RecoveryEntry(folder, manifest))
    return sorted(entries, key=lambda e: e.saved_at, reverse=True)


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
