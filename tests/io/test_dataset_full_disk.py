"""A full disk during a dataset save leaves the dataset exactly as it was; with room, fully updated.

Real tmpfs mounts (root only; skipped otherwise), swept over free-space levels from
nothing to more than a whole save needs. Before the fix SimpleITK's silent short
NIfTI writes replaced good cases with truncated ones.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core import Detection, Geometry, LabelMap, LabelTable, Volume, VolumeMetadata
from medviewer.io.atomic import DiskFullError
from medviewer.io.nnunet_dataset import NnUNetDataset
from small_disk import fill_to, free_bytes, gunzip_ok, small_disk, snapshot

GEOMETRY = Geometry((24, 20, 10), (0.8, 0.8, 2.0), (-10.0, 5.0, 30.0))
LEVELS = 10  # free-space levels below what a save needs (plus two above)


def _volume(uid: str, seed: int) -> Volume:
    rng = np.random.default_rng(seed)  # noise: it does not compress, so the files have real size
    array = rng.integers(-1000, 2000, GEOMETRY.shape).astype(np.int16)
    return Volume(array, GEOMETRY, "CT", VolumeMetadata(series_uid=uid))


def _labels(seed: int, names: dict[int, str]) -> LabelMap:
    rng = np.random.default_rng(100 + seed)
    array = rng.integers(0, len(names) + 1, GEOMETRY.shape).astype(np.uint8)
    values = sorted(names)
    lut = np.array([0, *values], np.uint8)
    return LabelMap(lut[array], GEOMETRY, LabelTable.from_names(names), source="manual")


def _saves():
    """Two saves to try on a dataset holding one case: a new version of it (with proposal and
    boxes and a new label) and a new case."""
    second_version = (_volume("1.2.3.1", 1), _labels(1, {1: "liver", 2: "spleen"}), _labels(2, {1: "liver"}),
                      [Detection((0.0, 10.0, 40.0), (4.0, 4.0, 4.0), "lesion")])
    new_case = (_volume("1.2.3.2", 3), _labels(3, {5: "kidney"}), None, None)
    return {"new version": second_version, "new case": new_case}


def _baseline(folder) -> NnUNetDataset:
    dataset = NnUNetDataset.create_or_open(folder, 601, "FullDisk", "CT")
    dataset.save_case(_volume("1.2.3.1", 0), _labels(0, {1: "liver"}), provenance={"annotator": "a"},
                      detections=[Detection((0.0, 0.0, 40.0), (2.0, 2.0, 2.0), "lesion")])
    return dataset


def _check_fully_updated(dataset: NnUNetDataset, before: dict, save, record) -> None:
    volume, labels, original, detections = save
    reopened = NnUNetDataset(dataset.root)
    assert reopened.problems() == []
    image, label = reopened.load_case(record.case_id)
    np.testing.assert_array_equal(image.array, volume.array)
    names = reopened.labels
    for value in labels.present_values():
        np.testing.assert_array_equal(label.array == names[labels.table[value].name], labels.array == value)
    if original is not None:
        proposal = reopened.load_original(record.case_id)
        assert int(np.count_nonzero(proposal.array)) == int(np.count_nonzero(original.array))
        assert len(reopened.load_detections(record.case_id)) == len(detections)
        assert reopened.versions(record.case_id) == [1]
        old = json.loads(before["annotations.jsonl"].decode().splitlines()[0])
        kept = dataset.root / "history" / record.case_id / "v1" / f"{record.case_id}.nii.gz"
        assert kept.read_bytes() == before[f"labelsTr/{record.case_id}.nii.gz"] and old["version"] == 1
    data = json.loads((dataset.root / "dataset.json").read_text())
    assert data["numTraining"] == len(reopened.case_ids()) == (1 if original is not None else 2)
    lines = (dataset.root / "annotations.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[-1])["case_id"] == record.case_id
    assert not [p for p in dataset.root.rglob(".*")], "no temporary files are left"
    for path in dataset.root.rglob("*.nii.gz"):
        assert gunzip_ok(path.read_bytes()), path


@pytest.mark.parametrize("which", ["new version", "new case"])
def test_full_disk_sweep_leaves_dataset_unchanged_or_complete(tmp_path, which):
    save = _saves()[which]
    baseline = tmp_path / "baseline"
    _baseline(baseline)
    root_name = "Dataset601_FullDisk"
    with small_disk(tmp_path / "disk", 768) as disk:
        # what one save needs: measured on the same disk with plenty of room
        shutil.copytree(baseline / root_name, disk / root_name)
        start = free_bytes(disk)
        NnUNetDataset(disk / root_name).save_case(*save[:2], original=save[2], detections=save[3])
        # at its peak a save also holds the lock file, the journal and the new dataset.json
        # beside the old one: a page each on tmpfs
        peak = start - free_bytes(disk) + 3 * 4096
        assert peak > 20_000
        failures = successes = 0
        levels = [*np.linspace(0, peak - 4096, LEVELS).astype(int), peak + 4096, 3 * peak]
        for level in levels:
            shutil.rmtree(disk / root_name)
            (disk / "filler.bin").unlink(missing_ok=True)
            shutil.copytree(baseline / root_name, disk / root_name)
            dataset = NnUNetDataset(disk / root_name)
            before = snapshot(dataset.root)
            fill_to(disk, int(level))
            try:
                record = dataset.save_case(*save[:2], original=save[2], detections=save[3], provenance={"annotator": "b"})
            except DiskFullError as error:
                failures += 1
                assert "disk is full (ENOSPC)" in str(error) and "the dataset is unchanged" in str(error)
                assert snapshot(dataset.root) == before, f"the dataset changed at {level} bytes free"
                assert NnUNetDataset(dataset.root).problems() == []
                (disk / "filler.bin").unlink()
                # the failed save can simply be repeated once there is room
                record = dataset.save_case(*save[:2], original=save[2], detections=save[3])
            else:
                successes += 1
            _check_fully_updated(dataset, before, save, record)
        assert failures >= LEVELS - 2 and successes >= 2, (failures, successes)


def test_full_disk_message_reaches_the_caller_for_the_first_save(tmp_path):
    """A brand-new dataset on a full disk: nothing half-made is left that looks like a case."""
    with small_disk(tmp_path / "disk", 256) as disk:
        dataset = NnUNetDataset.create_or_open(disk, 602, "Empty", "CT")
        before = snapshot(dataset.root)
        fill_to(disk, 0)
        with pytest.raises(DiskFullError, match=r"ENOSPC.*the dataset is unchanged"):
            dataset.save_case(_volume("1.2.3.9", 9), _labels(9, {1: "liver"}))
        assert snapshot(dataset.root) == before
        assert NnUNetDataset(dataset.root).case_ids() == []


def test_a_short_nifti_write_is_never_accepted(tmp_path, monkeypatch):
    """Without a tmpfs: SimpleITK 'succeeds' but leaves a short file (as on ENOSPC); the case is kept."""
    dataset = _baseline(tmp_path)
    before = snapshot(dataset.root)
    real_write = sitk.WriteImage

    def short_write(image, path, *args, **kwargs):
        real_write(image, path, *args, **kwargs)
        with open(path, "rb+") as handle:
            handle.truncate(max(handle.seek(0, 2) // 2, 1))

    monkeypatch.setattr(sitk, "WriteImage", short_write)
    save = _saves()["new version"]
    with pytest.raises(Exception, match="the dataset is unchanged") as raised:
        dataset.save_case(*save[:2], original=save[2], detections=save[3])
    assert "incomplete" in str(raised.value) or "ENOSPC" in str(raised.value)
    assert snapshot(dataset.root) == before


def test_a_read_only_disk_is_named_and_nothing_changes(tmp_path):
    import subprocess

    from medviewer.io.atomic import WriteFailedError

    with small_disk(tmp_path / "disk", 512) as disk:
        dataset = _baseline(disk)
        before = snapshot(dataset.root)
        if subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount the tmpfs read-only")
        save = _saves()["new case"]
        with pytest.raises(WriteFailedError, match=r"Read-only file system\); the dataset is unchanged"):
            NnUNetDataset(dataset.root).save_case(*save[:2])
        assert snapshot(dataset.root) == before
        assert NnUNetDataset(dataset.root).problems() == []
