"""``medviewer train``: a tiny run prints epochs and the before/after table; user errors are one line, exit 2."""

from __future__ import annotations

import json

import pytest
import torch
from training_helpers import make_base_package, make_dataset

from medviewer.cli import EXIT_USER_ERROR, main
from medviewer.core.paths import user_models_dir


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Own user folders per test; one thread (the CI machine has 2 cores)."""
    monkeypatch.setenv("MEDVIEWER_HOME", str(tmp_path / "home"))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_train_command_writes_a_new_version_and_prints_the_comparison(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "data", seeds=range(3))
    base = make_base_package(tmp_path / "base")
    argv = ["train", "--dataset", str(dataset.root), "--base", str(base), "--name", "cli-balls", "--epochs", "2",
            "--iterations-per-epoch", "3", "--patch", "16", "16", "16", "--device", "cpu", "--learning-rate", "0.005"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "epoch 1/2: loss" in out and "epoch 2/2: loss" in out
    assert "wrote cli-balls:1.0.0" in out
    assert "Dice ball" in out and "mean Dice" in out
    manifest = json.loads((user_models_dir() / "cli-balls" / "1.0.0" / "model.json").read_text())
    assert manifest["provenance"]["parent"] == "tiny-balls:1.0.0"
    assert manifest["provenance"]["metrics"]["settings"]["epochs"] == 2


def test_train_command_reports_user_errors_in_one_line(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "data", seeds=range(3))
    base = make_base_package(tmp_path / "base")
    argv = ["train", "--dataset", str(dataset.root), "--base", str(base), "--name", "broken", "--epochs", "1"]
    assert main([*argv, "--resume"]) == EXIT_USER_ERROR
    assert "no training checkpoint to resume from" in capsys.readouterr().err
    (dataset.root / "labelsTr" / "ball-1.nii.gz").unlink()
    assert main(argv) == EXIT_USER_ERROR
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "case ball-1: labelsTr/ball-1.nii.gz is missing" in error[0]
    assert not (user_models_dir() / "broken").exists()
