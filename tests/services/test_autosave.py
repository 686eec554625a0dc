"""Autosave cadence, incremental writes, failures and orphans (issue 18, items 3-5): headless."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from medviewer.core import Document, Geometry, LabelMap, LabelTable, Volume
from medviewer.services.autosave_policy import AutosavePolicy
from medviewer.services.recovery import Autosaver, list_recoverable, restore_into

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _document(shape=(40, 64, 64)) -> Document:
    geometry = Geometry(shape[::-1], (0.8, 0.8, 2.0), (0.0, 0.0, 0.0))
    volume = Volume(np.zeros(geometry.shape, np.int16), geometry, "CT")
    volume.metadata.source_path = "/data/ct.nii.gz"
    return Document(volume)


def _layer(document: Document) -> LabelMap:
    return document.add_label_map(LabelMap.empty(document.geometry, LabelTable.from_names({1: "liver"}), name="L"))


def _write(document: Document, label_map: LabelMap, region, block: np.ndarray) -> None:
    """One edit through the document's edit path (voxels written, views told, document modified)."""
    document.edit_labels(label_map, region, block, text="test edit")


def _paint(document: Document, label_map: LabelMap, region, value: int = 1) -> None:
    _write(document, label_map, region, np.full([s.stop - s.start for s in region], value, label_map.array.dtype))


def _reopen(document: Document) -> Document:
    return Document(Volume(np.zeros(document.volume.array.shape, np.int16), document.geometry, "CT"))


# ---------------------------------------------------------------------------- cadence
def test_continuous_editing_is_autosaved_without_a_pause(tmp_path):
    clock = FakeClock()
    document = _document()
    saver = Autosaver(document, root=tmp_path, clock=clock, policy=AutosavePolicy(idle_s=3, max_delay_s=15))
    label_map = _layer(document)
    saves = []
    for step in range(70):  # a dab every 0.5 s for 35 s: never idle for 3 s
        _paint(document, label_map, (slice(step % 40, step % 40 + 1), slice(0, 4), slice(0, 4)), 1 + step // 40)
        if saver.autosave_if_due():
            saver.wait()
            saves.append(clock.now)
        clock.now += 0.5
    # the first change at t=1000 is written 15 s later; the next change (t=1015.5) 15 s after it
    assert saves == [1015.0, 1030.5]


def test_pause_and_voxel_count_trigger_an_autosave(tmp_path):
    clock = FakeClock()
    document = _document()
    policy = AutosavePolicy(idle_s=3, max_delay_s=15, max_changed_voxels=10_000)
    saver = Autosaver(document, root=tmp_path, clock=clock, policy=policy)
    label_map = _layer(document)
    _paint(document, label_map, (slice(0, 1), slice(0, 2), slice(0, 2)))
    clock.now += 2.9
    assert not saver.is_due()
    clock.now += 0.1
    assert saver.is_due() and saver.autosave_if_due()
    saver.wait()
    assert not saver.is_due()
    _paint(document, label_map, (slice(0, 10), slice(0, 32), slice(0, 32)))  # 10,240 voxels at once
    assert saver.is_due()


# ---------------------------------------------------------------------------- incremental writes
def test_only_the_edited_block_is_written_and_restores_bit_exact(tmp_path):
    document = _document()
    saver = Autosaver(document, root=tmp_path)
    label_map = _layer(document)
    rng = np.random.default_rng(3)
    _paint(document, label_map, (slice(0, 40), slice(0, 64), slice(0, 20)), 1)
    assert saver.autosave_now()
    base = json.loads((saver.folder / "manifest.json").read_text())["label_maps"][0]
    for value in range(2, 14):  # overlapping blocks of new labels, each autosaved as a patch
        z, y, x = rng.integers(0, 30), rng.integers(0, 50), rng.integers(0, 50)
        _paint(document, label_map, (slice(z, z + 3), slice(y, y + 5), slice(x, x + 5)), value)
        assert saver.autosave_now()
    entry = json.loads((saver.folder / "manifest.json").read_text())["label_maps"][0]
    assert entry["file"] == base["file"] and len(entry["patches"]) == 12
    assert all(p["shape"] == [3, 5, 5] for p in entry["patches"])
    assert sorted(f.name for f in saver.folder.glob("patch_*")) == sorted(p["file"] for p in entry["patches"])
    saver._lock.release()  # what the OS does at a crash
    saver._lock = None
    (entry_found,) = list_recoverable(tmp_path)
    reopened = _reopen(document)
    (restored,) = restore_into(reopened, entry_found).label_maps
    np.testing.assert_array_equal(restored.array, label_map.array)
    assert restored.array.dtype == label_map.array.dtype


def test_patches_are_compacted_into_a_new_base(tmp_path):
    document = _document()
    saver = Autosaver(document, root=tmp_path)
    label_map = _layer(document)
    _paint(document, label_map, (slice(0, 1), slice(0, 1), slice(0, 1)))
    assert saver.autosave_now()
    rng = np.random.default_rng(0)
    for _ in range(80):  # noisy blocks compress badly: the patches soon outweigh the base
        z = int(rng.integers(0, 36))
        region = (slice(z, z + 4), slice(0, 64), slice(0, 64))
        _write(document, label_map, region, rng.integers(0, 3, (4, 64, 64)).astype(label_map.array.dtype))
        assert saver.autosave_now()
    entry = json.loads((saver.folder / "manifest.json").read_text())["label_maps"][0]
    assert len(entry["patches"]) < 20
    assert len(list(saver.folder.glob("*.bin"))) == 1 + len(entry["patches"])  # superseded files removed
    saver._lock.release()
    saver._lock = None
    (found,) = list_recoverable(tmp_path)
    (restored,) = restore_into(_reopen(document), found).label_maps
    np.testing.assert_array_equal(restored.array, label_map.array)


# ---------------------------------------------------------------------------- failures
def test_failed_write_is_reported_kept_pending_and_retried_elsewhere(tmp_path):
    clock = FakeClock()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the recovery folder should be")
    document = _document()
    saver = Autosaver(document, root=blocker / "recovery", clock=clock, policy=AutosavePolicy(retry_s=10))
    failures, successes = [], []
    saver.failed.connect(failures.append)
    saver.succeeded.connect(successes.append)
    label_map = _layer(document)
    _paint(document, label_map, (slice(2, 4), slice(2, 4), slice(2, 4)), 1)
    clock.now += 5
    assert saver.autosave_if_due()
    saver.wait()
    assert isinstance(saver.last_error, OSError) and failures == [saver.last_error] and not successes
    assert saver.needs_autosave  # nothing was written: still pending
    clock.now += 9
    assert not saver.is_due()  # retried every 10 s, not at every tick
    clock.now += 1
    assert saver.is_due()
    # the user picks another folder: everything is written there
    saver.move_to(tmp_path / "elsewhere")
    assert saver.autosave_now()
    saver._lock.release()
    saver._lock = None
    (found,) = list_recoverable(tmp_path / "elsewhere")
    (restored,) = restore_into(_reopen(document), found).label_maps
    np.testing.assert_array_equal(restored.array, label_map.array)


def _mount_tmpfs(path: Path, size_kb: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount, which needs root")
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def _fill(disk: Path) -> None:
    """Write until the file system has no block left."""
    try:
        with open(disk / "filler", "wb") as handle:
            while True:
                handle.write(b"\xff" * 4096)
                handle.flush()
    except OSError:
        pass


def test_full_disk_keeps_the_previous_autosave_and_reports(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, 256)
    saver = None
    try:
        document = _document((40, 128, 128))
        saver = Autosaver(document, root=disk)
        label_map = _layer(document)
        _paint(document, label_map, (slice(0, 40), slice(0, 64), slice(0, 64)), 1)
        assert saver.autosave_now()
        kept = label_map.array.copy()
        _fill(disk)
        rng = np.random.default_rng(1)
        _write(document, label_map, (slice(0, 40), slice(0, 128), slice(0, 128)),
               rng.integers(0, 4, (40, 128, 128)).astype(label_map.array.dtype))
        failures = []
        saver.failed.connect(failures.append)
        assert saver.autosave_async()
        saver.wait()
        assert failures and "the disk is full (ENOSPC)" in str(failures[0])
        assert saver.needs_autosave
        saver._lock.release()
        saver._lock = None
        (found,) = list_recoverable(disk)  # the earlier autosave is whole
        (restored,) = restore_into(_reopen(document), found).label_maps
        np.testing.assert_array_equal(restored.array, kept)
        assert not list(disk.glob("*/.*.part*"))  # no half-written temporaries left behind
    finally:
        if saver is not None and saver._lock is not None:
            saver._lock.release()
        subprocess.run(["umount", str(disk)], check=False)


# ---------------------------------------------------------------------------- kills
_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from medviewer.core import Document, Geometry, LabelMap, LabelTable, Volume
    from medviewer.services import recovery
    from medviewer.services.autosave_policy import AutosavePolicy
    geometry = Geometry((32, 32, 40), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    document = Document(Volume(np.zeros(geometry.shape, np.int16), geometry, "CT"))
    label_map = document.add_label_map(LabelMap.empty(geometry, LabelTable.from_names({1: "x"}), name="L"))
    mode = sys.argv[3]
    if mode == "manifest":  # die inside the first autosave's manifest write
        real = recovery.atomic_write_text
        def dying(path, text, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        recovery.atomic_write_text = dying
    saver = recovery.Autosaver(document, root=sys.argv[1],
                               policy=AutosavePolicy(idle_s=30, max_delay_s=0.5, max_changed_voxels=10**9))
    flat = np.arange(label_map.array.size)
    for dab in range(10**6):
        z, rest = divmod(int(flat[dab]), 32 * 32)
        y, x = divmod(rest, 32)
        document.edit_labels(label_map, (slice(z, z + 1), slice(y, y + 1), slice(x, x + 1)), 1)
        print(dab + 1, flush=True)
        saver.autosave_if_due()
        time.sleep(0.01)
    """
)


def _child(root: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(root), str(REPO), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_during_continuous_editing_loses_at_most_the_policy_delay(tmp_path):
    child = _child(tmp_path, "edit")
    deadline = time.monotonic() + 60
    painted = 0
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            pytest.fail(f"the editing process ended early: {child.stderr.read()}")
        painted = int(line)
        if painted >= 250:  # about 3 s of continuous painting with no pause
            break
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    (entry,) = list_recoverable(tmp_path)
    geometry = Geometry((32, 32, 40), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    document = Document(Volume(np.zeros(geometry.shape, np.int16), geometry, "CT"))
    (restored,) = restore_into(document, entry).label_maps
    flat = restored.array.ravel()
    kept = int(np.count_nonzero(flat))
    assert np.all(flat[:kept] == 1) and not flat[kept:].any()  # a consistent prefix of the strokes
    # max_delay 0.5 s with ~100 dabs/s: at most about a second of dabs (write time included) is lost
    assert painted - kept <= 150, (painted, kept)


def test_kill_during_the_first_manifest_write_leaves_an_orphan_that_is_cleaned(tmp_path):
    child = _child(tmp_path, "manifest")
    child.wait(60)
    assert child.returncode == -signal.SIGKILL
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert not (folder / "manifest.json").exists() and list(folder.glob("labels_*.bin"))
    assert list_recoverable(tmp_path) == [] and folder.exists()  # too fresh to be judged an orphan
    assert list_recoverable(tmp_path, orphan_age_s=0) == []
    assert not folder.exists()


def test_the_model_proposal_is_written_once_not_at_every_autosave(tmp_path):
    """An unchanged proposal keeps its file, also when its layer is written whole again (it used to be
    decompressed on the UI thread and rewritten in full at every autosave)."""
    from medviewer.services.annotations import ProposalTracker

    document = _document()
    tracker = ProposalTracker(document)
    proposal = document.add_label_map(LabelMap(np.zeros(document.geometry.shape, np.uint8), document.geometry,
                                               LabelTable.from_names({1: "liver"}), "Liver", "liver-net 3"))
    proposal.write((slice(0, 2), slice(0, 4), slice(0, 4)), 1)
    tracker.remember(proposal)
    saver = Autosaver(document, tracker=tracker, root=tmp_path)
    _paint(document, proposal, (slice(5, 6), slice(0, 2), slice(0, 2)), 1)
    assert saver.autosave_now()
    first = json.loads((saver.folder / "manifest.json").read_text())["label_maps"][0]
    document.edit_labels(proposal, (slice(0, 40), slice(0, 64), slice(0, 64)), proposal.array.copy())  # no change
    document.labels_changed.emit(proposal, None)  # everything marked changed: the base is written again
    _paint(document, proposal, (slice(7, 8), slice(0, 2), slice(0, 2)), 1)
    assert saver.autosave_now()
    entry = json.loads((saver.folder / "manifest.json").read_text())["label_maps"][0]
    assert entry["file"] != first["file"] and entry["original"] == first["original"]
    assert (saver.folder / entry["original"]["file"]).is_file()
    saver._lock.release()
    saver._lock = None
    (found,) = list_recoverable(tmp_path)
    restored_tracker = ProposalTracker(reopened := _reopen(document))
    (restored,) = restore_into(reopened, found, restored_tracker).label_maps
    assert restored_tracker.original_of(restored).voxel_count(1) == 32
