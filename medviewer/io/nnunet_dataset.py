"""Annotation datasets in the nnU-Net v2 raw layout: writer, reader and integrity check.

Layout (``DatasetNNN_Name/``)::

    dataset.json                 channel_names, labels, numTraining, file_ending (nnU-Net)
    imagesTr/CASE_0000.nii.gz    the image (no DICOM tags; empty NIfTI description)
    labelsTr/CASE.nii.gz         the corrected label (FINAL)
    labelsOriginal/CASE.nii.gz   the model's proposal (ORIGINAL), when there was one
    detections/CASE.json         boxes in world mm and voxel indices, class, status, source
    annotations.jsonl            one provenance record per save
    history/CASE/vN/             earlier saved versions of the case (never overwritten;
                                 the proposal as CASE_original.nii.gz)
    medviewer.json               the dataset's private salt for hashing series UIDs
    .medviewer.lock              while a save runs: who saves (host, pid, user, time)
    .medviewer-journal.json      while a save commits: what to roll back after a crash

A save is one transaction (:mod:`medviewer.io.transaction`) under the dataset's lock
(:mod:`medviewer.io.dataset_lock`): the case's files, its history entry, dataset.json
and the provenance line are all written, or (full disk, crash, second process) none
of them; dataset.json is re-read under the lock, so labels other processes added are
kept and never renamed.

nnU-Net's rules checked here (from its dataset format documentation and
``verify_dataset_integrity``): the folder is ``Dataset`` + a 3-digit id + ``_`` +
name; images are ``{case}_{XXXX}{file_ending}`` with a 4-digit channel; every
image case has ``labelsTr/{case}{file_ending}``; ``numTraining`` equals the number
of cases; labels are ``{"background": 0, name: 1, ...}`` with consecutive values;
label files hold only those values; image and label have the same shape,
spacing, origin and direction; images hold no NaN. Everything besides imagesTr,
labelsTr and dataset.json is ignored by nnU-Net.

Case ids are ``case_`` + 12 hex digits of a salted SHA-256 of the series UID (or
of the image content when there is no UID): stable for one series within one
dataset, and carrying no patient name or identifier.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np
import SimpleITK as sitk

from medviewer.core.detection import Detection
from medviewer.core.errors import DatasetError, MedviewerError
from medviewer.core.geometry import Geometry
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.core.volume import Volume
from medviewer.imaging.sitk_bridge import array_to_sitk, geometry_from_sitk, sitk_to_array
from medviewer.io.atomic import atomic_write_text
from medviewer.io.dataset_lock import DEFAULT_TIMEOUT_S, DatasetLock
from medviewer.io.image_write import write_image
from medviewer.io.transaction import JOURNAL_NAME, Transaction, recover, remove_debris

FILE_ENDING = ".nii.gz"
DATASET_FOLDER_RE = re.compile(r"^Dataset(\d{3})_([A-Za-z0-9][A-Za-z0-9_\-]*)$")
CASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-]*(_[A-Za-z0-9\-]+)*$")
#: How close image and label geometry must be (nnU-Net uses numpy's allclose defaults).
GEOMETRY_TOLERANCE = 1e-4

IMAGES, LABELS, ORIGINALS, DETECTIONS, HISTORY = "imagesTr", "labelsTr", "labelsOriginal", "detections", "history"
PROVENANCE_FILE = "annotations.jsonl"
PRIVATE_FILE = "medviewer.json"


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetNNN_Name`` for nnU-Net (id 1..999; name of letters, digits, ``_`` and ``-``)."""
    if not 1 <= int(dataset_id) <= 999:
        raise DatasetError(f"nnU-Net dataset ids are 1..999, got {dataset_id}")
    folder = f"Dataset{int(dataset_id):03d}_{name}"
    if not DATASET_FOLDER_RE.match(folder):
        raise DatasetError(f"dataset name {name!r} may hold only letters, digits, '_' and '-'")
    return folder


def check_case_id(case_id: str, forbidden: Iterable[str] = ()) -> str:
    """Refuse case ids nnU-Net cannot parse or that contain an identifier from ``forbidden``."""
    if not CASE_ID_RE.match(case_id) or re.search(r"_\d{4}$", case_id):
        raise DatasetError(
            f"case id {case_id!r} must be letters, digits, '-' and single '_' and must not end in _NNNN"
        )
    lowered = case_id.lower()
    for token in forbidden:
        for part in _identifying_parts(token):
            if part in lowered:
                raise DatasetError(f"case id {case_id!r} contains a patient identifier; use an anonymous id")
    return case_id


def _identifying_parts(token) -> list[str]:
    """Pieces of a name, patient id or UID that must not appear in a case id."""
    text = str(token or "").lower()
    if re.fullmatch(r"[0-9.]+", text):
        # a DICOM UID: short components (the 1.2.840 / 1.2.826 roots) are shared by every UID and
        # identify nothing, while a hash can contain them by chance; its long ones are specific
        return [part for part in text.split(".") if len(part) >= 6]
    return [part for part in re.split(r"[\^\s,._-]+", text) if len(part) >= 3]



def _identifiers(volume: Volume) -> list[str]:
    metadata = volume.metadata
    return [value for value in (metadata.patient_name, metadata.patient_id, metadata.study_uid, metadata.series_uid) if value]

def _json_dump(data) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_image(path: Path, case_id: str, what: str) -> tuple[np.ndarray, Geometry]:
    if not path.is_file():
        raise DatasetError(f"case {case_id}: the {what} file is missing", path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise DatasetError(f"case {case_id}: the {what} file cannot be read ({str(error).strip().splitlines()[-1]})", path) from None
    return sitk_to_array(image), geometry_from_sitk(image)


def _stage_image(transaction: Transaction, path: Path, array: np.ndarray, geometry: Geometry) -> None:
    """Stage a verified NIfTI from a fresh SimpleITK image: no metadata, so no DICOM tags and an empty description."""
    image = array_to_sitk(np.ascontiguousarray(array), geometry)
    transaction.write(path, lambda tmp: write_image(image, tmp, compress=True))


def _label_dtype(max_value: int):
    return np.uint8 if max_value < 256 else np.uint16


@dataclass
class CaseRecord:
    """What one save wrote."""

    case_id: str
    version: int
    image: Path
    label: Path
    original: Path | None
    detections: Path | None
    provenance: dict = field(default_factory=dict)


class NnUNetDataset:
    """An nnU-Net v2 raw dataset folder that medviewer adds annotated cases to.

    Use :meth:`create_or_open` to get one; :meth:`save_case` writes a case (keeping
    any earlier version under ``history/``); :meth:`load_case` reads one back with
    geometry checks; :meth:`problems` lists violations of nnU-Net's rules.
    """

    def __init__(self, root: str | os.PathLike[str], lock_timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.root = Path(root)
        #: How long a save waits for another process's save before naming it in the error.
        self.lock_timeout = float(lock_timeout)
        if not (self.root / "dataset.json").is_file():
            raise DatasetError("not an nnU-Net dataset: dataset.json is missing", self.root)
        if (self.root / JOURNAL_NAME).exists():
            self._recover()
        self._json = self._read_dataset_json()

    def _recover(self) -> None:
        """Roll back a save a crash interrupted (best effort here: a save does it again under its lock)."""
        try:
            with DatasetLock(self.root, self.lock_timeout):
                recover(self.root)
        except (MedviewerError, OSError):
            pass

    # ------------------------------------------------------------------ creation
    @classmethod
    def create_or_open(
        cls, parent: str | os.PathLike[str], dataset_id: int, name: str, channel_name: str | None = None,
        lock_timeout: float = DEFAULT_TIMEOUT_S,
    ) -> "NnUNetDataset":
        """Open ``parent/DatasetNNN_Name`` or create it (with an empty dataset.json, under the dataset's lock)."""
        root = Path(parent) / dataset_folder_name(dataset_id, name)
        if (root / "dataset.json").is_file():
            return cls(root, lock_timeout)
        existing = [p.name for p in Path(parent).glob(f"Dataset{int(dataset_id):03d}_*") if p != root] if Path(parent).is_dir() else []
        if existing:
            raise DatasetError(f"dataset id {dataset_id} is already used by {existing[0]}", parent)
        with DatasetLock(root, lock_timeout):  # makes the folder
            if not (root / "dataset.json").is_file():  # another process may have made it meanwhile
                cls._create(root, name, channel_name)
        return cls(root, lock_timeout)

    @staticmethod
    def _create(root: Path, name: str, channel_name: str | None) -> None:
        for folder in (IMAGES, LABELS):
            (root / folder).mkdir(parents=True, exist_ok=True)
        data = {
            "channel_names": {"0": channel_name or "image"},
            "labels": {"background": 0},
            "numTraining": 0,
            "file_ending": FILE_ENDING,
            "name": name,
            "description": "Annotations corrected in medviewer",
            "overwrite_image_reader_writer": "SimpleITKIO",
        }
        if not (root / PRIVATE_FILE).is_file():
            atomic_write_text(root / PRIVATE_FILE, _json_dump({"uid_salt": secrets.token_hex(16)}))
        atomic_write_text(root / "dataset.json", _json_dump(data))  # last: it marks the dataset complete

    # ------------------------------------------------------------------ dataset.json
    def _read_dataset_json(self) -> dict:
        path = self.root / "dataset.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DatasetError(f"dataset.json cannot be read: {error}", path) from None
        missing = [k for k in ("labels", "channel_names", "numTraining", "file_ending") if k not in data]
        if missing:
            raise DatasetError(f"dataset.json lacks {', '.join(missing)}", path)
        if data["file_ending"] != FILE_ENDING:
            raise DatasetError(f"medviewer writes {FILE_ENDING} datasets, this one uses {data['file_ending']}", path)
        return data

    @property
    def dataset_json(self) -> dict:
        return json.loads(json.dumps(self._json))

    @property
    def labels(self) -> dict[str, int]:
        """Label name -> value, background included."""
        return {str(k): int(v) for k, v in self._json["labels"].items()}

    @property
    def channel_names(self) -> dict[str, str]:
        return dict(self._json["channel_names"])

    @property
    def name(self) -> str:
        match = DATASET_FOLDER_RE.match(self.root.name)
        return match.group(2) if match else self.root.name

    def _salt(self) -> str:
        path = self.root / PRIVATE_FILE
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))["uid_salt"]
        salt = secrets.token_hex(16)
        atomic_write_text(path, _json_dump({"uid_salt": salt}))
        return salt

    # ------------------------------------------------------------------ ids
    def hash_uid(self, uid: str) -> str:
        """Salted SHA-256 of a series UID (hex); the salt is private to this dataset."""
        return hashlib.sha256(f"medviewer:{self._salt()}:{uid}".encode()).hexdigest()

    def case_id_for(self, volume: Volume) -> str:
        """Anonymous, stable case id of a volume's series (or of its content without a UID).

        Twelve hex digits of the salted hash; should they happen to spell a piece of the
        patient's name or id (say "ada" or "123"), the next twelve are used, still stable.
        """
        uid = volume.metadata.series_uid
        if not uid:
            digest = hashlib.sha256(np.ascontiguousarray(volume.array).tobytes())
            digest.update(json.dumps(volume.geometry.to_dict()).encode())
            uid = "content:" + digest.hexdigest()
        digits = self.hash_uid(uid)
        for start in range(0, len(digits) - 11):
            candidate = "case_" + digits[start : start + 12]
            try:
                return check_case_id(candidate, _identifiers(volume))
            except DatasetError:
                continue
        raise DatasetError("no anonymous case id could be made for this series; give one explicitly")

    # ------------------------------------------------------------------ listing
    def _paths(self, case_id: str) -> dict[str, Path]:
        return {
            "image": self.root / IMAGES / f"{case_id}_0000{FILE_ENDING}",
            "label": self.root / LABELS / f"{case_id}{FILE_ENDING}",
            "original": self.root / ORIGINALS / f"{case_id}{FILE_ENDING}",
            "detections": self.root / DETECTIONS / f"{case_id}.json",
        }

    def case_ids(self) -> list[str]:
        """Cases as nnU-Net sees them: image files named ``CASE_0000.nii.gz`` in imagesTr."""
        folder = self.root / IMAGES
        if not folder.is_dir():
            return []
        suffix = f"_0000{FILE_ENDING}"
        return sorted(p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix) and not p.name.startswith("."))

    def versions(self, case_id: str) -> list[int]:
        """Earlier saved versions of a case kept under history/ (1 = the first save)."""
        folder = self.root / HISTORY / case_id
        if not folder.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in folder.iterdir() if re.fullmatch(r"v\d+", p.name))

    def provenance(self, case_id: str | None = None) -> list[dict]:
        """Provenance records (annotations.jsonl), optionally for one case."""
        path = self.root / PROVENANCE_FILE
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        records = []
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                if number == len(lines) - 1:
                    break  # a line torn by a crash; the next save rolls it back
                raise DatasetError(f"line {number + 1} of {PROVENANCE_FILE} is not JSON", path) from None
        return [r for r in records if case_id is None or r.get("case_id") == case_id]

    # ------------------------------------------------------------------ labels
    def label_values_for(self, table: LabelTable, values: Iterable[int], extend: bool = True) -> dict[int, int]:
        """Map a label map's values to dataset values by label name.

        Names already in dataset.json keep their value; new names get the next
        consecutive value (added to dataset.json only when ``extend``; otherwise the
        mapping still gives them values above the dataset's, for the ORIGINAL file).
        """
        labels = self.labels
        next_value = max(labels.values()) + 1
        mapping: dict[int, int] = {}
        seen: dict[str, int] = {}
        for value in sorted(int(v) for v in values if int(v) != 0):
            name = table[value].name if value in table else f"Label {value}"
            if name.strip().lower() == "background":
                raise DatasetError(f"label {value} is named 'background', which nnU-Net reserves for 0")
            if name in seen:
                raise DatasetError(f"labels {seen[name]} and {value} are both named {name!r}; rename or merge them")
            seen[name] = value
            if name not in labels:
                labels[name] = next_value
                next_value += 1
            mapping[value] = labels[name]
        if extend:
            self._json["labels"] = labels
        return mapping

    @staticmethod
    def _apply_mapping(array: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
        top = max([0, *mapping.values()])
        lut = np.zeros(max([int(array.max()) if array.size else 0, *mapping.keys(), 0]) + 1, _label_dtype(top))
        for old, new in mapping.items():
            lut[old] = new
        return lut[array]

    # ------------------------------------------------------------------ saving
    def _stage_archive(self, transaction: Transaction, case_id: str) -> int:
        """Stage a copy of the current version of a case as history/CASE/vN; returns N (0 if none existed).

        Files are hard-linked (copied where links are impossible), never moved, so the
        case stays complete in labelsTr until the new files replace them at the commit.
        """
        paths = self._paths(case_id)
        if not paths["label"].exists():
            return 0
        version = max(self.versions(case_id), default=0) + 1
        target = self.root / HISTORY / case_id / f"v{version}"
        for role, path in paths.items():
            if path.exists():
                # the proposal has the label's file name: keep it apart (it used to overwrite the label)
                name = f"{case_id}_original{FILE_ENDING}" if role == "original" else path.name
                transaction.link(path, target / name)
        return version

    def save_case(
        self,
        volume: Volume,
        label_map: LabelMap,
        original: LabelMap | None = None,
        detections: list[Detection] | None = None,
        provenance: dict | None = None,
        case_id: str | None = None,
    ) -> CaseRecord:
        """Write (or add a new version of) one case; earlier versions go to history/.

        All or nothing: the case's files, its history entry, dataset.json and the
        annotations.jsonl record are committed together under the dataset's lock, or
        (full disk, crash, an error) the dataset stays exactly as it was. A second
        process saving meanwhile is waited for (``lock_timeout``), then named in a
        ``DatasetLockedError``.

        ``provenance`` is merged into the annotations.jsonl record (annotator, model,
        timestamps...); medviewer adds the case id, version, the hashed series UID,
        label names, labels whose value had to change (``remapped_labels``) and the
        voxels added/removed relative to ``original``.
        """
        geometry = volume.geometry
        geometry.require_match(label_map.geometry, f"label map '{label_map.name}'")
        if original is not None:
            geometry.require_match(original.geometry, f"original label map '{original.name}'")
        if np.issubdtype(volume.array.dtype, np.floating) and np.isnan(volume.array).any():
            raise DatasetError("the image holds NaN voxels, which nnU-Net refuses")
        with DatasetLock(self.root, self.lock_timeout):
            recover(self.root)
            self._remove_stale_temporaries()
            self._json = self._read_dataset_json()  # what other processes saved meanwhile
            try:
                return self._save_locked(volume, label_map, original, detections, provenance, case_id)
            except BaseException:
                self._json = self._read_dataset_json()
                raise

    def _save_locked(self, volume, label_map, original, detections, provenance, case_id) -> CaseRecord:
        geometry = volume.geometry
        metadata = volume.metadata
        case_id = check_case_id(case_id or self.case_id_for(volume), _identifiers(volume))
        channel = volume.modality or "image"
        channels = self._json["channel_names"]
        existing_cases = self.case_ids()
        if existing_cases and channels.get("0") not in (channel, "image"):
            raise DatasetError(f"the dataset holds {channels.get('0')} images; this image is {channel}", self.root)
        channels["0"] = channel if not existing_cases or channels.get("0") == "image" else channels["0"]

        final_values = label_map.present_values()
        mapping = self.label_values_for(label_map.table, final_values, extend=True)
        final = self._apply_mapping(label_map.array, mapping)
        remapped = {
            (label_map.table[v].name if v in label_map.table else f"Label {v}"): {"from": v, "to": mapping[v]}
            for v in mapping if mapping[v] != v
        }
        original_array = None
        original_names: dict[str, int] = {}
        if original is not None:
            original_mapping = self.label_values_for(original.table, original.present_values(), extend=False)
            original_array = self._apply_mapping(original.array, original_mapping)
            original_names = {
                (original.table[v].name if v in original.table else f"Label {v}"): original_mapping[v]
                for v in original_mapping
            }
        transaction = Transaction(self.root, unchanged="the dataset is unchanged")
        try:
            version = self._stage_archive(transaction, case_id) + 1
            paths = self._paths(case_id)
            _stage_image(transaction, paths["image"], volume.array, geometry)
            _stage_image(transaction, paths["label"], final, geometry)
            if original_array is not None:
                _stage_image(transaction, paths["original"], original_array, geometry)
            else:
                transaction.remove(paths["original"])  # a stale proposal of an earlier version
            detection_path = None
            if detections is None:
                transaction.remove(paths["detections"])
            else:
                detection_path = paths["detections"]
                transaction.write_text(
                    detection_path,
                    _json_dump(
                        {
                            "case_id": case_id,
                            "geometry": geometry.to_dict(),
                            "detections": [d.to_dict(geometry) for d in detections],
                        }
                    ),
                )
            self._json["numTraining"] = len(set(existing_cases) | {case_id})
            transaction.write_text(self.root / "dataset.json", _json_dump(self._json))
            record = {
                "case_id": case_id,
                "version": version,
                "saved_at": _now(),
                "series_uid_sha256": self.hash_uid(metadata.series_uid) if metadata.series_uid else None,
                "modality": volume.modality,
                "geometry": {"size": list(geometry.size), "spacing": list(geometry.spacing)},
                "labels": {name: value for name, value in self.labels.items() if value in set(mapping.values())},
                "voxels": self._change_counts(final, original_array),
                "detections": len(detections) if detections is not None else None,
            }
            if remapped:
                record["remapped_labels"] = remapped
            if original is not None:
                record["original_labels"] = original_names
                record["original_source"] = original.source
            record.update(provenance or {})
            self._stage_provenance(transaction, record)
        except BaseException:
            transaction.rollback()
            raise
        transaction.commit()
        return CaseRecord(
            case_id, version, paths["image"], paths["label"],
            paths["original"] if original_array is not None else None, detection_path, record,
        )

    @staticmethod
    def _change_counts(final: np.ndarray, original: np.ndarray | None) -> dict:
        counts = {"labelled": int(np.count_nonzero(final))}
        if original is None:
            return counts
        changed = final != original
        counts.update(
            added=int(np.count_nonzero(changed & (original == 0))),
            removed=int(np.count_nonzero(changed & (final == 0))),
            relabelled=int(np.count_nonzero(changed & (original != 0) & (final != 0))),
            proposed=int(np.count_nonzero(original)),
        )
        return counts

    def _stage_provenance(self, transaction: Transaction, record: dict) -> None:
        """Append one line to annotations.jsonl at the commit (O_APPEND: earlier lines are never rewritten)."""
        path = self.root / PROVENANCE_FILE
        line = json.dumps(record, sort_keys=False) + "\n"
        if path.is_file() and path.stat().st_size:
            with open(path, "rb") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = "\n" + line
        transaction.append(path, line.encode("utf-8"))

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed save left behind (nnU-Net would take them for cases).

        Called only under the dataset's lock, after :func:`recover`: no other live
        process has files in flight then.
        """
        folders = [self.root, *(self.root / f for f in (IMAGES, LABELS, ORIGINALS, DETECTIONS))]
        history = self.root / HISTORY
        versions = [v for case in history.iterdir() if case.is_dir() for v in case.iterdir() if v.is_dir()] if history.is_dir() else []
        remove_debris(folders + versions)
        for folder in versions:
            if not any(folder.iterdir()):  # a version folder made by a save that died before its commit
                folder.rmdir()

    # ------------------------------------------------------------------ reading
    def load_case(self, case_id: str) -> tuple[Volume, LabelMap]:
        """Image and FINAL label of a case; ``DatasetError`` naming the case when files are missing or disagree."""
        paths = self._paths(case_id)
        image, geometry = _read_image(paths["image"], case_id, "image")
        label, label_geometry = _read_image(paths["label"], case_id, "label")
        self._check_geometry(case_id, geometry, label_geometry, image.shape, label.shape, paths["label"])
        volume = Volume(image, geometry, self.channel_names.get("0", ""), name=case_id)
        return volume, LabelMap(label, geometry, self.label_table(), name=f"{case_id} labels", source="dataset")

    def load_original(self, case_id: str) -> LabelMap | None:
        """The model's proposal saved with the case, or None."""
        path = self._paths(case_id)["original"]
        if not path.exists():
            return None
        image_path = self._paths(case_id)["image"]
        _, geometry = _read_image(image_path, case_id, "image")
        array, original_geometry = _read_image(path, case_id, "original label")
        self._check_geometry(case_id, geometry, original_geometry, geometry.shape, array.shape, path)
        return LabelMap(array, geometry, self.label_table(), name=f"{case_id} original", source="dataset original")

    def load_detections(self, case_id: str) -> list[Detection]:
        path = self._paths(case_id)["detections"]
        if not path.exists():
            return []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return [Detection.from_dict(d) for d in data["detections"]]
        except (ValueError, KeyError, TypeError) as error:
            raise DatasetError(f"case {case_id}: the detections file is malformed ({error})", path) from None

    def label_table(self) -> LabelTable:
        return LabelTable.from_names({v: n for n, v in self.labels.items() if v != 0})

    @staticmethod
    def _check_geometry(case_id, geometry, other, shape, other_shape, path) -> None:
        problems = geometry.differences(other, GEOMETRY_TOLERANCE)
        if tuple(shape) != tuple(other_shape):
            problems.insert(0, f"shape {tuple(other_shape)} != {tuple(shape)}")
        if problems:
            raise DatasetError(f"case {case_id}: the label does not match its image: " + "; ".join(problems), path)

    # ------------------------------------------------------------------ integrity
    def problems(self, read_files: bool = True) -> list[str]:
        """Violations of nnU-Net's dataset rules (empty when the dataset is valid)."""
        problems = []
        if not DATASET_FOLDER_RE.match(self.root.name):
            problems.append(f"folder name {self.root.name!r} is not DatasetNNN_Name")
        data = self._read_dataset_json()
        labels = data["labels"]
        values = sorted(int(v) for v in labels.values())
        if labels.get("background") != 0:
            problems.append("labels must map 'background' to 0")
        if values != list(range(len(values))):
            problems.append(f"label values must be consecutive from 0, got {values}")
        channels = data["channel_names"]
        if sorted(channels) != [str(i) for i in range(len(channels))]:
            problems.append(f"channel_names keys must be '0'..'{len(channels) - 1}'")
        image_files = [p.name for p in (self.root / IMAGES).iterdir()] if (self.root / IMAGES).is_dir() else []
        label_files = [p.name for p in (self.root / LABELS).iterdir()] if (self.root / LABELS).is_dir() else []
        pattern = re.compile(r"^(.+)_(\d{4})" + re.escape(FILE_ENDING) + "$")
        cases: dict[str, set[int]] = {}
        for name in image_files:
            match = pattern.match(name)
            if not match:
                problems.append(f"imagesTr/{name} is not named CASE_XXXX{FILE_ENDING}")
                continue
            cases.setdefault(match.group(1), set()).add(int(match.group(2)))
        for case, found in sorted(cases.items()):
            if found != set(range(len(channels))):
                problems.append(f"case {case}: channels {sorted(found)} do not match channel_names")
        if data["numTraining"] != len(cases):
            problems.append(f"numTraining is {data['numTraining']} but imagesTr holds {len(cases)} cases")
        label_cases = {n[: -len(FILE_ENDING)] for n in label_files if n.endswith(FILE_ENDING)}
        for name in label_files:
            if not name.endswith(FILE_ENDING) or name.startswith("."):
                problems.append(f"labelsTr/{name} is not a {FILE_ENDING} label file")
        for case in sorted(set(cases) - label_cases):
            problems.append(f"case {case}: labelsTr/{case}{FILE_ENDING} is missing")
        for case in sorted(label_cases - set(cases)):
            problems.append(f"labelsTr/{case}{FILE_ENDING} has no image")
        if read_files:
            allowed = set(values)
            for case in sorted(set(cases) & label_cases):
                try:
                    image, geometry = _read_image(self._paths(case)["image"], case, "image")
                    label, label_geometry = _read_image(self._paths(case)["label"], case, "label")
                    self._check_geometry(case, geometry, label_geometry, image.shape, label.shape, "")
                except DatasetError as error:
                    problems.append(error.message)
                    continue
                if np.issubdtype(image.dtype, np.floating) and np.isnan(image).any():
                    problems.append(f"case {case}: the image holds NaN")
                unexpected = sorted(set(np.unique(label).tolist()) - allowed)
                if unexpected:
                    problems.append(f"case {case}: label values {unexpected} are not in dataset.json")
        return problems

    def check(self) -> None:
        """Raise ``DatasetError`` listing every problem, if any."""
        problems = self.problems()
        if problems:
            raise DatasetError("the dataset breaks nnU-Net's rules: " + "; ".join(problems), self.root)


def list_datasets(parent: str | os.PathLike[str]) -> list[Path]:
    """``DatasetNNN_Name`` folders with a dataset.json under ``parent``."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if DATASET_FOLDER_RE.match(p.name) and (p / "dataset.json").is_file())
