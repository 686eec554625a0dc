"""``medviewer screenshot``: renders views to PNG without interaction; bad input gives one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtGui import QImage

from medviewer.cli import main
from medviewer.core import Detection, LabelMap
from medviewer.core.labels import DEFAULT_COLORS
from medviewer.io import write_label_map, write_volume

from tests.ui.conftest import make_ct_phantom

pytestmark = pytest.mark.gui


def colours(image: QImage) -> set[tuple[int, int, int]]:
    bits = np.frombuffer(image.convertToFormat(QImage.Format.Format_RGB32).constBits(), np.uint8)
    pixels = bits.reshape(image.height(), -1, 4)[:, : image.width(), :3][..., ::-1]  # BGRA -> RGB
    return {tuple(int(c) for c in p) for p in np.unique(pixels.reshape(-1, 3), axis=0)}


@pytest.fixture
def phantom_files(tmp_path):
    volume = make_ct_phantom()
    image_path = write_volume(volume, tmp_path / "ct.nii.gz")
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[8:16, 20:27, 44:56] = 1  # half of the bone block
    labels_path = write_label_map(LabelMap(labels, volume.geometry), tmp_path / "labels.nii.gz")
    box = Detection.from_index_bounds(volume.geometry, [44, 20, 8], [56, 34, 16], label="bone", score=0.9, status="accepted")
    boxes_path = tmp_path / "boxes.json"
    boxes_path.write_text(json.dumps({"boxes": [box.to_dict()]}))
    return image_path, labels_path, boxes_path


def test_screenshot_renders_views_with_overlays(qapp, phantom_files, tmp_path, artifacts_dir, capsys, monkeypatch):
    # Keep OpenGL out of this test: a GL context left open when pytest-xvfb stops the
    # X server makes the process exit with an X I/O error (the 3D view has its own tests).
    monkeypatch.setenv("MEDVIEWER_DISABLE_3D", "1")
    image_path, labels_path, boxes_path = phantom_files
    out = artifacts_dir / "screenshot_command_1x3.png"
    code = main(["screenshot", str(image_path), "--out", str(out), "--labels", str(labels_path), "--boxes", str(boxes_path),
                 "--window", "brain", "--index", "50,27,12", "--size", "900x400"])
    assert code == 0 and capsys.readouterr().out.strip() == str(out)
    image = QImage(str(out))
    assert (image.width(), image.height()) == (900, 400)
    seen = colours(image)
    label = DEFAULT_COLORS[0]
    blended = tuple(round((c + 255) / 2) for c in label)  # label at 50 % over white bone
    assert any(max(abs(a - b) for a, b in zip(colour, blended)) <= 2 for colour in seen)
    assert (40, 220, 60) in seen  # the accepted box's green
    assert (255, 255, 255) in seen and (128, 128, 128) in seen  # bone and soft tissue at 40/80

    out_2x2 = tmp_path / "two.png"
    assert main(["screenshot", str(image_path), "--out", str(out_2x2), "--layout", "2x2", "--slice", "3"]) == 0
    image = QImage(str(out_2x2))
    assert (image.width(), image.height()) == (1000, 1000)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--window", "10,-5"], "window width must be positive"),
        (["--window", "disco"], "unknown window preset 'disco'"),
        (["--slice", "99"], "--slice 99 is outside 0..23"),
        (["--position", "1,2"], "--position needs three comma-separated numbers"),
        (["--colormap", "plaid"], "--colormap must be one of"),
    ],
)
def test_bad_options_print_one_line(qapp, phantom_files, tmp_path, capsys, extra, message):
    image_path, _labels, _boxes = phantom_files
    assert main(["screenshot", str(image_path), "--out", str(tmp_path / "x.png"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_mismatched_labels_and_missing_files_are_refused(qapp, phantom_files, tmp_path, capsys):
    image_path, _labels, _boxes = phantom_files
    other = make_ct_phantom(spacing=(1.0, 1.0, 1.0))
    wrong = write_label_map(LabelMap(np.zeros(other.array.shape, np.uint8), other.geometry), tmp_path / "wrong.nii.gz")
    assert main(["screenshot", str(image_path), "--out", str(tmp_path / "x.png"), "--labels", str(wrong)]) == 2
    assert "wrong.nii.gz" in capsys.readouterr().err
    assert main(["screenshot", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "x.png")]) == 2
    assert "missing.nii.gz" in capsys.readouterr().err


def test_3d_layout_renders_the_volume(phantom_files, tmp_path):
    """``--layout 3d`` pictures the 3D view alone (own process: its OpenGL context must close before Xvfb stops)."""
    import subprocess
    import sys

    image_path, labels_path, _boxes = phantom_files
    out = tmp_path / "three_d.png"
    result = subprocess.run(
        [sys.executable, "-m", "medviewer", "screenshot", str(image_path), "--out", str(out), "--layout", "3d",
         "--labels", str(labels_path), "--size", "500x500"],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    image = QImage(str(out))
    assert (image.width(), image.height()) == (500, 500)
    bits = np.frombuffer(image.convertToFormat(QImage.Format.Format_RGB32).constBits(), np.uint8)
    pixels = bits.reshape(500, -1, 4)[:, :500, :3]
    centre, corner = pixels[200:300, 200:300], pixels[440:500, 440:500]
    # the rendering (volume, label surface) in the middle, the dark backdrop in the corner
    assert len(np.unique(centre.reshape(-1, 3), axis=0)) > 50
    assert corner.reshape(-1, 3).mean(axis=0).max() < 80 and centre.reshape(-1, 3).mean(axis=0).max() > 90
