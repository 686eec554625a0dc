"""Shared test setup: isolated user folders and a place for screenshots."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# the Orthanc PACS fixtures (orthanc, dimse_node, pacs_config, memory_keyring) for service and GUI tests
pytest_plugins = ["tests.pacs_orthanc"]

# Isolate settings, recovery files, user models and the demo cache from the real user's.
_HOME = tempfile.mkdtemp(prefix="medviewer-test-home-")
os.environ["MEDVIEWER_HOME"] = _HOME

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder for screenshots and other files worth looking at after a run."""
    ARTIFACTS.mkdir(exist_ok=True)
    print(f"\ntest artifacts (screenshots) are written to {ARTIFACTS}")
    return ARTIFACTS


@pytest.fixture
def medviewer_home() -> Path:
    return Path(os.environ["MEDVIEWER_HOME"])
