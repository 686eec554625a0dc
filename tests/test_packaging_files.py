"""The files packaging/ ships: desktop entry, icons, its installer script, the PyInstaller spec, the screenshot check."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.ui.smoke_test import picture_is_blank
from medviewer.core.paths import resources_dir

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(PACKAGING / "linux" / "medviewer.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_entry_is_a_valid_application_entry():
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "medviewer"
    assert entry["Exec"].split()[0] == "medviewer" and entry["Exec"].split()[1] in ("%f", "%F")
    assert entry["Icon"] == "medviewer"
    assert entry["Terminal"] == "false"
    for key in ("Categories", "MimeType", "Keywords"):
        assert entry[key].endswith(";"), key
    assert "MedicalSoftware" in entry["Categories"].split(";") and "Science" in entry["Categories"].split(";")
    assert "application/dicom" in entry["MimeType"].split(";")


def test_icons_exist_at_every_size_and_the_svg_is_their_source():
    folder = resources_dir() / "icons"
    for size in ICON_SIZES:
        image = sitk.ReadImage(str(folder / f"medviewer-{size}.png"))
        assert image.GetSize() == (size, size)
        pixels = sitk.GetArrayFromImage(image)
        assert pixels.shape == (size, size, 4)  # RGBA
        assert pixels[0, 0, 3] == 0 and pixels[size // 2, size // 2, 3] == 255  # transparent corner, opaque centre
    svg = ElementTree.parse(folder / "medviewer.svg").getroot()
    assert svg.tag.endswith("svg") and svg.get("viewBox") == "0 0 256 256"


def test_install_desktop_entry_script_installs_and_removes(tmp_path):
    app = tmp_path / "My Apps" / "medviewer"
    (app / "icons").mkdir(parents=True)
    executable = app / "medviewer"
    executable.write_text("#!/bin/sh\necho medviewer\n")
    executable.chmod(0o755)
    for name in [f"medviewer-{size}.png" for size in ICON_SIZES] + ["medviewer.svg"]:
        (app / "icons" / name).write_bytes((resources_dir() / "icons" / name).read_bytes())
    (app / "medviewer.desktop").write_text((PACKAGING / "linux" / "medviewer.desktop").read_text())
    script = app / "install-desktop-entry.sh"  # where the spec puts it: next to the executable
    script.write_text((PACKAGING / "linux" / "install-desktop-entry.sh").read_text())
    data = tmp_path / "share"
    env = {**os.environ, "XDG_DATA_HOME": str(data), "PATH": "/usr/bin:/bin"}
    script = str(script)
    subprocess.run(["sh", script], env=env, check=True, capture_output=True)
    installed = (data / "applications" / "medviewer.desktop").read_text()
    assert f'Exec="{executable}" %f' in installed
    assert f"TryExec={executable}" in installed
    assert (data / "icons" / "hicolor" / "48x48" / "apps" / "medviewer.png").read_bytes() == (
        resources_dir() / "icons" / "medviewer-48.png").read_bytes()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "medviewer.svg").is_file()
    subprocess.run(["sh", script, "--remove"], env=env, check=True, capture_output=True)
    assert not (data / "applications" / "medviewer.desktop").exists()
    assert not (data / "icons" / "hicolor" / "48x48" / "apps" / "medviewer.png").exists()


def test_spec_is_python_and_names_files_that_exist():
    source = (PACKAGING / "medviewer.spec").read_text()
    compile(source, "medviewer.spec", "exec")
    for relative in ('"launcher.py"', '"medviewer.desktop"', '"install-desktop-entry.sh"', '"resources"'):
        assert relative in source
    for path in (PACKAGING / "launcher.py", PACKAGING / "linux" / "medviewer.desktop",
                 PACKAGING / "linux" / "install-desktop-entry.sh", PACKAGING / "smoke_test.sh"):
        assert path.is_file(), path
    assert '"medviewer/resources"' in source  # where resources_dir() looks in a frozen app


def _write_png(path: Path, pixels: np.ndarray) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(pixels, isVector=pixels.ndim == 3), str(path))
    return path


def test_check_screenshot_accepts_pictures_and_rejects_blank_ones(tmp_path):
    yy, xx = np.mgrid[:700, :800]
    picture = np.stack([(xx * 255 // 799), (yy * 255 // 699), ((xx + yy) % 256)], axis=-1).astype(np.uint8)
    blank = np.full((700, 800, 3), 30, np.uint8)
    check = [sys.executable, str(PACKAGING / "check_screenshot.py")]
    good = subprocess.run(check + [str(_write_png(tmp_path / "good.png", picture))], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(check + [str(_write_png(tmp_path / "blank.png", blank))], capture_output=True, text=True)
    assert bad.returncode == 1 and "fewer than 64 colours" in bad.stderr
    small = subprocess.run(check + [str(_write_png(tmp_path / "small.png", picture[:100, :100])), "--min-size", "600x600"],
                           capture_output=True, text=True)
    assert small.returncode == 1 and "smaller than 600x600" in small.stderr


@pytest.mark.parametrize(
    ("levels", "blank"),
    [
        (np.zeros((50, 50)), True),
        (np.tile(np.arange(256), (10, 1)), False),
        (np.tile(np.array([0, 255]), (10, 50)), True),  # contrast but only two levels
    ],
)
def test_picture_is_blank(levels, blank):
    assert picture_is_blank(levels) is blank


def test_smoke_test_command_is_registered_with_its_options():
    from medviewer.cli import COMMANDS, build_parser, _load_commands

    _load_commands()
    assert "smoke-test" in COMMANDS
    args = build_parser().parse_args(["smoke-test", "--model", "ct-lung-seg", "--no-3d", "--out", "x.png"])
    assert (args.model, args.no_3d, args.out) == ("ct-lung-seg", True, "x.png")
