"""The dataset lock: who holds it, when a left-over lock is stale, and a bounded wait."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from medviewer.io.dataset_lock import LOCK_NAME, STALE_AFTER_S, DatasetLock, DatasetLockedError, read_owner


def _leave_lock(root, owner: dict | None, age_s: float = 0.0) -> None:
    root.mkdir(exist_ok=True)
    path = root / LOCK_NAME
    path.write_text(json.dumps(owner) if owner is not None else "")
    then = time.time() - age_s
    os.utime(path, (then, then))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_records_its_owner_and_is_gone_after_release(tmp_path):
    with DatasetLock(tmp_path) as lock:
        owner = read_owner(tmp_path)
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and lock.held
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize(
    "owner, age",
    [
        ({"host": socket.gethostname(), "pid": None}, 0.0),  # replaced below by a pid that has exited
        ({"host": "another-workstation", "pid": 4242}, STALE_AFTER_S + 60),
        (None, 120.0),  # created, then the writer died before naming itself
    ],
    ids=["dead pid on this host", "old lock of another host", "empty old lock"],
)
def test_stale_locks_are_broken(tmp_path, owner, age):
    if owner is not None and owner["pid"] is None:
        owner = {**owner, "pid": _dead_pid()}
    _leave_lock(tmp_path, owner, age)
    with DatasetLock(tmp_path, timeout=0.2):
        assert read_owner(tmp_path)["pid"] == os.getpid()


def test_a_fresh_lock_of_another_host_is_waited_for_then_named(tmp_path):
    _leave_lock(tmp_path, {"host": "another-workstation", "pid": 4242, "user": "ann", "since": "2026-01-02T03:04:05+00:00"})
    started = time.monotonic()
    with pytest.raises(DatasetLockedError, match=r"pid 4242 \(ann\) on another-workstation since 2026-01-02T03:04:05"):
        DatasetLock(tmp_path, timeout=0.3).acquire()
    assert time.monotonic() - started >= 0.3
    assert read_owner(tmp_path)["pid"] == 4242, "a live lock is never broken"
