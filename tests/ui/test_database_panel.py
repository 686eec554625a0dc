"""The study database panel in the real main window: search, sort, import, double-click opens, remove."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))

import synthetic_dicom as sd  # noqa: E402

from medviewer.services import study_db  # noqa: E402
from medviewer.ui.panels import database_panel  # noqa: E402
from medviewer.ui.panels.database_panel import install_database  # noqa: E402

pytestmark = pytest.mark.gui

STUDY_A, STUDY_B = "1.2.826.0.1.3680043.8.498.500", "1.2.826.0.1.3680043.8.498.600"
CT_SERIES, MR_SERIES = STUDY_A + ".1", STUDY_A + ".2"


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    """Study A (CT 12 slices with a bright square + MR 4 slices) and study B (a CR radiograph)."""
    a, b = tmp_path / "a", tmp_path / "b"
    ct = np.full((12, 32, 32), 24, np.int16)
    ct[:, 8:24, 8:24] = 1064  # 40 HU inside, -1000 HU outside
    patient = {"PatientName": "DOE^JOHN", "PatientID": "PID-1"}
    sd.write_series(a / "ct", ct, sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(12) * 2.5), study_uid=STUDY_A,
                    series_uid=CT_SERIES, series_number=2, description="Chest", extra=patient)
    sd.write_series(a / "mr", np.full((4, 16, 16), 300, np.uint16), sd.stack_positions((0, 0, 0), sd.AXIAL, np.arange(4) * 5.0),
                    modality="MR", rescale=None, study_uid=STUDY_A, series_uid=MR_SERIES, series_number=1,
                    description="T2", extra=patient)
    radiograph = sd.write_radiograph(b / "cr.dcm", (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 7) % 4096,
                                     pixel_spacing=(0.2, 0.2))
    sd.edit_files([radiograph], StudyInstanceUID=STUDY_B, PatientName="SMITH^ANNA", PatientID="PID-2", StudyDate="20230310")
    return a, b


@pytest.fixture
def database(tmp_path, folders) -> Path:
    database = tmp_path / "database"
    study_db.import_files(folders[0], copy=True, database=database)
    study_db.import_files(folders[1], copy=False, database=database)
    return database


def _wait_refreshed(qtbot, panel) -> None:
    with qtbot.waitSignal(panel.refreshed, timeout=3000):
        pass


def test_search_fields_filter_and_headers_sort(viewer, database, qtbot):
    ui = install_database(viewer, database=database)
    panel = ui.panel
    assert sorted(panel.listed_uids()) == [STUDY_A, STUDY_B]
    panel.patient_name.setText("smith")
    _wait_refreshed(qtbot, panel)  # searches once typing pauses
    assert panel.listed_uids() == [STUDY_B]
    panel.patient_name.clear()
    panel.modality.setCurrentText("MR")
    _wait_refreshed(qtbot, panel)
    assert panel.listed_uids() == [STUDY_A]
    panel.modality.setCurrentText("")
    panel.date_to.setText("20231231")
    panel.refresh()
    assert panel.listed_uids() == [STUDY_B]
    panel.date_to.clear()
    panel.description.setText("t2")  # a series description
    panel.refresh()
    assert panel.listed_uids() == [STUDY_A]
    panel.description.clear()
    panel.date_from.setText("2024")
    panel.refresh()
    assert "must be YYYYMMDD" in panel.status.text()
    panel.date_from.clear()
    panel.refresh()

    panel.tree.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    assert panel.listed_uids() == [STUDY_A, STUDY_B]  # DOE before SMITH
    panel.tree.sortByColumn(6, Qt.SortOrder.AscendingOrder)  # images: 1 before 16
    assert panel.listed_uids() == [STUDY_B, STUDY_A]
    item = panel.study_item(STUDY_A)
    assert [item.text(c) for c in range(8)] == ["DOE^JOHN", "PID-1", "2024-01-01", "CT/MR", "Synthetic study", "2", "16", "copied"]
    assert [item.child(i).text(0) for i in range(item.childCount())] == ["1: T2", "2: Chest"]


def test_double_click_opens_the_study_with_all_its_series(viewer, database, qtbot, errors, artifacts_dir):
    ui = install_database(viewer, database=database)
    panel = ui.panel
    ui.dock.raise_()
    qtbot.waitUntil(lambda: panel.tree.viewport().isVisible())
    item = panel.study_item(STUDY_A)
    panel.tree.scrollToItem(item)
    rect = panel.tree.visualItemRect(item)
    point = QPoint(rect.left() + 30, rect.center().y())  # on the patient name
    assert panel.tree.viewport().rect().contains(point)
    qtbot.mouseClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.mouseDClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(lambda: viewer.document is not None, timeout=10000)
    assert errors == []
    document = viewer.document
    assert document.series.uid == CT_SERIES  # the largest series is shown
    assert document.volume.array.shape == (12, 32, 32)
    assert document.volume.array[6, 16, 16] == 40 and document.volume.array[6, 2, 2] == -1000
    assert sorted(s.uid for s in viewer.study_browser.series) == [CT_SERIES, MR_SERIES]
    # the other series opens from the series browser as for a folder
    mr = next(s for s in viewer.study_browser.series if s.uid == MR_SERIES)
    viewer.load_series(mr)
    qtbot.waitUntil(lambda: viewer.document.series.uid == MR_SERIES, timeout=10000)
    assert viewer.document.volume.array.shape == (4, 16, 16)
    assert viewer.study_dock.isVisible()  # the study's series are shown after opening
    ui.dock.raise_()
    panel.study_item(STUDY_A).setExpanded(True)
    qtbot.wait(50)
    panel.grab().save(str(artifacts_dir / "database_panel.png"))
    viewer.grab().save(str(artifacts_dir / "database_study_opened.png"))


def test_import_makes_thumbnails_and_remove_deletes_only_own_files(viewer, folders, tmp_path, qtbot, errors, monkeypatch,
                                                                   artifacts_dir):
    database = tmp_path / "gui-database"
    ui = install_database(viewer, database=database)
    panel = ui.panel
    assert panel.listed_uids() == []
    titles = [a.text() for a in viewer.menu("File").actions()]
    assert titles[titles.index("Open &folder...") + 1] == "Import into &database..."

    handle = panel.import_folder(folders[0], copy=True)
    qtbot.waitUntil(lambda: handle.is_done, timeout=15000)
    handle = panel.import_folder(folders[1], copy=False)
    qtbot.waitUntil(lambda: handle.is_done, timeout=15000)
    assert errors == []
    assert sorted(panel.listed_uids()) == [STUDY_A, STUDY_B]
    assert "1 new instance indexed in place" in panel.status.text()

    def thumbnails_shown() -> bool:
        item = panel.study_item(STUDY_A)
        return item is not None and all(not item.child(i).icon(0).isNull() for i in range(item.childCount()))

    qtbot.waitUntil(thumbnails_shown, timeout=15000)
    # the thumbnails' refresh keeps the import's summary (it used to replace it with "2 studies")
    assert "1 new instance indexed in place" in panel.status.text()
    ui.dock.raise_()
    panel.study_item(STUDY_A).setExpanded(True)
    panel.study_item(STUDY_B).setExpanded(True)
    viewer.resizeDocks([ui.dock], [520], Qt.Orientation.Horizontal)
    qtbot.wait(100)
    panel.grab().save(str(artifacts_dir / "database_panel_thumbnails.png"))
    stored = sorted((database / "storage").rglob("*.dcm"))
    assert len(stored) == 16

    monkeypatch.setattr(database_panel, "confirm", lambda *args: True)
    for uid in (STUDY_A, STUDY_B):
        panel.tree.setCurrentItem(panel.study_item(uid))
        panel.remove_selected()
    assert panel.listed_uids() == []
    assert list((database / "storage").rglob("*.dcm")) == []  # copied files deleted
    assert (folders[1] / "cr.dcm").is_file() and len(list((folders[0] / "ct").glob("*.dcm"))) == 12  # originals kept
    assert "1 indexed in place left where they are" in panel.status.text()


def test_cancelling_an_import_keeps_a_consistent_database(viewer, folders, tmp_path, qtbot, monkeypatch):
    monkeypatch.setattr(study_db, "BATCH_SIZE", 4)
    database = tmp_path / "cancel-database"
    panel = install_database(viewer, database=database).panel
    real_read = study_db.read_index_header
    handle = None

    def slow_read(path):
        if handle is not None and path.endswith("IMG00006.dcm"):
            handle.cancel()
        return real_read(path)

    monkeypatch.setattr(study_db, "read_index_header", slow_read)
    handle = panel.import_folder(folders[0], copy=True)
    qtbot.waitUntil(lambda: handle.is_done, timeout=15000)
    assert handle.state == "cancelled"
    with study_db.open_store(database) as store:
        count = store.counts()["instances"]
        files = sorted(f.path for s in store.search() for f in store.instance_files(s.study_uid))
    assert count % 4 == 0 and count < 16  # whole batches only
    assert files == sorted((database / "storage").rglob("*.dcm"))
    assert sum(s.instance_count for s in panel.studies) == count


def test_file_import_into_database_asks_for_a_folder_and_copy_or_in_place(viewer, folders, tmp_path, qtbot, monkeypatch, errors):
    database = tmp_path / "menu-database"
    ui = install_database(viewer, database=database)
    asked = []
    monkeypatch.setattr(database_panel.QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folders[1]))
    monkeypatch.setattr(database_panel, "ask_copy", lambda parent, folder: asked.append(folder) or False)
    ui.import_action.trigger()
    assert asked == [str(folders[1])]
    qtbot.waitUntil(lambda: ui.panel.import_job is not None and ui.panel.import_job.is_done, timeout=15000)
    assert errors == []
    [study] = ui.panel.studies
    assert (study.study_uid, study.storage) == (STUDY_B, "in place")
    assert not (database / "storage").exists() or list((database / "storage").rglob("*.dcm")) == []
    # cancelling the question imports nothing
    monkeypatch.setattr(database_panel, "ask_copy", lambda parent, folder: None)
    previous = ui.panel.import_job
    ui.import_action.trigger()
    assert ui.panel.import_job is previous
