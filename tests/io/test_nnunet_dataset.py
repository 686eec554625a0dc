"""nnU-Net v2 dataset writer/reader: naming, dataset.json rules, versions, provenance, anonymity."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core import Detection, Geometry, LabelMap, LabelTable, Volume, VolumeMetadata
from medviewer.core.errors import DatasetError, GeometryMismatchError
from medviewer.io.nnunet_dataset import NnUNetDataset, check_case_id, dataset_folder_name, list_datasets

IDENTIFIERS = ("Doe", "John", "PAT12345", "1.2.826.0.1.3680043.2.1125.77", "1.2.826.0.1.3680043.2.1125.78")


def make_volume(series_uid: str = "1.2.826.0.1.3680043.2.1125.78", seed: int = 0) -> Volume:
    geometry = Geometry((12, 10, 6), (0.7, 0.8, 2.5), (-30.0, 12.5, 88.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    rng = np.random.default_rng(seed)
    array = rng.integers(-1000, 1500, geometry.shape).astype(np.int16)
    metadata = VolumeMetadata(patient_id="PAT12345", patient_name="Doe^John",
                              study_uid="1.2.826.0.1.3680043.2.1125.77", series_uid=series_uid)
    return Volume(array, geometry, "CT", metadata)


def make_labels(volume: Volume) -> LabelMap:
    array = np.zeros(volume.geometry.shape, np.uint8)
    array[1:4, 2:6, 3:9] = 3  # 3 x 4 x 6 = 72 voxels of "liver"
    array[2, 3:5, 4:6] = 7  # 4 voxels of "tumour"
    return LabelMap(array, volume.geometry, LabelTable.from_names({3: "liver", 7: "tumour"}), source="manual")


def _nifti_header(path) -> bytes:
    with gzip.open(path) as handle:
        return handle.read(348)


def _all_bytes(root) -> dict[str, bytes]:
    contents = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            contents[str(path.relative_to(root))] = gzip.decompress(data) if path.name.endswith(".gz") else data
    return contents


def test_first_case_follows_nnunet_rules(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 501, "Liver", "CT")
    assert dataset.root.name == "Dataset501_Liver"
    volume = make_volume()
    record = dataset.save_case(volume, make_labels(volume), provenance={"annotator": "A. Nurse"})
    case = record.case_id
    assert re.fullmatch(r"case_[0-9a-f]{12}", case)
    assert record.image.name == f"{case}_0000.nii.gz" and record.image.parent.name == "imagesTr"
    assert record.label.name == f"{case}.nii.gz" and record.label.parent.name == "labelsTr"
    data = json.loads((dataset.root / "dataset.json").read_text())
    assert data["labels"] == {"background": 0, "liver": 1, "tumour": 2}
    assert data["channel_names"] == {"0": "CT"} and data["numTraining"] == 1 and data["file_ending"] == ".nii.gz"
    assert dataset.problems() == []
    # the label file holds consecutive dataset values
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(record.label)))
    assert (labels == 1).sum() == 72 - 4 and (labels == 2).sum() == 4 and set(np.unique(labels)) == {0, 1, 2}
    assert list_datasets(tmp_path) == [dataset.root]


def test_round_trip_is_bit_exact_with_geometry(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 502, "RoundTrip")
    volume = make_volume()
    record = dataset.save_case(volume, make_labels(volume))
    image, label_map = dataset.load_case(record.case_id)
    np.testing.assert_array_equal(image.array, volume.array)
    assert image.array.dtype == np.int16
    assert image.geometry.is_close(volume.geometry, 1e-6) and label_map.geometry.is_close(volume.geometry, 1e-6)
    assert label_map.voxel_count(1) == 68 and label_map.table[1].name == "liver" and label_map.table[2].name == "tumour"


def test_no_identifier_in_file_names_or_contents(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 503, "Anon")
    volume = make_volume()
    original = make_labels(volume)
    original.source = "liver-seg 1.0"
    boxes = [Detection((-33.0, 9.0, 93.0), (3.0, 3.0, 5.0), label="lesion", source="liver-seg 1.0")]
    record = dataset.save_case(volume, make_labels(volume), original=original, detections=boxes,
                               provenance={"annotator": "reader-1"})
    contents = _all_bytes(dataset.root)
    assert len(contents) >= 7
    for name, data in contents.items():
        for identifier in IDENTIFIERS:
            assert identifier not in name
            assert identifier.encode() not in data, f"{identifier} found in {name}"
    for path in (record.image, record.label, record.original):
        header = _nifti_header(path)
        assert header[148:228] == b"\x00" * 80  # descrip
        assert header[228:252] == b"\x00" * 24  # aux_file
    (line,) = dataset.provenance()
    assert line["series_uid_sha256"] == dataset.hash_uid(volume.metadata.series_uid)
    assert len(line["series_uid_sha256"]) == 64


def test_case_ids_are_stable_per_series_and_salted_per_dataset(tmp_path):
    first = NnUNetDataset.create_or_open(tmp_path, 504, "A")
    second = NnUNetDataset.create_or_open(tmp_path, 505, "B")
    volume = make_volume()
    assert first.case_id_for(volume) == first.case_id_for(make_volume())
    assert first.case_id_for(volume) != first.case_id_for(make_volume(series_uid="1.2.3.99"))
    assert first.case_id_for(volume) != second.case_id_for(volume)  # different salt
    no_uid = make_volume(series_uid="")
    assert first.case_id_for(no_uid) == first.case_id_for(make_volume(series_uid=""))
    assert first.case_id_for(no_uid) != first.case_id_for(make_volume(series_uid="", seed=1))


def test_saving_again_keeps_the_previous_version(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 506, "Versions")
    volume = make_volume()
    labels = make_labels(volume)
    first = dataset.save_case(volume, labels)
    first_bytes = first.label.read_bytes()
    labels.write(np.s_[5, :, :], 3)  # more liver
    second = dataset.save_case(volume, labels)
    assert second.case_id == first.case_id and (first.version, second.version) == (1, 2)
    assert dataset.versions(first.case_id) == [1]
    kept = dataset.root / "history" / first.case_id / "v1" / first.label.name
    assert kept.read_bytes() == first_bytes
    assert (dataset.root / "history" / first.case_id / "v1" / first.image.name).is_file()
    _, reloaded = dataset.load_case(first.case_id)
    assert reloaded.voxel_count(1) == 68 + 120
    assert dataset.dataset_json["numTraining"] == 1 and dataset.problems() == []
    assert [r["version"] for r in dataset.provenance(first.case_id)] == [1, 2]


def test_new_label_names_extend_labels_consecutively(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 507, "Extend")
    first = make_volume()
    dataset.save_case(first, make_labels(first))
    second = make_volume(series_uid="1.2.3.4.2", seed=2)
    array = np.zeros(second.geometry.shape, np.uint8)
    array[0, 0, 0:3] = 1
    array[0, 1, 0:2] = 2
    dataset.save_case(second, LabelMap(array, second.geometry, LabelTable.from_names({1: "tumour", 2: "cyst"})))
    assert dataset.labels == {"background": 0, "liver": 1, "tumour": 2, "cyst": 3}
    assert dataset.dataset_json["numTraining"] == 2 and len(dataset.case_ids()) == 2
    assert dataset.problems() == []


def test_original_kept_and_changes_counted(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 508, "Provenance")
    volume = make_volume()
    original = make_labels(volume)
    original.source = "liver-seg 2.1"
    final = original.copy()
    final.write(np.s_[1, 2, 3:9], 0)  # remove 6 liver voxels
    final.write(np.s_[5, 0, 0:10], 3)  # add 10
    final.write(np.s_[2, 3, 4], 3)  # tumour voxel relabelled as liver
    record = dataset.save_case(volume, final, original=original, provenance={"annotator": "reader-2"})
    assert record.original is not None and record.original.parent.name == "labelsOriginal"
    assert dataset.load_original(record.case_id).voxel_count(2) == 4
    voxels = record.provenance["voxels"]
    assert voxels == {"labelled": 72 - 6 + 10, "added": 10, "removed": 6, "relabelled": 1, "proposed": 72}
    assert record.provenance["annotator"] == "reader-2" and record.provenance["original_source"] == "liver-seg 2.1"


def test_detections_file_has_world_and_voxel_boxes(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 509, "Boxes")
    volume = make_volume()
    box = Detection.from_index_bounds(volume.geometry, [1.5, 2.5, 0.5], [4.5, 5.5, 2.5], label="nodule",
                                      status="accepted", source="det 1.0", score=0.9)
    record = dataset.save_case(volume, make_labels(volume), detections=[box])
    data = json.loads(record.detections.read_text())
    (saved,) = data["detections"]
    np.testing.assert_allclose(saved["center_mm"], box.center)
    assert saved["voxel_min"] == [2, 3, 1] and saved["voxel_max"] == [4, 5, 2]
    assert saved["status"] == "accepted" and saved["label"] == "nodule" and saved["source"] == "det 1.0"
    assert dataset.load_detections(record.case_id) == [box]


def test_label_naming_errors(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 510, "Errors")
    volume = make_volume()
    labels = make_labels(volume)
    labels.table[7].name = "liver"
    with pytest.raises(DatasetError, match="both named 'liver'"):
        dataset.save_case(volume, labels)
    labels.table[7].name = "background"
    with pytest.raises(DatasetError, match="reserves"):
        dataset.save_case(volume, labels)
    assert dataset.labels == {"background": 0} and dataset.case_ids() == []
    wrong = LabelMap(np.zeros(volume.geometry.shape, np.uint8), volume.geometry.replace(spacing=(1, 1, 1)))
    with pytest.raises(GeometryMismatchError):
        dataset.save_case(volume, wrong)
    nan_volume = Volume(np.full(volume.geometry.shape, np.nan, np.float32), volume.geometry, "CT")
    with pytest.raises(DatasetError, match="NaN"):
        dataset.save_case(nan_volume, make_labels(volume))


def test_case_id_rules():
    assert check_case_id("case_0a1b2c") == "case_0a1b2c"
    for bad in ("case_0001", "a b", "x.y", "_lead", "double__underscore"):
        with pytest.raises(DatasetError):
            check_case_id(bad)
    with pytest.raises(DatasetError, match="identifier"):
        check_case_id("doe_liver", ["Doe^John", "PAT12345"])
    # UID roots (1.2.826..., 1.2.840...) are in every UID: a hash that contains "826" is no leak (was a 1-in-400 CI failure)
    uid = "1.2.826.0.1.3680043.2.1125.78"
    assert check_case_id("case_e826927c0b79", [uid]) == "case_e826927c0b79"
    with pytest.raises(DatasetError, match="identifier"):
        check_case_id("case_3680043", [uid])


def test_generated_case_id_never_spells_the_patient(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 511, "Spelling")
    volume = make_volume()
    first_choice = dataset.hash_uid(volume.metadata.series_uid)[:12]
    volume.metadata.patient_name = f"{first_choice[3:7]}^Ann"  # the hash's first window spells the name
    case_id = dataset.case_id_for(volume)
    assert first_choice[3:7] not in case_id and re.fullmatch(r"case_[0-9a-f]{12}", case_id)
    assert dataset.case_id_for(volume) == case_id  # stable, so saving again finds the same case
    assert dataset.save_case(volume, make_labels(volume)).case_id == case_id
    with pytest.raises(DatasetError):
        dataset_folder_name(1000, "X")
    with pytest.raises(DatasetError):
        dataset_folder_name(5, "bad name")


def test_reader_errors_name_the_case(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 511, "Broken")
    volume = make_volume()
    case = dataset.save_case(volume, make_labels(volume)).case_id
    label_path = dataset.root / "labelsTr" / f"{case}.nii.gz"
    # a label with another origin
    bad = sitk.ReadImage(str(label_path))
    bad.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(bad, str(label_path))
    with pytest.raises(DatasetError, match=f"case {case}: the label does not match its image: origin"):
        dataset.load_case(case)
    assert any("origin" in p for p in dataset.problems())
    label_path.unlink()
    with pytest.raises(DatasetError, match=f"case {case}: the label file is missing"):
        dataset.load_case(case)
    problems = dataset.problems()
    assert any(f"labelsTr/{case}.nii.gz is missing" in p for p in problems)


def test_problems_detects_broken_dataset_json_and_stray_files(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 512, "Rules")
    volume = make_volume()
    dataset.save_case(volume, make_labels(volume))
    data = dataset.dataset_json
    data["labels"] = {"background": 0, "liver": 1, "tumour": 3}
    data["numTraining"] = 4
    (dataset.root / "dataset.json").write_text(json.dumps(data))
    (dataset.root / "imagesTr" / "stray.nii.gz").write_bytes(b"")
    problems = NnUNetDataset(dataset.root).problems(read_files=False)
    assert any("consecutive" in p for p in problems)
    assert any("numTraining is 4" in p for p in problems)
    assert any("stray.nii.gz is not named" in p for p in problems)
    with pytest.raises(DatasetError, match="nnU-Net's rules"):
        NnUNetDataset(dataset.root).check()
    with pytest.raises(DatasetError, match="dataset.json is missing"):
        NnUNetDataset(tmp_path)


def test_stale_temporary_files_are_removed_on_save(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 513, "Temp")
    stale = dataset.root / "imagesTr" / ".case_x_0000.nii.gz.abc123.part.nii.gz"
    stale.write_bytes(b"partial")
    volume = make_volume()
    dataset.save_case(volume, make_labels(volume))
    assert not stale.exists() and dataset.problems() == []


def test_nnunet_integrity_check_passes_when_nnunetv2_is_installed(tmp_path, monkeypatch):
    """nnU-Net's own verify_dataset_integrity accepts the dataset (skipped where nnunetv2 is absent).

    nnunetv2 pulls a CUDA torch, so it is not a test dependency; with it on PYTHONPATH this runs.
    """
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity").verify_dataset_integrity
    dataset = NnUNetDataset.create_or_open(tmp_path, 503, "Integrity", "CT")
    for seed, uid in enumerate(("1.2.826.0.1.3680043.2.1125.91", "1.2.826.0.1.3680043.2.1125.92")):
        volume = make_volume(uid, seed)
        labels = make_labels(volume)
        dataset.save_case(volume, labels, original=labels, detections=[])
    volume = make_volume("1.2.826.0.1.3680043.2.1125.91", 0)
    dataset.save_case(volume, make_labels(volume))  # a second version of the first case
    verify(str(dataset.root), 1)
    # the check is real: a label file that disappears makes it fail
    next((dataset.root / "labelsTr").glob("*.nii.gz")).unlink()
    with pytest.raises(Exception):
        verify(str(dataset.root), 1)


def test_history_keeps_the_label_and_the_proposal_apart(tmp_path):
    """Both are named CASE.nii.gz; the archived proposal used to overwrite the archived label."""
    dataset = NnUNetDataset.create_or_open(tmp_path, 514, "History")
    volume = make_volume()
    final = make_labels(volume)
    proposal = LabelMap(np.where(final.array == 7, 0, final.array).astype(np.uint8), volume.geometry, final.table)
    first = dataset.save_case(volume, final, original=proposal)
    label_bytes, original_bytes = first.label.read_bytes(), first.original.read_bytes()
    dataset.save_case(volume, proposal)
    kept = dataset.root / "history" / first.case_id / "v1"
    assert (kept / first.label.name).read_bytes() == label_bytes
    assert (kept / f"{first.case_id}_original.nii.gz").read_bytes() == original_bytes
    assert dataset.load_original(first.case_id) is None  # the new version has no proposal
