"""Data-parallel training: the documented torchrun command with 2 CPU processes (gloo) on a tiny dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from training_helpers import make_base_package, make_dataset


def test_torchrun_two_cpu_processes_agree_and_write_one_package(tmp_path):
    dataset = make_dataset(tmp_path / "data", seeds=range(4))
    base = make_base_package(tmp_path / "base")
    home = tmp_path / "home"
    env = {**os.environ, "MEDVIEWER_HOME": str(home), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "medviewer", "train", "--dataset", str(dataset.root), "--base", str(base), "--name", "ddp-model",
        "--epochs", "2", "--iterations-per-epoch", "3", "--patch", "16", "16", "16", "--device", "cpu",
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    # Only rank 0 reports and writes.
    assert completed.stdout.count("wrote ddp-model:1.0.0") == 1
    assert completed.stdout.count("epoch 2/2") == 1
    model_folder = home / "models" / "ddp-model"
    assert [p.name for p in model_folder.iterdir()] == ["1.0.0"]
    manifest = json.loads((model_folder / "1.0.0" / "model.json").read_text())
    distributed = manifest["provenance"]["metrics"]["distributed"]
    assert distributed["world_size"] == 2 and distributed["backend"] == "gloo"
    checksums = distributed["weight_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1] and len(checksums[0]) == 64
    assert not list((home / "models").glob("**/checkpoint.pt"))
