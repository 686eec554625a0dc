"""Files a dataset save has in flight are invisible to nnU-Net, which takes every ``imagesTr/*.nii.gz`` for a case."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from medviewer.core import Geometry, LabelMap, LabelTable, Volume, VolumeMetadata
from medviewer.io import transaction
from medviewer.io.nnunet_dataset import NnUNetDataset
from medviewer.io.transaction import JOURNAL_NAME, STAGING_NAME

GEOMETRY = Geometry((10, 9, 4), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))


def _case(seed: int, uid: str) -> tuple[Volume, LabelMap]:
    rng = np.random.default_rng(seed)
    volume = Volume(rng.integers(-100, 100, GEOMETRY.shape).astype(np.int16), GEOMETRY, "CT", VolumeMetadata(series_uid=uid))
    labels = (rng.random(GEOMETRY.shape) > 0.7).astype(np.uint8)
    return volume, LabelMap(labels, GEOMETRY, LabelTable.from_names({1: "liver"}))


# --- nnU-Net v2's own listing, copied (batchgenerators.utilities.file_and_folder_operations.subfiles and
# --- nnunetv2.utilities.utils.get_identifiers_from_splitted_dataset_folder / create_lists_from_splitted_dataset_folder)
def _subfiles(folder: str, join: bool = True, suffix: str | None = None) -> list[str]:
    return sorted((os.path.join(folder, i) if join else i) for i in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, i)) and (suffix is None or i.endswith(suffix)))


def _identifiers(folder: str, file_ending: str) -> list[str]:
    crop = len(file_ending) + 5  # the _XXXX channel index
    return sorted(set(i[:-crop] for i in _subfiles(folder, join=False, suffix=file_ending)))


def _nnunet_cases(root: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """(identifiers, image lists, label files) exactly as nnU-Net's get_filenames_of_train_images_and_targets."""
    ending = ".nii.gz"
    identifiers = _identifiers(str(root / "imagesTr"), ending)
    files = _subfiles(str(root / "imagesTr"), join=False, suffix=ending)
    images = [[i for i in files if re.fullmatch(re.escape(c) + r"_\d\d\d\d" + re.escape(ending), i)] for c in identifiers]
    labels = _subfiles(str(root / "labelsTr"), join=False, suffix=ending)
    return identifiers, images, labels


def test_a_save_in_flight_or_killed_before_its_commit_is_invisible_to_nnunet(tmp_path, monkeypatch):
    dataset = NnUNetDataset.create_or_open(tmp_path, 631, "Staging", "CT")
    first = dataset.save_case(*_case(0, "1.2.3.1"))
    expected = ([first.case_id], [[f"{first.case_id}_0000.nii.gz"]], [f"{first.case_id}.nii.gz"])
    assert _nnunet_cases(dataset.root) == expected

    seen_in_flight = []
    real_replace = os.replace

    def replace(source, target):  # the first rename of the commit: everything is staged, backups made, journal written
        if not seen_in_flight:
            assert (dataset.root / JOURNAL_NAME).exists()
            staging = dataset.root / STAGING_NAME
            seen_in_flight.append((_nnunet_cases(dataset.root), sorted(p.name for p in staging.glob("*"))))
            raise OSError(5, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(transaction.os, "replace", replace)
    with pytest.raises(Exception, match="the dataset is unchanged"):
        dataset.save_case(*_case(0, "1.2.3.1"))  # a second version of the same case: backups of its files
    monkeypatch.setattr(transaction.os, "replace", real_replace)
    listing, staged = seen_in_flight[0]
    assert listing == expected
    assert f"{first.case_id}_0000.nii.gz" in {name.split(".nii.gz.")[0] + ".nii.gz" for name in staged}
    assert any(name.endswith(".part.nii.gz") for name in staged) and any(name.endswith(".bak") for name in staged)
    assert not (dataset.root / STAGING_NAME).exists(), "the rollback leaves no staging folder"

    class Killed(BaseException):
        pass

    def killed_commit(self):  # a kill after staging, before the commit: nothing cleans up
        raise Killed()

    monkeypatch.setattr(transaction.Transaction, "commit", killed_commit)
    with pytest.raises(Killed):
        dataset.save_case(*_case(1, "1.2.3.2"))  # a new case
    monkeypatch.undo()
    leftovers = sorted(p.name for p in (dataset.root / STAGING_NAME).iterdir())
    assert len([n for n in leftovers if n.endswith(".part.nii.gz")]) == 2, leftovers  # its image and label
    assert _nnunet_cases(dataset.root) == expected
    assert NnUNetDataset(dataset.root).problems() == []

    second = dataset.save_case(*_case(1, "1.2.3.2"))  # under the lock: the debris goes
    assert not (dataset.root / STAGING_NAME).exists()
    assert _nnunet_cases(dataset.root)[0] == sorted([first.case_id, second.case_id])
    assert not [p for p in dataset.root.rglob(".*")]
