"""Autosave and crash recovery (headless): files, locks, kill -9 of a real process, restore."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from medviewer.core import Detection, Document, Geometry, LabelMap, LabelTable, Volume
from medviewer.core.errors import CorruptFileError, GeometryMismatchError
from medviewer.services.annotations import ProposalTracker
from medviewer.services.recovery import Autosaver, adopt, discard_entry, list_recoverable, restore_into

REPO = Path(__file__).resolve().parents[2]


def _document(origin=(0.0, 0.0, 0.0)) -> Document:
    geometry = Geometry((24, 20, 6), (0.9, 0.9, 2.0), origin)
    volume = Volume(np.zeros(geometry.shape, np.int16), geometry, "CT")
    volume.metadata.source_path = "/data/study/ct.nii.gz"
    volume.metadata.series_uid = "1.2.3.4"
    return Document(volume)


def _edit(document: Document) -> LabelMap:
    label_map = document.add_label_map(
        LabelMap.empty(document.geometry, LabelTable.from_names({2: "vessel"}), name="Corrected")
    )
    document.edit_labels(label_map, np.s_[1:3, 4:9, 5:12], 2)
    document.add_detections([Detection((3.0, 4.0, 4.0), (2.0, 2.0, 2.0), label="nodule", status="accepted")])
    return label_map


def _simulate_crash(saver: Autosaver) -> None:
    """What the OS does when the process dies: its lock goes, its files stay."""
    saver._lock.release()
    saver._lock = None


def test_autosave_only_when_needed_and_discard_on_save(tmp_path):
    document = _document()
    saver = Autosaver(document, root=tmp_path)
    assert not saver.autosave_now()  # nothing edited
    label_map = _edit(document)
    assert saver.autosave_now()
    assert not saver.autosave_now()  # nothing new since
    manifest = json.loads((saver.folder / "manifest.json").read_text())
    assert manifest["source_path"] == "/data/study/ct.nii.gz" and manifest["series_uid"] == "1.2.3.4"
    assert manifest["geometry"]["spacing"] == [0.9, 0.9, 2.0]
    assert [m["name"] for m in manifest["label_maps"]] == ["Corrected"]
    # the live session's folder is locked, so it is not offered for recovery
    assert list_recoverable(tmp_path) == []
    document.edit_labels(label_map, np.s_[0:1, 0:1, 0:1], 2)
    assert saver.autosave_now()
    # only the edited block is written after the first autosave
    files = sorted(p.name for p in saver.folder.iterdir())
    entry = json.loads((saver.folder / "manifest.json").read_text())["label_maps"][0]
    assert files == [entry["file"], "lock", "manifest.json", entry["patches"][0]["file"]]
    assert entry["patches"][0]["region"] == [[0, 1], [0, 1], [0, 1]] and entry["patches"][0]["shape"] == [1, 1, 1]
    document.notify_labels_changed(label_map, None)  # everything changed: a new base replaces base and patches
    assert saver.autosave_now()
    entry = json.loads((saver.folder / "manifest.json").read_text())["label_maps"][0]
    assert sorted(p.name for p in saver.folder.iterdir()) == [entry["file"], "lock", "manifest.json"]
    assert entry["patches"] == []
    document.mark_saved()  # a successful save
    assert not saver.folder.exists()


def test_async_autosave_writes_in_background(tmp_path):
    document = _document()
    saver = Autosaver(document, root=tmp_path)
    _edit(document)
    assert saver.autosave_async()
    saver.wait(10)
    assert saver.last_error is None and (saver.folder / "manifest.json").is_file()
    saver.close()
    assert not saver.folder.exists()


def test_restore_into_reopened_document(tmp_path):
    document = _document()
    tracker = ProposalTracker(document)
    proposal = document.add_label_map(
        LabelMap(np.zeros(document.geometry.shape, np.uint8), document.geometry, LabelTable.from_names({1: "liver"}),
                 "Liver", "liver-net 3")
    )
    proposal.write(np.s_[0, 0, 0:4], 1)
    tracker.remember(proposal)
    document.edit_labels(proposal, np.s_[0:1, 0:1, 0:2], 0)  # corrected after the proposal
    label_map = _edit(document)
    saver = Autosaver(document, tracker=tracker, root=tmp_path)
    saver.autosave_now()
    _simulate_crash(saver)
    (entry,) = list_recoverable(tmp_path)
    assert "2 label map(s), 1 box(es)" in entry.describe()

    reopened = _document()
    new_tracker = ProposalTracker(reopened)
    new_saver = Autosaver(reopened, tracker=new_tracker, root=tmp_path / "new")
    recovered = adopt(reopened, entry, new_saver, new_tracker)
    assert not entry.folder.exists() and (new_saver.folder / "manifest.json").is_file()
    assert [lm.name for lm in reopened.label_maps] == ["Liver", "Corrected"]
    np.testing.assert_array_equal(reopened.label_maps[1].array, label_map.array)
    np.testing.assert_array_equal(reopened.label_maps[0].array, proposal.array)
    assert reopened.active_label_map is reopened.label_maps[1]
    assert reopened.label_maps[1].table[2].name == "vessel"
    assert new_tracker.original_of(reopened.label_maps[0]).voxel_count(1) == 4
    assert [d.label for d in reopened.detections] == ["nodule"] and reopened.modified
    new_saver.close()
    assert len(recovered.label_maps) == 2


def test_restore_refuses_other_geometry_and_damaged_files(tmp_path):
    document = _document()
    _edit(document)
    saver = Autosaver(document, root=tmp_path)
    saver.autosave_now()
    _simulate_crash(saver)
    (entry,) = list_recoverable(tmp_path)
    with pytest.raises(GeometryMismatchError, match="origin"):
        restore_into(_document(origin=(5.0, 0.0, 0.0)), entry)
    data_file = entry.folder / entry.manifest["label_maps"][0]["file"]
    data_file.write_bytes(data_file.read_bytes()[:-3] + b"xyz")
    with pytest.raises(CorruptFileError, match="damaged"):
        restore_into(_document(), entry)
    discard_entry(entry)
    assert list_recoverable(tmp_path) == []


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from medviewer.core import Document, Geometry, Volume
    from medviewer.services.recovery import Autosaver
    from medviewer.tools.session import EditSession
    from medviewer.tools.paint import PaintBrushTool
    from medviewer.tools.base import PointerAction, PointerEvent

    geometry = Geometry((40, 40, 10), (0.8, 0.8, 2.5))
    document = Document(Volume(np.zeros(geometry.shape, np.int16), geometry, "CT"))
    saver = Autosaver(document, root=sys.argv[1])
    session = EditSession(document)
    tool = PaintBrushTool(session, radius_mm=4.0)
    for x in (10.0, 30.0):
        index = np.array([x, 20.0, 5.0])
        world = geometry.index_to_world(index)
        tool.handle(PointerEvent(PointerAction.PRESS, world, index, 2, 5))
        tool.handle(PointerEvent(PointerAction.RELEASE, world, index, 2, 5))
    saver.autosave_now()
    np.save(sys.argv[2], session.label_map.array)
    print("painted", int(session.label_map.array.sum()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_minus_nine_then_restore(tmp_path):
    root = tmp_path / "recovery"
    expected_path = tmp_path / "expected.npy"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(expected_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout.startswith("painted")
    (entry,) = list_recoverable(root)
    geometry = Geometry((40, 40, 10), (0.8, 0.8, 2.5))
    reopened = Document(Volume(np.zeros(geometry.shape, np.int16), geometry, "CT"))
    restore_into(reopened, entry)
    np.testing.assert_array_equal(reopened.active_label_map.array, np.load(expected_path))
    assert reopened.active_label_map.voxel_count(1) > 0
