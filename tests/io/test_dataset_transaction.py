"""A dataset save is all or nothing: a failure, or a kill in the middle of the commit, leaves the dataset as it was."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import medviewer
from medviewer.core import Detection, Geometry, LabelMap, LabelTable, Volume, VolumeMetadata
from medviewer.io import transaction
from medviewer.io.atomic import DiskFullError
from medviewer.io.nnunet_dataset import NnUNetDataset
from medviewer.io.transaction import JOURNAL_NAME
from small_disk import snapshot

GEOMETRY = Geometry((14, 12, 5), (1.0, 1.0, 2.5), (3.0, -4.0, 20.0))


def _case(seed: int, names: dict[int, str]) -> tuple[Volume, LabelMap]:
    rng = np.random.default_rng(seed)
    volume = Volume(rng.integers(-500, 500, GEOMETRY.shape).astype(np.int16), GEOMETRY, "CT",
                    VolumeMetadata(series_uid="1.2.77.1"))
    array = rng.integers(0, len(names) + 1, GEOMETRY.shape).astype(np.uint8)
    lut = np.array([0, *sorted(names)], np.uint8)
    return volume, LabelMap(lut[array], GEOMETRY, LabelTable.from_names(names))


def _dataset(tmp_path: Path) -> NnUNetDataset:
    dataset = NnUNetDataset.create_or_open(tmp_path, 620, "Commit", "CT")
    volume, labels = _case(0, {1: "liver"})
    dataset.save_case(volume, labels, original=labels, detections=[Detection((3.0, 2.0, 25.0), (2.0, 2.0, 2.0))])
    return dataset


def test_a_failure_in_the_middle_of_the_commit_restores_every_file(tmp_path, monkeypatch):
    dataset = _dataset(tmp_path)
    before = snapshot(dataset.root)
    real_replace = os.replace
    calls = []

    def failing_replace(source, target):
        calls.append(target)
        if len(calls) == 7:  # history (4 files), image and label are in place; the proposal is not
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(transaction.os, "replace", failing_replace)
    volume, labels = _case(1, {1: "liver", 2: "kidney"})
    with pytest.raises(DiskFullError, match=r"ENOSPC.*the dataset is unchanged"):
        dataset.save_case(volume, labels, original=labels, detections=[])
    monkeypatch.setattr(transaction.os, "replace", real_replace)
    assert len(calls) >= 7  # and the rollback's own replaces
    assert snapshot(dataset.root) == before
    assert dataset.labels == {"background": 0, "liver": 1}, "the label added by the failed save is forgotten"


KILLED = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_dataset_transaction import _case
    from medviewer.io import transaction
    from medviewer.io.nnunet_dataset import NnUNetDataset

    real_replace, real_append, calls = os.replace, transaction._append, []
    stop_after = int(sys.argv[3])

    def replace(source, target):
        calls.append(target)
        if len(calls) > stop_after:
            os._exit(9)  # a kill -9 in the middle of the commit
        real_replace(source, target)

    def append(target, data):
        real_append(target, data[: len(data) // 2])  # half the provenance line reaches the disk
        os._exit(9)

    transaction.os.replace = replace
    if stop_after < 0:
        transaction._append = append
    volume, labels = _case(2, {1: "liver", 3: "spleen"})
    NnUNetDataset(sys.argv[1]).save_case(volume, labels, detections=[])
    """
)


@pytest.mark.parametrize("stop_after", [0, 3, 6, -1])
def test_a_kill_during_the_commit_is_rolled_back_on_the_next_open(tmp_path, stop_after):
    dataset = _dataset(tmp_path)
    before = snapshot(dataset.root)
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    env = dict(os.environ, PYTHONPATH=str(Path(medviewer.__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, str(script), str(dataset.root), str(Path(__file__).parent), str(stop_after)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 9, result.stderr
    assert (dataset.root / JOURNAL_NAME).exists() and snapshot(dataset.root) != before
    reopened = NnUNetDataset(dataset.root)  # rolls back under the (stale) lock
    assert snapshot(dataset.root) == before
    assert reopened.problems() == [] and len(reopened.provenance()) == 1
    volume, labels = _case(2, {1: "liver", 3: "spleen"})
    record = reopened.save_case(volume, labels)
    assert record.version == 2 and len(reopened.provenance()) == 2
    assert reopened.labels == {"background": 0, "liver": 1, "spleen": 2}


def test_debris_of_a_save_killed_before_its_commit_is_removed(tmp_path):
    dataset = _dataset(tmp_path)
    case = dataset.case_ids()[0]
    before = snapshot(dataset.root)
    # what a kill while staging leaves: staged files, a backup link, an unfinished history version
    (dataset.root / "imagesTr" / f".{case}_0000.nii.gz.x1.part.nii.gz").write_bytes(b"half")
    os.link(dataset.root / "labelsTr" / f"{case}.nii.gz", dataset.root / "labelsTr" / f".{case}.nii.gz.x2.bak")
    (dataset.root / "history" / case / "v1").mkdir(parents=True)
    (dataset.root / "history" / case / "v1" / f".{case}.nii.gz.x3.part.nii.gz").write_bytes(b"")
    volume, labels = _case(0, {1: "liver"})
    record = dataset.save_case(volume, labels)
    assert record.version == 2 and dataset.versions(case) == [1]
    assert not [p for p in dataset.root.rglob(".*")]
    kept = dataset.root / "history" / case / "v1" / f"{case}.nii.gz"
    assert kept.read_bytes() == before[f"labelsTr/{case}.nii.gz"]
