"""A wheel built from this checkout carries the resources, and the installed package finds them.

Builds offline (``pip wheel --no-deps --no-build-isolation``) from a copy of the
sources, installs the wheel into a temporary folder and imports medviewer from there
in a fresh interpreter, far from the checkout, so nothing can fall back to the
repository's own ``resources/`` folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import medviewer

REPO = Path(__file__).resolve().parents[1]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def _shipped_resource_files() -> set[str]:
    """Every file under resources/ that should be in the wheel, as wheel paths."""
    files = set()
    for path in (REPO / "resources").rglob("*"):
        relative = path.relative_to(REPO / "resources")
        if path.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            files.add(f"medviewer/resources/{relative.as_posix()}")
    return files


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("medviewer", "resources"):
        shutil.copytree(REPO / folder, source / folder, ignore=_IGNORE)
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(dist.glob("medviewer-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contains_models_demo_data_and_every_module(built_wheel):
    names = set(zipfile.ZipFile(built_wheel).namelist())
    for model in ("ct-lung-seg", "ct-nodule-det", "ct-denoise"):
        for file in ("model.json", "MODEL_CARD.md"):
            assert f"medviewer/resources/models/{model}/{file}" in names
        manifest = json.loads((REPO / "resources" / "models" / model / "model.json").read_text())
        assert f"medviewer/resources/models/{model}/{manifest['runtime']['file']}" in names
    assert "medviewer/resources/demo/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz" in names
    assert "medviewer/resources/demo/README.md" in names
    assert any(name.startswith("medviewer/resources/demo/LICENSES/") for name in names)
    missing = _shipped_resource_files() - names
    assert not missing, f"resources left out of the wheel: {sorted(missing)}"
    modules = {f"medviewer/{p.relative_to(REPO / 'medviewer').as_posix()}" for p in (REPO / "medviewer").rglob("*.py")}
    assert not modules - names, f"modules left out of the wheel: {sorted(modules - names)}"
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "medviewer = medviewer.cli:main" in zipfile.ZipFile(built_wheel).read(entry_points).decode()


_CHECK = """
import json, sys
import medviewer
from medviewer.core.paths import resources_dir
from medviewer.ai.registry import ModelRegistry
from medviewer.services.demo import load_mni_template
registry = ModelRegistry.default()
volume, template = load_mni_template()
print(json.dumps({
    "package": medviewer.__file__,
    "resources": str(resources_dir()),
    "builtin": {p.name: str(p.weights_path) for p in registry.packages if p.origin == "builtin"},
    "errors": [str(e) for e in registry.errors],
    "template": str(template),
    "template_shape": list(volume.array.shape),
}))
"""


def test_installed_wheel_finds_its_models_and_demo_data(built_wheel, tmp_path):
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(built_wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    check = subprocess.run([sys.executable, "-c", _CHECK], cwd=away, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    found = json.loads(check.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(site), found["package"]
    assert Path(found["resources"]) == site / "medviewer" / "resources"
    shipped = sorted(p.parent.name for p in (REPO / "resources" / "models").glob("*/model.json"))
    assert {"ct-denoise", "ct-lung-seg", "ct-nodule-det"} <= set(shipped)
    assert sorted(found["builtin"]) == shipped
    assert all(Path(path).is_file() and Path(path).is_relative_to(site) for path in found["builtin"].values())
    assert found["errors"] == []
    assert Path(found["template"]).is_relative_to(site)
    assert found["template_shape"] == [189, 233, 197]

    # The console script the wheel declares starts and answers.
    script = site / "bin" / "medviewer"
    version = subprocess.run([str(script), "--version"], cwd=away, env=env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"medviewer {medviewer.__version__}"
