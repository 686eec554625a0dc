"""The study database panel: search the local database, open a study, import a folder, remove studies.

Studies are top-level rows (patient, date, modalities, description, counts, storage);
their series are child rows with the middle-slice thumbnail made in the background.
Double-clicking a study (or one of its series) emits ``study_activated(uid)``;
:func:`install_database` connects that to the main window, which lists all the study's
series in the study browser and opens the largest, as for a folder.

A PACS node chosen in "Search in" adds its studies matching the same fields (C-FIND or
QIDO-RS, on a worker thread) beside the local ones, as Horos and Slicer do: remote rows
are italic with storage "on NODE" (a local study also on the node says so). Double-clicking
a remote study retrieves it into the database (``medviewer.ui.pacs_dialog.StudyRetrieval``:
the first series opens as soon as it is complete, the others join the series browser as
they arrive). The context menu sends a local study or series to a node (File > Send to PACS).

All database work goes through ``medviewer.services.study_db``; imports and thumbnails
run on worker threads (``medviewer.ui.jobs``), searches on the UI thread (milliseconds).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QIcon, QPalette, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.errors import MedviewerError
from medviewer.core.paths import cache_dir
from medviewer.services import study_db
from medviewer.services.pacs.nodes import PacsConfig, PacsNode, load_pacs_config
from medviewer.ui import dialogs
from medviewer.ui.jobs import JobHandle, JobProgressDialog, JobQueue

COLUMNS = ("Patient", "ID", "Date", "Modalities", "Description", "Series", "Images", "Storage")
MODALITIES = ("", "CT", "MR", "CR", "DX", "MG", "US", "PT", "NM", "XA", "RF", "SEG", "RTSTRUCT", "SR")
THUMBNAIL_SIZE = 48
#: at most this many studies are listed (a search narrows them down)
LISTED_STUDIES = 1000
#: item data roles: what a row is (its UID and level) and the value it sorts by
UID_ROLE = Qt.ItemDataRole.UserRole
LEVEL_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
#: "Search in" choice meaning the local database only
LOCAL_ONLY = ""


class _Item(QTreeWidgetItem):
    """A row that sorts numbers as numbers (SORT_ROLE), text case-insensitively."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        column = self.treeWidget().sortColumn() if self.treeWidget() is not None else 0
        mine, theirs = self.data(column, SORT_ROLE), other.data(column, SORT_ROLE)
        if mine is not None and theirs is not None:
            return mine < theirs
        return self.text(column).casefold() < other.text(column).casefold()


def _date_text(date: str) -> str:
    return f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 and date.isdigit() else date


def confirm(parent: QWidget, title: str, question: str) -> bool:
    """Ask Yes/No (tests replace this function)."""
    answer = QMessageBox.question(parent, title, question, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def ask_copy(parent: QWidget, folder: str) -> bool | None:
    """Copy the files into the database (True), index them in place (False), or cancel (None)."""
    box = QMessageBox(parent)
    box.setWindowTitle("Import into database")
    box.setText(f"Import the DICOM files of {folder}")
    box.setInformativeText("Copy them into the database's own storage (they stay available when the folder goes away), "
                           "or index them where they are (nothing copied; removing the study leaves them alone)?")
    copy = box.addButton("Copy into database", QMessageBox.ButtonRole.AcceptRole)
    in_place = box.addButton("Index in place", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(copy)
    box.exec()
    clicked = box.clickedButton()
    return True if clicked is copy else False if clicked is in_place else None


class DatabasePanel(QWidget):
    """Search, list, import and remove studies of the local study database."""

    #: a study should be opened: (StudyInstanceUID)
    study_activated = Signal(str)
    #: the listing changed (after a search, an import, a removal)
    refreshed = Signal()
    #: a remote study should be retrieved and opened: (PacsNode, study result dict)
    remote_activated = Signal(object, object)
    #: files of the local database should be sent to a PACS: (list of paths, what they are)
    send_requested = Signal(object, str)

    def __init__(self, database: str | os.PathLike[str] | None = None, parent: QWidget | None = None,
                 pacs_config: PacsConfig | None = None) -> None:
        super().__init__(parent)
        self.database = study_db.database_folder(database)
        self.pacs_config = pacs_config
        #: the last remote search: its node and its study results (dicts keyed by DICOM keyword)
        self.remote_node: PacsNode | None = None
        self.remote_results: list[dict] = []
        self.remote_job: JobHandle | None = None
        self._remote_jobs = JobQueue(max_parallel=1, parent=self)
        #: retrieves of remote studies (``DatabaseUi.retrieve_remote``)
        self.retrieve_jobs = JobQueue(max_parallel=1, parent=self)
        self.jobs = JobQueue(max_parallel=1, parent=self)
        self._thumbnail_jobs = JobQueue(max_parallel=1, parent=self)
        self.import_job: JobHandle | None = None
        self.studies: list[study_db.StudyRecord] = []

        self.patient_name = QLineEdit(placeholderText="Patient name (* ? allowed)")
        self.patient_id = QLineEdit(placeholderText="Patient ID")
        self.date_from = QLineEdit(placeholderText="From YYYYMMDD")
        self.date_to = QLineEdit(placeholderText="To YYYYMMDD")
        self.modality = QComboBox()
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.modality.lineEdit().setPlaceholderText("Any modality")
        self.description = QLineEdit(placeholderText="Study or series description")
        fields = QGridLayout()
        fields.addWidget(self.patient_name, 0, 0)
        fields.addWidget(self.patient_id, 0, 1)
        fields.addWidget(self.date_from, 1, 0)
        fields.addWidget(self.date_to, 1, 1)
        fields.addWidget(self.modality, 2, 0)
        fields.addWidget(self.description, 2, 1)
        self.search_in = QComboBox()
        self.search_in.setToolTip("Also list the studies of a PACS node matching these fields (File > Query PACS... adds nodes)")
        self.search_pacs_button = QPushButton("Search PACS")
        self.search_pacs_button.setToolTip("Query the chosen PACS node with these fields; its studies are listed in italics")
        self.search_pacs_button.clicked.connect(self.search_remote)
        self.search_in.currentIndexChanged.connect(self._on_search_in_changed)
        fields.addWidget(self.search_in, 3, 0)
        fields.addWidget(self.search_pacs_button, 3, 1)
        self.reload_nodes()

        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.tree.setAlternatingRowColors(True)
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(2, Qt.SortOrder.DescendingOrder)
        self.tree.setSelectionMode(QTreeWidget.SelectionMode.SingleSelection)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.tree.itemActivated.connect(self._on_activated)
        self.tree.setMinimumHeight(160)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)

        self.import_button = QPushButton("Import...")
        self.import_button.setToolTip("Import a folder of DICOM files into the database")
        self.import_button.clicked.connect(self.choose_import_folder)
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self.open_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected study or series from the database "
                                      "(copied files are deleted; files indexed in place are left alone)")
        self.remove_button.clicked.connect(self.remove_selected)
        self.send_button = QPushButton("Send...")
        self.send_button.setToolTip("Send the selected study or series to a PACS node (C-STORE or STOW-RS)")
        self.send_button.clicked.connect(self.send_selected)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.import_button, self.open_button, self.remove_button, self.send_button):
            buttons.addWidget(button)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(fields)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

        # Searching as one types, once typing pauses.
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.refresh)
        for edit in (self.patient_name, self.patient_id, self.date_from, self.date_to, self.description):
            edit.textChanged.connect(self._search_timer.start)
            edit.returnPressed.connect(self.refresh)
        self.modality.currentTextChanged.connect(self._search_timer.start)
        self.refresh()

    # ------------------------------------------------------------------ searching
    def query(self) -> study_db.StudyQuery:
        """The search fields as a query."""
        return study_db.StudyQuery(
            patient_name=self.patient_name.text(), patient_id=self.patient_id.text(), date_from=self.date_from.text(),
            date_to=self.date_to.text(), modality=self.modality.currentText(), description=self.description.text(),
            limit=LISTED_STUDIES)

    def refresh(self) -> None:
        """Search the database with the fields' values and list the studies found."""
        self._search_timer.stop()
        try:
            self.studies = study_db.list_studies(self.query(), database=self.database)
        except MedviewerError as error:
            self.status.setText(str(error))
            return
        expanded = {self.tree.topLevelItem(i).data(0, UID_ROLE) for i in range(self.tree.topLevelItemCount())
                    if self.tree.topLevelItem(i).isExpanded()}
        self.tree.setSortingEnabled(False)
        self.tree.clear()
        for study in self.studies:
            item = _Item([study.patient_name, study.patient_id, _date_text(study.study_date), "/".join(study.modalities),
                          study.description, str(study.series_count), str(study.instance_count), study.storage])
            item.setData(0, UID_ROLE, study.study_uid)
            item.setData(0, LEVEL_ROLE, "study")
            item.setData(2, SORT_ROLE, study.study_date + study.study_time)
            item.setData(5, SORT_ROLE, study.series_count)
            item.setData(6, SORT_ROLE, study.instance_count)
            item.setToolTip(0, f"Study {study.study_uid}\nAccession {study.accession or '-'}\nBirth date "
                               f"{_date_text(study.birth_date) or '-'}")
            for series in study.series:
                title = f"{series.number}: {series.description}" if series.number is not None else series.description
                child = _Item([title or "(no description)", "", "", series.modality, series.body_part,
                               "", str(series.instance_count), _storage_text(series)])
                child.setData(0, UID_ROLE, series.series_uid)
                child.setData(0, LEVEL_ROLE, "series")
                child.setData(0, SORT_ROLE, series.number if series.number is not None else -1)
                child.setData(6, SORT_ROLE, series.instance_count)
                child.setToolTip(0, f"Series {series.series_uid}")
                picture = study_db.thumbnail_path(series, self.database)
                if picture is not None:
                    child.setIcon(0, QIcon(QPixmap(str(picture))))
                item.addChild(child)
            self.tree.addTopLevelItem(item)
            item.setExpanded(study.study_uid in expanded)
        remote = self._add_remote_rows({study.study_uid: self.study_item(study.study_uid) for study in self.studies})
        self.tree.setSortingEnabled(True)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
        count = len(self.studies)
        more = " (the first ones: refine the search to see others)" if count >= LISTED_STUDIES else ""
        on_node = f"; {remote} more on {self.remote_node.name}" if self.remote_node is not None else ""
        self.status.setText(f"{count} stud{'ies' if count != 1 else 'y'}{more}{on_node}")
        self.status.setToolTip(f"Database: {self.database}")
        self.refreshed.emit()

    def _add_remote_rows(self, local: dict[str, QTreeWidgetItem]) -> int:
        """Rows for the last remote search's studies that are not local; local ones say they are on the node too."""
        node = self.remote_node
        if node is None:
            return 0
        description = self.description.text().strip().casefold()
        added = 0
        for row in self.remote_results:
            uid = str(row.get("StudyInstanceUID") or "")
            if not uid:
                continue
            if uid in local:
                item = local[uid]
                item.setText(7, f"{item.text(7)} + on {node.name}")
                continue
            if description and description not in str(row.get("StudyDescription") or "").casefold():
                continue  # the description field filters remote studies here (C-FIND cannot)
            modalities = row.get("ModalitiesInStudy") or []
            date = str(row.get("StudyDate") or "")
            series, images = row.get("NumberOfStudyRelatedSeries"), row.get("NumberOfStudyRelatedInstances")
            item = _Item([str(row.get("PatientName") or ""), str(row.get("PatientID") or ""), _date_text(date),
                          "/".join(modalities) if isinstance(modalities, list) else str(modalities),
                          str(row.get("StudyDescription") or ""), "" if series is None else str(series),
                          "" if images is None else str(images), f"on {node.name}"])
            item.setData(0, UID_ROLE, uid)
            item.setData(0, LEVEL_ROLE, "remote")
            item.setData(2, SORT_ROLE, date + str(row.get("StudyTime") or ""))
            item.setData(5, SORT_ROLE, series if series is not None else -1)
            item.setData(6, SORT_ROLE, images if images is not None else -1)
            grey = QBrush(_remote_colour(self.palette()))
            for column in range(len(COLUMNS)):
                font = item.font(column)
                font.setItalic(True)
                item.setFont(column, font)
                item.setForeground(column, grey)
            item.setToolTip(0, f"On {node.describe()}, not in the local database\nStudy {uid}\n"
                               f"Accession {row.get('AccessionNumber') or '-'}\nDouble-click to retrieve and open it")
            self.tree.addTopLevelItem(item)
            added += 1
        return added

    def study_item(self, study_uid: str, level: str | None = None) -> QTreeWidgetItem | None:
        for row in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(row)
            if item.data(0, UID_ROLE) == study_uid and (level is None or item.data(0, LEVEL_ROLE) == level):
                return item
        return None

    def remote_uids(self) -> list[str]:
        """Study UIDs of the remote-only rows, in the order shown."""
        return [self.tree.topLevelItem(row).data(0, UID_ROLE) for row in range(self.tree.topLevelItemCount())
                if self.tree.topLevelItem(row).data(0, LEVEL_ROLE) == "remote"]

    # ------------------------------------------------------------------ remote (PACS) search
    def reload_nodes(self, config: PacsConfig | None = None) -> None:
        """Fill "Search in" with the PACS nodes of the settings (or ``config``)."""
        if config is not None:
            self.pacs_config = config
        if self.pacs_config is None:
            try:
                self.pacs_config = load_pacs_config()
            except MedviewerError as error:  # a broken pacs.json must not stop the local database
                self.pacs_config = PacsConfig()
                self.search_in.setToolTip(f"PACS settings not read: {error}")
        chosen = self.search_in.currentData()
        self.search_in.blockSignals(True)
        self.search_in.clear()
        self.search_in.addItem("Local database", LOCAL_ONLY)
        for node in self.pacs_config.nodes:
            self.search_in.addItem(f"Local database and {node.name}", node.name)
        index = self.search_in.findData(chosen) if chosen else 0
        self.search_in.setCurrentIndex(max(index, 0))
        self.search_in.blockSignals(False)
        self._on_search_in_changed()

    def chosen_node(self) -> PacsNode | None:
        name = self.search_in.currentData()
        if not name or self.pacs_config is None:
            return None
        return next((n for n in self.pacs_config.nodes if n.name == name), None)

    def _on_search_in_changed(self, *_args) -> None:
        self.search_pacs_button.setEnabled(self.chosen_node() is not None)
        if self.chosen_node() is None and self.remote_node is not None:
            self.remote_node, self.remote_results = None, []
            if hasattr(self, "tree"):
                self.refresh()

    def remote_query(self):
        """The search fields as a PACS study query (a name without wildcards matches anywhere in it)."""
        from medviewer.services.pacs.query import Query

        name = self.patient_name.text().strip()
        if name and not any(c in name for c in "*?"):
            name = f"*{name}*"
        start, stop = self.date_from.text().strip(), self.date_to.text().strip()
        dates = (start if start == stop else f"{start}-{stop}") if start and stop else f"{start}-" if start else f"-{stop}" if stop else ""
        return Query(level="study", patient_name=name, patient_id=self.patient_id.text().strip(), study_date=dates,
                     modality=self.modality.currentText().strip()).validate()

    def search_remote(self) -> JobHandle | None:
        """Query the chosen node with the search fields (worker thread); its studies join the listing."""
        node = self.chosen_node()
        if node is None or self.pacs_config is None:
            self.status.setText("Choose a PACS node in \"Search in\" first.")
            return None
        try:
            query = self.remote_query()
        except MedviewerError as error:
            self.status.setText(str(error))
            return None
        config = self.pacs_config

        def job(progress, cancel):
            from medviewer.services.pacs import operations  # pynetdicom loads only when asked for

            return operations.query(node, config, query, progress, cancel)

        title = f"Searching {node.name}"
        handle = self._remote_jobs.submit(job, title)
        self.remote_job = handle
        handle.finished.connect(lambda rows, n=node: self.show_remote(n, rows))
        handle.failed.connect(lambda error, n=node: self._remote_failed(n, error))
        JobProgressDialog(handle, title, self)
        self.status.setText(f"{title}...")
        return handle

    def show_remote(self, node: PacsNode, rows: list[dict]) -> None:
        """List ``rows`` (study results of ``node``) beside the local studies."""
        self.remote_node, self.remote_results = node, list(rows)
        self.refresh()

    def _remote_failed(self, node: PacsNode, error: BaseException) -> None:
        text = dialogs.error_text(error)
        text = text if node.name in text else f"{node.describe()}: {text}"
        self.status.setText(f"Searching {node.name} failed")
        dialogs.show_error(self, "Search PACS", text)

    def remote_result(self, study_uid: str) -> dict | None:
        return next((r for r in self.remote_results if r.get("StudyInstanceUID") == study_uid), None)

    def listed_uids(self) -> list[str]:
        """Study UIDs in the order shown (after sorting)."""
        return [self.tree.topLevelItem(row).data(0, UID_ROLE) for row in range(self.tree.topLevelItemCount())]

    # ------------------------------------------------------------------ opening
    def _selected(self) -> QTreeWidgetItem | None:
        items = self.tree.selectedItems()
        return items[0] if items else None

    def _study_uid_of(self, item: QTreeWidgetItem) -> str:
        return item.parent().data(0, UID_ROLE) if item.data(0, LEVEL_ROLE) == "series" else item.data(0, UID_ROLE)

    def _on_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        self._open_item(item)

    def open_selected(self) -> None:
        item = self._selected()
        if item is not None:
            self._open_item(item)

    def _open_item(self, item: QTreeWidgetItem) -> None:
        if item.data(0, LEVEL_ROLE) == "remote":
            row = self.remote_result(item.data(0, UID_ROLE))
            if row is not None and self.remote_node is not None:
                self.remote_activated.emit(self.remote_node, row)
            return
        self.study_activated.emit(self._study_uid_of(item))

    def _context_menu(self, point) -> None:
        item = self.tree.itemAt(point)
        if item is None:
            return
        self.tree.setCurrentItem(item)
        menu = QMenu(self)
        if item.data(0, LEVEL_ROLE) == "remote":
            menu.addAction("Retrieve and open", self.open_selected)
        else:
            menu.addAction("Open", self.open_selected)
            menu.addAction("Send to PACS...", self.send_selected)
            menu.addSeparator()
            menu.addAction("Remove from database", self.remove_selected)
        menu.exec(self.tree.viewport().mapToGlobal(point))

    # ------------------------------------------------------------------ sending
    def send_selected(self) -> None:
        """Ask for the selected local study's or series' files to be sent to a PACS (``send_requested``)."""
        item = self._selected()
        if item is None or item.data(0, LEVEL_ROLE) == "remote":
            self.status.setText("Select a study or series of the local database to send.")
            return
        uid, level = item.data(0, UID_ROLE), item.data(0, LEVEL_ROLE)
        try:
            with study_db.open_store(self.database) as store:
                files = [f.path for f in store.instance_files(uid) if f.path.is_file()]
        except MedviewerError as error:
            dialogs.show_error(self, "Send to PACS", dialogs.error_text(error))
            return
        if not files:
            dialogs.show_error(self, "Send to PACS", f"the files of {level} {uid} are no longer where they were indexed")
            return
        what = (f"study of {item.text(0)} ({item.text(2)}), {len(files)} files" if level == "study"
                else f"series {item.text(0)} of {item.parent().text(0)}, {len(files)} files")
        self.send_requested.emit(files, what)

    # ------------------------------------------------------------------ removing
    def remove_selected(self) -> None:
        """Remove the selected study or series, after asking."""
        item = self._selected()
        if item is None:
            self.status.setText("Select a study or series to remove.")
            return
        level, uid = item.data(0, LEVEL_ROLE), item.data(0, UID_ROLE)
        if level == "remote":
            self.status.setText("That study is on the PACS, not in the local database: nothing to remove.")
            return
        what = f"the study of {item.text(0)} ({item.text(2)})" if level == "study" else f"the series {item.text(0)}"
        if not confirm(self, "Remove from database", f"Remove {what} from the database?\n\n"
                       "Files copied into the database are deleted; files indexed in place are left where they are."):
            return
        self.remove_uid(uid)

    def remove_uid(self, uid: str) -> study_db.RemovalReport | None:
        try:
            report = study_db.remove(uid, database=self.database)
        except MedviewerError as error:
            dialogs.show_error(self, "Cannot remove", dialogs.error_text(error))
            return None
        self.refresh()
        self.status.setText(report.summary())
        return report

    # ------------------------------------------------------------------ importing
    def choose_import_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import into database", str(Path.home()))
        if not folder:
            return
        copy = ask_copy(self, folder)
        if copy is not None:
            self.import_folder(folder, copy)

    def import_folder(self, folder: str | os.PathLike[str], copy: bool) -> JobHandle:
        """Import in the background (progress dialog with Cancel); thumbnails follow in the background."""
        folder = os.fspath(folder)
        database = self.database

        def job(progress, cancel):
            return study_db.import_files(folder, copy=copy, progress=progress, cancel=cancel, database=database)

        title = f"Importing {Path(folder).name or folder}"
        handle = self.jobs.submit(job, title)
        self.import_job = handle
        JobProgressDialog(handle, title, self)
        handle.finished.connect(self._on_imported)
        handle.cancelled.connect(self._on_import_cancelled)
        handle.failed.connect(self._on_import_failed)
        return handle

    def _on_imported(self, report: study_db.ImportReport) -> None:
        self.refresh()
        self.status.setText(report.summary())
        self.make_thumbnails()

    def _on_import_cancelled(self) -> None:
        self.refresh()  # the batches committed before the cancel are kept
        self.status.setText("Import cancelled; what was imported before is kept.")
        self.make_thumbnails()

    def _on_import_failed(self, error: BaseException) -> None:
        self.refresh()
        dialogs.show_error(self, "Import failed", dialogs.error_text(error))

    def make_thumbnails(self) -> JobHandle:
        database = self.database

        def job(progress, cancel):
            return study_db.make_thumbnails(progress, cancel, database=database)

        handle = self._thumbnail_jobs.submit(job, "Thumbnails")
        handle.finished.connect(lambda made: self._show_thumbnails() if made else None)
        handle.failed.connect(lambda error: self.status.setText(f"Thumbnails: {error}"))
        return handle

    def _show_thumbnails(self) -> None:
        """List again with the new thumbnails, keeping what the status line says (e.g. an import's summary)."""
        said = self.status.text()
        self.refresh()
        self.status.setText(said)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        queues = (self.jobs, self._thumbnail_jobs, self._remote_jobs, self.retrieve_jobs)
        for queue in queues:
            queue.cancel_all()
        for queue in queues:
            queue.shutdown(timeout_ms)


def _remote_colour(palette: QPalette) -> QColor:
    """Text colour of remote rows: between the text and the background, still readable."""
    text, base = palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base)
    return QColor(*((a * 3 + b * 2) // 5 for a, b in ((text.red(), base.red()), (text.green(), base.green()),
                                                      (text.blue(), base.blue()))))


def _storage_text(series: study_db.SeriesRecord) -> str:
    return series.to_dict()["storage"]


class _CloseWatcher(QObject):
    """Stops the panel's imports and thumbnails when the main window closes."""

    def __init__(self, panel: DatabasePanel) -> None:
        super().__init__(panel)
        self.panel = panel

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Close:
            self.panel.shutdown()
        return False


class DatabaseUi:
    """The database panel docked in a main window, with File > Import into database..."""

    def __init__(self, window, database: str | os.PathLike[str] | None = None, pacs_config: PacsConfig | None = None) -> None:
        self.window = window
        self.panel = DatabasePanel(database, pacs_config=pacs_config)
        self.retrieve_jobs = self.panel.retrieve_jobs
        self.retrieval = None  # the last StudyRetrieval started from the panel
        self.send_dialog = None  # the last Send to PACS dialog opened from the panel
        self.retrieve_folder = cache_dir() / "pacs-retrieved"
        self._closing = _CloseWatcher(self.panel)
        self.dock = window.add_panel(self.panel, "Study database", "left")
        series_dock = getattr(window, "study_dock", None)
        if series_dock is not None:
            window.tabifyDockWidget(series_dock, self.dock)  # a tab beside the series of the open study
        self.dock.show()
        self.panel.study_activated.connect(self.open_study)
        self.panel.remote_activated.connect(self.retrieve_remote)
        self.panel.send_requested.connect(self.send_files)
        self.import_action = QAction("Import into &database...", window)
        self.import_action.setStatusTip("Copy or index a folder of DICOM files into the local study database")
        self.import_action.triggered.connect(self._choose_import)
        file_menu = window.menu("File")
        actions = file_menu.actions()
        folder = next((i for i, a in enumerate(actions) if a.text().replace("&", "") == "Open folder..."), None)
        before = actions[folder + 1] if folder is not None and folder + 1 < len(actions) else None
        file_menu.insertAction(before, self.import_action) if before is not None else file_menu.addAction(self.import_action)
        window.installEventFilter(self._closing)

    def _choose_import(self) -> None:
        self.dock.show()
        self.dock.raise_()
        self.panel.choose_import_folder()

    def open_study(self, study_uid: str) -> JobHandle | None:
        """Open all the series of a database study in the main window (the largest is shown)."""
        database = self.panel.database
        study = next((s for s in self.panel.studies if s.study_uid == study_uid), None)
        name = (f"{study.patient_name or study.patient_id} {_date_text(study.study_date)}".strip()
                if study is not None else study_uid)

        def scan(progress, cancel):
            return study_db.study_series(study_uid, progress, cancel, database=database)

        handle = self.window.open_scanned(scan, name or study_uid)
        series_dock = getattr(self.window, "study_dock", None)
        if handle is not None and series_dock is not None:
            handle.finished.connect(lambda _result: series_dock.raise_())  # show the study's series
        return handle


    def retrieve_remote(self, node: PacsNode, row: dict):
        """Retrieve a remote study into the database and open it as its series arrive (Retry on failure)."""
        from medviewer.ui.pacs_dialog import StudyRetrieval  # pynetdicom loads only when asked for

        study_uid = str(row.get("StudyInstanceUID") or "")
        name = f"{row.get('PatientName') or row.get('PatientID') or ''} {_date_text(str(row.get('StudyDate') or ''))}".strip()
        retrieval = StudyRetrieval(self.window, self.retrieve_jobs, node, self.panel.pacs_config, self.retrieve_folder / study_uid,
                                   study_uid, "", True, name or study_uid, parent=self.panel, database=self.panel.database)
        retrieval.retrieved.connect(lambda result: self._retrieved(node, result))
        retrieval.gave_up.connect(lambda _message: self.panel.refresh())
        series_dock = getattr(self.window, "study_dock", None)
        if series_dock is not None:
            retrieval.first_opened.connect(series_dock.raise_)  # the arriving series are listed there
        self.retrieval = retrieval
        retrieval.start()
        self.panel.status.setText(f"Retrieving from {node.name}...")
        return retrieval

    def _retrieved(self, node: PacsNode, result) -> None:
        self.panel.refresh()  # the study is local now
        text = f"{len(result.files)} instances retrieved from {node.name} into {result.folder}"
        if result.database_error:
            text += f"; not indexed in the database: {result.database_error}"
        self.panel.status.setText(text)
        self.panel.make_thumbnails()

    def send_files(self, files: list, what: str):
        """File > Send to PACS... for files of the database."""
        from medviewer.ui.pacs_dialog import open_send_dialog

        self.send_dialog = open_send_dialog(self.window, files, what, self.panel.pacs_config)
        return self.send_dialog


def install_database(window, database: str | os.PathLike[str] | None = None, pacs_config: PacsConfig | None = None) -> DatabaseUi:
    """Add the study database panel and File > Import into database... to ``window`` (once).

    ``pacs_config`` (default: the user's PACS settings) gives the nodes "Search in" offers.
    """
    existing = getattr(window, "database_ui", None)
    if isinstance(existing, DatabaseUi):
        return existing
    window.database_ui = DatabaseUi(window, database, pacs_config)
    return window.database_ui
