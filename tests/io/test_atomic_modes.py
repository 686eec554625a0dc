"""Atomic writes keep ordinary file permissions (a temp file from mkstemp is 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from medviewer.core import Geometry, Volume
from medviewer.io.atomic import atomic_write_bytes
from medviewer.io.writers import write_volume


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_own(tmp_path, umask_022):
    target = tmp_path / "dataset.json"
    atomic_write_bytes(target, b"{}")
    assert _mode(target) == 0o644  # readable by the other annotators of a shared dataset, as open() would make it
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b'{"a": 1}')
    assert _mode(target) == 0o640 and target.read_bytes() == b'{"a": 1}'


def test_image_writes_are_not_private_either(tmp_path, umask_022):
    geometry = Geometry((8, 6, 4), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    path = tmp_path / "case.nii.gz"
    write_volume(Volume(np.zeros(geometry.shape, np.int16), geometry, "CT"), path)
    assert _mode(path) == 0o644
