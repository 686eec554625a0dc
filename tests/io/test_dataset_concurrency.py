"""Two real processes saving into one dataset folder: every save lands, no record lost, no label renamed.

Before the dataset lock one process deleted the other's in-flight temporary files
(FileNotFoundError), provenance lines vanished in a lost read-modify-write, and the
last dataset.json won, renaming the other process's label.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import medviewer
from medviewer.core import Geometry, LabelMap, LabelTable, Volume, VolumeMetadata
from medviewer.io.dataset_lock import LOCK_NAME, DatasetLockedError
from medviewer.io.nnunet_dataset import NnUNetDataset
from small_disk import snapshot

CASES_PER_WORKER = 6
GEOMETRY = Geometry((16, 12, 6), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import numpy as np
    from medviewer.core import Geometry, LabelMap, LabelTable, Volume, VolumeMetadata
    from medviewer.io.dataset_lock import DatasetLockedError
    from medviewer.io.nnunet_dataset import NnUNetDataset

    parent, worker, count, organ, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
    geometry = Geometry((16, 12, 6), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    rng = np.random.default_rng(abs(hash(worker)) % 1000)
    while not go.exists():
        time.sleep(0.002)
    for i in range(count):
        case = f"{worker}-c{i}"
        volume = Volume(rng.integers(0, 1000, geometry.shape).astype(np.int16), geometry, "CT",
                        VolumeMetadata(series_uid=f"1.2.3.{len(worker)}.{i}"))
        array = np.zeros(geometry.shape, np.uint8)
        array[i % 6, 2:6, 3:9] = 2   # the organ: 24 voxels on slice i
        array[(i + 3) % 6, 0, 0:i + 1] = 1  # tumour: i + 1 voxels
        labels = LabelMap(array, geometry, LabelTable.from_names({1: "tumour", 2: organ}), source="manual")
        try:
            dataset = NnUNetDataset.create_or_open(parent, 610, "Shared", "CT")
            record = dataset.save_case(volume, labels, case_id=case, provenance={"worker": worker})
            print(json.dumps({"case": case, "ok": True, "labels": record.provenance["labels"],
                              "remapped": record.provenance.get("remapped_labels")}), flush=True)
        except DatasetLockedError as error:
            print(json.dumps({"case": case, "ok": False, "error": str(error)}), flush=True)
    """
)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(medviewer.__file__).resolve().parents[1])
    return env


def _run_workers(tmp_path: Path, organs: dict[str, str]) -> list[dict]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"
    processes = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / "data"), worker, str(CASES_PER_WORKER), organ, str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        for worker, organ in organs.items()
    ]
    time.sleep(1.5)  # let both import medviewer, then start them together
    go.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]
    return results


def _check_dataset(tmp_path: Path, organs: dict[str, str], results: list[dict]) -> NnUNetDataset:
    assert len(results) == CASES_PER_WORKER * len(organs)
    failed = [r for r in results if not r["ok"]]
    for result in failed:  # a save may only fail by naming the holder of the lock
        assert "being saved by another process (pid" in result["error"]
    saved = {r["case"] for r in results if r["ok"]}
    dataset = NnUNetDataset(tmp_path / "data" / "Dataset610_Shared")
    assert dataset.problems() == []
    assert set(dataset.case_ids()) == saved
    assert dataset.dataset_json["numTraining"] == len(saved)
    records = dataset.provenance()
    assert sorted(r["case_id"] for r in records) == sorted(saved), "every save has its provenance record"
    labels = dataset.labels
    assert sorted(labels.values()) == list(range(len(labels)))
    for record in records:  # no value ever meant another name
        assert all(labels[name] == value for name, value in record["labels"].items()), record
    for case in saved:
        worker, i = case.split("-c")
        i = int(i)
        _, label = dataset.load_case(case)
        organ = np.zeros(GEOMETRY.shape, bool)
        organ[i % 6, 2:6, 3:9] = True
        np.testing.assert_array_equal(label.array == labels[organs[worker]], organ)
        assert int(np.count_nonzero(label.array == labels["tumour"])) == i + 1
    assert not [p.name for p in dataset.root.rglob(".*")], "no temporary or lock files are left"
    return dataset


def test_two_processes_saving_different_cases(tmp_path):
    organs = {"a": "liver", "b": "liver"}
    results = _run_workers(tmp_path, organs)
    assert all(r["ok"] for r in results), "within the default wait every save gets its turn"
    dataset = _check_dataset(tmp_path, organs, results)
    assert dataset.labels == {"background": 0, "tumour": 1, "liver": 2}


def test_two_processes_with_different_labels_of_the_same_value(tmp_path):
    """Both give value 2 to their own new organ: one keeps 2, the other gets 3, and its cases are remapped."""
    organs = {"a": "liver", "b": "spleen"}
    results = _run_workers(tmp_path, organs)
    assert all(r["ok"] for r in results)
    dataset = _check_dataset(tmp_path, organs, results)
    labels = dataset.labels
    assert set(labels) == {"background", "tumour", "liver", "spleen"}
    assert {labels["liver"], labels["spleen"]} == {2, 3}
    moved = "liver" if labels["liver"] == 3 else "spleen"
    worker = "a" if moved == "liver" else "b"
    for record in dataset.provenance():
        if record["case_id"].startswith(worker + "-"):
            assert record["remapped_labels"][moved] == {"from": 2, "to": 3}
        else:
            assert moved not in record.get("remapped_labels", {})


HOLDER = textwrap.dedent(
    """
    import sys, time
    from medviewer.io.dataset_lock import DatasetLock
    lock = DatasetLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    time.sleep(60)
    """
)


def _volume_and_labels(seed: int) -> tuple[Volume, LabelMap]:
    rng = np.random.default_rng(seed)
    volume = Volume(rng.integers(0, 100, GEOMETRY.shape).astype(np.int16), GEOMETRY, "CT",
                    VolumeMetadata(series_uid=f"1.2.9.{seed}"))
    array = np.zeros(GEOMETRY.shape, np.uint8)
    array[1:3, 1:4, 1:5] = 1
    return volume, LabelMap(array, GEOMETRY, LabelTable.from_names({1: "liver"}))


def test_a_second_writer_waits_then_is_told_who_holds_the_lock(tmp_path):
    dataset = NnUNetDataset.create_or_open(tmp_path, 611, "Held", "CT")
    dataset.save_case(*_volume_and_labels(0))
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(dataset.root)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(dataset.root)
        waiting = NnUNetDataset(dataset.root, lock_timeout=0.4)
        started = time.monotonic()
        with pytest.raises(DatasetLockedError) as raised:
            waiting.save_case(*_volume_and_labels(1))
        assert 0.4 <= time.monotonic() - started < 5
        message = str(raised.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and "nothing was changed" in message
        assert snapshot(dataset.root) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the holder died holding it: the stale lock is recognised and broken
    assert (dataset.root / LOCK_NAME).exists()
    record = NnUNetDataset(dataset.root, lock_timeout=0.4).save_case(*_volume_and_labels(1))
    assert record.case_id in dataset.case_ids() and not (dataset.root / LOCK_NAME).exists()
    assert [r["case_id"] for r in dataset.provenance()][-1] == record.case_id
