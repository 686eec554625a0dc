"""``medviewer infer --batch`` under torchrun: 2 gloo CPU processes share the studies, rank 0 writes one table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import write_package
from test_infer_batch import write_studies


def test_torchrun_two_cpu_processes_do_every_study_exactly_once(tmp_path):
    models = tmp_path / "models"
    normalization = {"normalization": {"method": "ct_window", "window": [-1000, 1000], "clip": False}}
    write_package(models / "seg", "segmentation", name="bright",
                  input={"spacing": [2.0, 2.0, 2.0], "orientation": "LPS", **normalization})
    studies = tmp_path / "studies"
    write_studies(studies, 5)
    (studies / "s5.nii.gz").write_bytes(b"broken")  # a failure on one rank stops neither rank
    out = tmp_path / "out"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MEDVIEWER_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "medviewer", "infer", "-m", "bright", "--model-dir", str(models), "--device", "cpu",
               "--batch", str(studies), "-o", str(out)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    log = completed.stdout[-3000:] + completed.stderr[-3000:]
    assert completed.returncode != 0, log  # torchrun reports the ranks' exit code 2 (one study failed)
    assert "1 of 6 studies failed" in completed.stderr, log
    for number in range(5):  # each study written once, by one rank
        assert completed.stdout.count(f"wrote {out / f's{number}' / f's{number}_bright_labels.nii.gz'}") == 1, log
    assert completed.stdout.count(f"wrote {out / 'results.csv'}") == 1  # only rank 0 writes the table
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["study"] for r in rows] == [str(studies / f"s{n}.{'nii.gz' if n % 2 == 0 else 'nrrd'}") for n in range(5)] \
        + [str(studies / "s5.nii.gz")]
    assert [r["status"] for r in rows] == ["ok"] * 5 + ["failed"]
    table = json.loads((out / "results.json").read_text())
    assert [r["rank"] for r in table["rows"]] == [0, 1, 0, 1, 0, 1]  # study i on rank i % 2

    # Resumed with both ranks: every done study is skipped, only the broken one runs again.
    (studies / "s5.nii.gz").unlink()
    write_studies(tmp_path / "more", 6)[5].rename(studies / "s5.nrrd")
    completed = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "5 of 6 studies already done (--resume): skipped" in completed.stderr
    written = [line for line in completed.stdout.splitlines() if "_labels.nii.gz" in line]
    assert len(written) == 1 and written[0].startswith(f"wrote {out / 's5' / 's5_bright_labels.nii.gz'}")
    table = json.loads((out / "results.json").read_text())
    assert table["ok"] == 6 and table["rows"][5]["study"] == str(studies / "s5.nrrd")
