"""PACS studies in the study database panel, against a real Orthanc: remote rows beside local ones,
double-click retrieves and opens the first series while the rest arrives, a failed or cancelled
retrieve leaves nothing in the database and offers Retry, and sending series back (File > Send to PACS...)."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPoint, Qt

from medviewer.core.labels import LabelMap
from medviewer.io.reader import read_volume
from medviewer.services import study_db
from medviewer.services.pacs import operations
from medviewer.services.pacs.errors import PacsTimeoutError
from medviewer.services.pacs.nodes import PacsConfig, PacsNode, pacs_config_path, save_pacs_config
from medviewer.ui import pacs_dialog
from medviewer.ui.pacs_dialog import SendDialog
from medviewer.ui.panels.database_panel import install_database

from tests.io.synthetic_dicom import AXIAL, stack_positions, write_series
from tests.pacs_orthanc import OUR_AE
from tests.services.orthanc_server import LOOPBACK

pytestmark = pytest.mark.gui


@pytest.fixture
def config(orthanc, dimse_node) -> PacsConfig:
    wrong = PacsNode(name="typo", ae_title="NOTORTHANC", host=LOOPBACK, port=orthanc.server.dicom_port, timeout_s=5)
    return PacsConfig(ae_title=OUR_AE, listener_port=orthanc.listener_port, listener_address=LOOPBACK,
                      nodes=[dimse_node, wrong])


@pytest.fixture
def ui(viewer, orthanc, config, tmp_path, qtbot):
    """The database panel over a database holding the 'head' study (indexed in place), with the Orthanc node."""
    database = tmp_path / "database"
    study_db.import_files(orthanc.studies["head"]["series"]["ct"][1], copy=False, database=database)
    ui = install_database(viewer, database=database, pacs_config=config)
    ui.retrieve_folder = tmp_path / "retrieved"
    yield ui
    ui.retrieve_jobs.cancel_all()
    ui.retrieve_jobs.wait_for_done(5000)


def _pixels_by_sop(paths) -> dict[str, str]:
    found = {}
    for path in paths:
        ds = pydicom.dcmread(path)
        found[str(ds.SOPInstanceUID)] = hashlib.sha256(ds.PixelData).hexdigest()
    return found


def _search(ui, qtbot, node_name: str = "test-orthanc") -> None:
    panel = ui.panel
    panel.search_in.setCurrentIndex(panel.search_in.findData(node_name))
    handle = panel.search_remote()
    qtbot.waitUntil(lambda: handle.is_done, timeout=15000)


class _Gate:
    """Holds the retrieve of every series after the first until ``open()`` (the rest 'still arriving')."""

    def __init__(self, monkeypatch, fail_second: int = 0) -> None:
        self.event = threading.Event()
        self.calls = 0
        self.fail_second = fail_second  # how many attempts fail in their second series
        real = operations._retrieve_series

        def gated(*args, **kwargs):
            self.calls += 1
            if self.calls % 2 == 0:
                assert self.event.wait(20), "the test never let the second series through"
                if self.fail_second:
                    self.fail_second -= 1
                    raise PacsTimeoutError("PACS 'test-orthanc': C-GET got no answer within 10 s")
            return real(*args, **kwargs)

        monkeypatch.setattr(operations, "_retrieve_series", gated)

    def open(self) -> None:
        self.event.set()


def test_remote_studies_beside_local_ones_double_click_opens_first_series_while_the_rest_arrives(
        ui, viewer, orthanc, qtbot, errors, monkeypatch, artifacts_dir):
    panel = ui.panel
    chest, head = orthanc.studies["chest"], orthanc.studies["head"]
    assert panel.listed_uids() == [head["study_uid"]]
    _search(ui, qtbot)
    assert errors == []
    assert panel.remote_uids() == [chest["study_uid"]]  # the head study is local already
    local, remote = panel.study_item(head["study_uid"], "study"), panel.study_item(chest["study_uid"], "remote")
    assert local.text(7) == "in place + on test-orthanc"
    assert [remote.text(c) for c in range(8)] == ["Synthetic^Test", "SYN001", "2024-01-01", "CT/MR", "Synthetic study", "2", "15",
                                                  "on test-orthanc"]
    assert remote.font(0).italic() and not local.font(0).italic()
    assert "1 study; 1 more on test-orthanc" == panel.status.text()
    ui.dock.raise_()
    viewer.resizeDocks([ui.dock], [560], Qt.Orientation.Horizontal)
    qtbot.wait(50)
    panel.grab().save(str(artifacts_dir / "database_panel_with_pacs_studies.png"))
    # the local search fields narrow the remote rows too
    panel.patient_id.setText("SYN002")
    _search(ui, qtbot)
    assert panel.remote_uids() == []
    panel.patient_id.clear()
    _search(ui, qtbot)

    gate = _Gate(monkeypatch)
    ui.dock.raise_()
    qtbot.waitUntil(lambda: panel.tree.viewport().isVisible())
    remote = panel.study_item(chest["study_uid"], "remote")  # the rows were listed again
    panel.tree.scrollToItem(remote)
    rect = panel.tree.visualItemRect(remote)
    point = QPoint(rect.left() + 30, rect.center().y())
    qtbot.mouseClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.mouseDClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=point)
    retrieval = ui.retrieval
    assert retrieval is not None and retrieval.study_uid == chest["study_uid"]
    messages: list[str] = []
    retrieval.handle.progress.connect(lambda fraction, message: messages.append(message))

    # the first series (CT, 12 slices) opens while the second is still held back
    qtbot.waitUntil(lambda: viewer.document is not None, timeout=20000)
    assert not retrieval.handle.is_done
    assert viewer.document.volume.array.shape == (12, 20, 24)
    assert viewer.document.series.uid == chest["series"]["ct"][0]
    assert [s.uid for s in viewer.study_browser.series] == [chest["series"]["ct"][0]]
    qtbot.waitUntil(lambda: viewer.study_browser.isVisible(), timeout=5000)  # its tab is raised
    viewer.grab().save(str(artifacts_dir / "pacs_first_series_open.png"))

    gate.open()
    qtbot.waitUntil(lambda: retrieval.handle.is_done, timeout=20000)
    assert errors == []
    # the second series joined the series browser; the open one stays open and marked
    assert [s.uid for s in viewer.study_browser.series] == [chest["series"]["ct"][0], chest["series"]["mr"][0]]
    assert viewer.document.series.uid == chest["series"]["ct"][0]
    assert viewer.study_browser.tree.topLevelItem(0).font(0).bold()
    assert any("series 2 of 2" in m for m in messages)
    # what came back has the pixels and geometry of what was stored, and the study is local now
    result = retrieval.result
    assert _pixels_by_sop(result.files) == _pixels_by_sop(chest["series"]["ct"][1] + chest["series"]["mr"][1])
    want = read_volume(chest["series"]["ct"][1][0].parent).geometry
    got = viewer.document.volume.geometry
    np.testing.assert_allclose(got.spacing, want.spacing)
    np.testing.assert_allclose(got.origin, want.origin)
    np.testing.assert_allclose(got.direction, want.direction)
    assert sorted(panel.listed_uids()) == sorted([chest["study_uid"], head["study_uid"]])
    assert panel.remote_uids() == []
    [record] = [s for s in panel.studies if s.study_uid == chest["study_uid"]]
    assert (record.instance_count, record.series_count) == (15, 2)
    mr = viewer.study_browser.series[1]
    viewer.load_series(mr)
    qtbot.waitUntil(lambda: viewer.document.series.uid == mr.uid, timeout=10000)
    assert viewer.document.volume.array.shape == (3, 20, 24)


def test_cancelled_retrieve_leaves_nothing_in_the_database(ui, viewer, orthanc, qtbot, errors, monkeypatch):
    panel = ui.panel
    chest = orthanc.studies["chest"]
    _search(ui, qtbot)
    gate = _Gate(monkeypatch)
    retrieval = ui.retrieve_remote(panel.remote_node, panel.remote_result(chest["study_uid"]))
    qtbot.waitUntil(lambda: viewer.document is not None, timeout=20000)  # the first series is open
    retrieval.handle.cancel()
    gate.open()
    qtbot.waitUntil(lambda: retrieval.handle.is_done, timeout=20000)
    assert retrieval.handle.state == "cancelled"
    assert errors == []
    assert [s.study_uid for s in study_db.list_studies(database=panel.database)] == [orthanc.studies["head"]["study_uid"]]
    assert list((ui.retrieve_folder / chest["study_uid"]).glob("*.dcm")) == []
    assert panel.remote_uids() == [chest["study_uid"]]  # still only on the PACS


def test_failed_retrieve_keeps_nothing_and_retry_brings_the_whole_study(ui, viewer, orthanc, qtbot, monkeypatch):
    panel = ui.panel
    chest = orthanc.studies["chest"]
    _search(ui, qtbot)
    gate = _Gate(monkeypatch, fail_second=1)
    asked: list[tuple[str, str, list, list]] = []

    def ask(parent, title, message):
        folder = ui.retrieve_folder / chest["study_uid"]
        asked.append((title, message, [s.study_uid for s in study_db.list_studies(database=panel.database)],
                      sorted(folder.glob("*.dcm"))))
        return True

    monkeypatch.setattr(pacs_dialog, "ask_retry", ask)
    retrieval = ui.retrieve_remote(panel.remote_node, panel.remote_result(chest["study_uid"]))
    qtbot.waitUntil(lambda: viewer.document is not None, timeout=20000)
    gate.open()
    qtbot.waitUntil(lambda: retrieval.attempts == 2 and retrieval.handle.is_done, timeout=30000)
    [(title, message, studies, files)] = asked
    assert title == "Retrieve from test-orthanc failed"
    assert "PACS 'test-orthanc'" in message and "no answer within 10 s" in message and "Nothing of this retrieve was kept" in message
    assert studies == [orthanc.studies["head"]["study_uid"]] and files == []  # nothing half-imported
    assert retrieval.handle.state == "finished"
    [record] = [s for s in study_db.list_studies(database=panel.database) if s.study_uid == chest["study_uid"]]
    assert record.instance_count == 15
    assert len(list((ui.retrieve_folder / chest["study_uid"]).glob("*.dcm"))) == 15


def test_retrieve_from_a_node_that_refuses_us_names_it_and_close_gives_up(ui, viewer, orthanc, qtbot, monkeypatch):
    panel = ui.panel
    asked: list[str] = []
    monkeypatch.setattr(pacs_dialog, "ask_retry", lambda parent, title, message: asked.append(message) or len(asked) < 2)
    typo = next(n for n in panel.pacs_config.nodes if n.name == "typo")
    retrieval = ui.retrieve_remote(typo, {"StudyInstanceUID": orthanc.studies["chest"]["study_uid"], "PatientName": "x"})
    gave_up: list[str] = []
    retrieval.gave_up.connect(gave_up.append)
    qtbot.waitUntil(lambda: bool(gave_up), timeout=30000)
    assert retrieval.attempts == 2 and len(asked) == 2  # Retry once, then Close
    assert "PACS 'typo'" in asked[0] and "called AE title" in asked[0]
    assert viewer.document is None


def test_send_a_database_series_to_the_pacs(ui, viewer, orthanc, qtbot, tmp_path, errors):
    panel = ui.panel
    study_uid, series_uid = "1.2.826.0.1.3680043.10.1016.98", "1.2.826.0.1.3680043.10.1016.98.1"
    pixels = np.arange(4 * 8 * 8, dtype=np.int16).reshape(4, 8, 8)
    files = write_series(tmp_path / "local", pixels, stack_positions((0, 0, 0), AXIAL, np.arange(4) * 2.0),
                         study_uid=study_uid, series_uid=series_uid, series_number=1, description="Local only",
                         extra={"PatientName": "Send^Me", "PatientID": "SEND01"})
    study_db.import_files(tmp_path / "local", copy=True, database=panel.database)
    panel.refresh()
    item = panel.study_item(study_uid, "study")
    panel.tree.setCurrentItem(item.child(0))
    panel.send_selected()
    dialog = ui.send_dialog
    assert isinstance(dialog, SendDialog)
    assert dialog.what.text() == "series 1: Local only of Send^Me, 4 files"
    dialog.node_combo.setCurrentIndex(dialog.node_combo.findData("test-orthanc"))
    handle = dialog.send()
    try:
        qtbot.waitUntil(lambda: handle.is_done, timeout=20000)
        assert errors == []
        assert dialog.status.text().startswith("Sent 4 files to PACS 'test-orthanc'")
        stored = orthanc.server.instances_of_series(series_uid)
        sent = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
        assert {i["MainDicomTags"]["SOPInstanceUID"] for i in stored} == sent and len(sent) == 4
    finally:
        for found in orthanc.server.rest("/tools/lookup", study_uid.encode()) or []:
            orthanc.server.rest(f"/studies/{found['ID']}", method="DELETE")
        dialog.close()


def test_file_send_to_pacs_sends_the_label_map_as_seg_and_names_a_refusing_node(viewer, orthanc, config, qtbot, errors,
                                                                               monkeypatch):
    save_pacs_config(config)  # the user's settings (a temporary MEDVIEWER_HOME in the tests)
    try:
        viewer.open_path(orthanc.studies["chest"]["series"]["ct"][1][0].parent)
        qtbot.waitUntil(lambda: viewer.document is not None, timeout=20000)
        labels = LabelMap.empty(viewer.document.volume.geometry, name="Nodule")
        labels.write((slice(3, 6), slice(2, 8), slice(5, 12)), 1)
        viewer.add_label_map(labels)
        action = next(a for a in viewer.menu("File").actions() if a.text() == "Sen&d to PACS...")
        titles = [a.text() for a in viewer.menu("File").actions()]
        assert titles.index("Sen&d to PACS...") == titles.index("Query &PACS...") + 1
        action.trigger()
        [dialog] = [d for d in viewer.findChildren(SendDialog) if d.isVisible()]
        assert dialog.what.text() == "label map 'Nodule' as DICOM SEG"

        asked: list[str] = []
        monkeypatch.setattr(pacs_dialog, "ask_retry", lambda parent, title, message: asked.append(message) or False)
        dialog.node_combo.setCurrentIndex(dialog.node_combo.findData("typo"))
        handle = dialog.send()
        qtbot.waitUntil(lambda: handle.is_done, timeout=20000)
        assert len(asked) == 1 and "PACS 'typo'" in asked[0] and "called AE title" in asked[0]
        assert dialog.status.text() == "Send to typo failed"

        dialog.node_combo.setCurrentIndex(dialog.node_combo.findData("test-orthanc"))
        handle = dialog.send()
        qtbot.waitUntil(lambda: handle.is_done, timeout=20000)
        assert errors == []
        assert dialog.status.text().startswith("Sent 1 file to PACS 'test-orthanc' (")
        found = orthanc.server.rest("/tools/find", b'{"Level": "Series", "Query": {"Modality": "SEG"}, "Expand": true}')
        try:
            assert len(found) == 1 and len(found[0]["Instances"]) == 1
        finally:
            for series in found:
                orthanc.server.rest(f"/series/{series['ID']}", method="DELETE")
        dialog.close()
    finally:
        pacs_config_path().unlink(missing_ok=True)
