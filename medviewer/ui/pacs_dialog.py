"""File > Query PACS... and File > Send to PACS...: pick a node, search it, retrieve studies or
series and open them, and send the active label map back as DICOM SEG (the clinical loop)
or any series of the local database.

:class:`StudyRetrieval` is the retrieve the dialog and the study database panel share: the
study opens as soon as its first series is complete, later series join the series browser
as they arrive (progress per series, Cancel), and a failure offers Retry.

All network work runs as jobs (``medviewer.services.pacs.operations``) on the dialog's
own queue, with a progress dialog and Cancel; errors name the node and are shown in a
message box. Node settings live in ``pacs.json`` (``services.pacs.nodes``); a node's
password or token goes to the system keyring, never to the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.errors import MedviewerError
from medviewer.core.paths import cache_dir
from medviewer.services.pacs import operations
from medviewer.services.pacs.nodes import (
    AUTH_KINDS,
    PacsConfig,
    PacsNode,
    load_pacs_config,
    save_pacs_config,
    set_secret,
)
from medviewer.services.pacs.query import Query
from medviewer.ui import dialogs
from medviewer.ui.jobs import JobHandle, JobProgressDialog, JobQueue

STUDY_COLUMNS = ("PatientName", "PatientID", "StudyDate", "StudyDescription", "AccessionNumber", "ModalitiesInStudy",
                 "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_COLUMNS = ("SeriesNumber", "Modality", "SeriesDescription", "BodyPartExamined", "NumberOfSeriesRelatedInstances")
_TITLES = {"PatientName": "Patient", "PatientID": "Patient ID", "StudyDate": "Date", "StudyDescription": "Description",
           "AccessionNumber": "Accession", "ModalitiesInStudy": "Modalities", "NumberOfStudyRelatedSeries": "Series",
           "NumberOfStudyRelatedInstances": "Images", "SeriesNumber": "#", "Modality": "Modality",
           "SeriesDescription": "Description", "BodyPartExamined": "Body part", "NumberOfSeriesRelatedInstances": "Images"}


def ask_retry(parent: QWidget | None, title: str, message: str) -> bool:
    """Show a failed transfer with Retry / Close; True for Retry (tests replace this function)."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, message,
                      QMessageBox.StandardButton.Retry | QMessageBox.StandardButton.Close, parent)
    box.setDefaultButton(QMessageBox.StandardButton.Retry)
    return box.exec() == QMessageBox.StandardButton.Retry


def describe_failure(node: PacsNode, error: BaseException) -> str:
    """The error's text, naming the node when the error itself does not."""
    text = dialogs.error_text(error)
    return text if node.name in text else f"{node.describe()}: {text}"


class StudyRetrieval(QObject):
    """One retrieve of a study or series from a node into ``folder``, shown in ``window``.

    With ``open_after`` the first complete series opens at once (``window.open_scanned``) while
    the others keep arriving; each later series is added to the series browser. The job runs on
    ``jobs`` with a progress dialog (per-series messages) and Cancel. A failed retrieve leaves
    nothing in the database (``operations.retrieve`` removes its files and indexes only complete
    retrieves) and asks Retry / Close; Retry runs the same retrieve again.
    """

    #: a series finished arriving: (SeriesInstanceUID, SeriesList of it); emitted on the worker thread
    series_arrived = Signal(str, object)
    #: the retrieve ended well: RetrieveResult
    retrieved = Signal(object)
    #: the retrieve failed and the user chose Close: message
    gave_up = Signal(str)
    #: the first complete series was opened in the window (the rest may still be arriving)
    first_opened = Signal()

    def __init__(self, window, jobs: JobQueue, node: PacsNode, config: PacsConfig, folder: Path, study_uid: str = "",
                 series_uid: str = "", open_after: bool = True, name: str = "", parent: QWidget | None = None,
                 database: str | os.PathLike[str] | None = None) -> None:
        super().__init__(parent)
        self.window_ = window
        self.jobs = jobs
        self.node, self.config, self.folder = node, config, Path(folder)
        self.study_uid, self.series_uid = study_uid, series_uid
        self.open_after = open_after
        self.name = name or series_uid or study_uid
        self.database = database
        self.parent_widget = parent
        self.attempts = 0
        self.handle: JobHandle | None = None
        self.open_handle: JobHandle | None = None
        self.arrived: list = []  # SeriesInfo of every series arrived so far, in arrival order
        self.result = None
        self.series_arrived.connect(self._on_series)

    @property
    def title(self) -> str:
        return f"Retrieve from {self.node.name}"

    def start(self) -> JobHandle:
        """(Re)start the retrieve; the job's handle."""
        self.attempts += 1
        self.arrived, self.open_handle, self._declined = [], None, False
        node, config, folder, database = self.node, self.config, self.folder, self.database
        study_uid, series_uid, want = self.study_uid, self.series_uid, self.open_after and self.window_ is not None

        def job(progress, cancel):
            def on_series(uid: str, files: list[Path]) -> None:
                if want and files:
                    try:
                        found = operations.series_of_files(files, cancel)
                    except MedviewerError:
                        return  # not loadable (e.g. a SEG series): nothing to show
                    self.series_arrived.emit(uid, found)  # queued to the UI thread

            return operations.retrieve(node, config, folder, study_uid, series_uid, progress, cancel, on_series,
                                       database=database)

        handle = self.jobs.submit(job, self.title)
        handle.finished.connect(self._on_finished)
        handle.failed.connect(self._on_failed)
        JobProgressDialog(handle, self.title, parent=self.parent_widget)
        self.handle = handle
        return handle

    # ------------------------------------------------------------------ arrivals (UI thread)
    def _on_series(self, _uid: str, found) -> None:
        window = self.window_
        if self._declined or not len(found):
            return
        if self.open_handle is None:
            self.arrived = list(found)
            self.open_handle = window.open_scanned(lambda _progress, _cancel, f=found: f, self.name)
            if self.open_handle is None:  # the user kept the open study (unsaved edits)
                self._declined = True
                return
            self.open_handle.finished.connect(lambda _result: (self._show_arrived(), self.first_opened.emit()))
            return
        self.arrived += list(found)
        if self.open_handle.is_done:
            self._show_arrived()

    def _show_arrived(self) -> None:
        """List every series arrived so far in the window's series browser (the open one stays marked)."""
        window = self.window_
        browser = window.study_browser
        if [id(s) for s in browser.series] != [id(s) for s in self.arrived]:
            browser.set_series(self.arrived)
            start_thumbnails = getattr(window, "_start_thumbnails", None)
            if start_thumbnails is not None:
                start_thumbnails(self.arrived)
        document = window.document
        browser.mark_loaded(document.series if document is not None else None)

    # ------------------------------------------------------------------ outcome
    def _on_finished(self, result) -> None:
        self.result = result
        if self.open_after and self.window_ is not None and result.files and self.open_handle is None and not self._declined:
            self.window_.open_path(result.folder)  # nothing streamed (e.g. a single series): open the folder
        self.retrieved.emit(result)

    def _on_failed(self, error: BaseException) -> None:
        message = describe_failure(self.node, error)
        if ask_retry(self.parent_widget, f"{self.title} failed", message + "\n\nNothing of this retrieve was kept."):
            self.start()
        else:
            self.gave_up.emit(message)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return str(value)


class NodeEditor(QGroupBox):
    """Fields of one node plus our own AE title and listener port."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Node settings", parent)
        form = QFormLayout(self)
        self.name = QLineEdit()
        self.ae_title = QLineEdit()
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.tls = QCheckBox("TLS")
        self.use_move = QCheckBox("Retrieve with C-MOVE (default C-GET)")
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://server/dicom-web (a DICOMweb node; leave empty for DIMSE)")
        self.auth = QComboBox()
        self.auth.addItems(AUTH_KINDS)
        self.username = QLineEdit()
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("stored in the system keyring; empty keeps the stored one")
        self.our_ae = QLineEdit()
        self.listener_port = QSpinBox()
        self.listener_port.setRange(1, 65535)
        for label, widget in (("Name", self.name), ("Called AE title", self.ae_title), ("Host", self.host), ("Port", self.port),
                              ("", self.tls), ("", self.use_move), ("DICOMweb URL", self.url), ("Authentication", self.auth),
                              ("User", self.username), ("Password / token", self.secret),
                              ("Our AE title", self.our_ae), ("Our listener port", self.listener_port)):
            form.addRow(label, widget)

    def show_node(self, node: PacsNode | None, config: PacsConfig) -> None:
        node = node or PacsNode(name="")
        self.name.setText(node.name)
        self.ae_title.setText(node.ae_title)
        self.host.setText(node.host)
        self.port.setValue(int(node.port))
        self.tls.setChecked(node.tls)
        self.use_move.setChecked(node.use_move)
        self.url.setText(node.dicomweb_url)
        self.auth.setCurrentText(node.auth)
        self.username.setText(node.username)
        self.secret.clear()
        self.our_ae.setText(config.ae_title)
        self.listener_port.setValue(int(config.listener_port))

    def node(self) -> PacsNode:
        return PacsNode(name=self.name.text().strip(), ae_title=self.ae_title.text().strip(), host=self.host.text().strip(),
                        port=self.port.value(), tls=self.tls.isChecked(), dicomweb_url=self.url.text().strip(),
                        auth=self.auth.currentText(), username=self.username.text().strip(), use_move=self.use_move.isChecked())


class PacsDialog(QDialog):
    """Query/retrieve/send window for one main window (``window.open_path`` opens what arrived)."""

    def __init__(self, window=None, config: PacsConfig | None = None, config_path: Path | None = None) -> None:
        super().__init__(window)
        self.setWindowTitle("Query PACS")
        self.window_ = window
        self.config_path = config_path
        self.config = config if config is not None else load_pacs_config(config_path)
        self.jobs = JobQueue(max_parallel=1, parent=self)
        self.results: list[dict] = []
        self.last_job: JobHandle | None = None
        self.last_retrieved = None
        self._build()
        self._reload_nodes()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.node_combo = QComboBox()
        self.node_combo.currentIndexChanged.connect(self._on_node_chosen)
        self.verify_button = QPushButton("Verify")
        self.verify_button.clicked.connect(self.verify)
        self.edit_button = QPushButton("Node settings...")
        self.edit_button.setCheckable(True)
        top.addWidget(QLabel("Node"))
        top.addWidget(self.node_combo, 1)
        top.addWidget(self.verify_button)
        top.addWidget(self.edit_button)
        layout.addLayout(top)

        self.editor = NodeEditor(self)
        self.editor.setVisible(False)
        self.edit_button.toggled.connect(self.editor.setVisible)
        buttons = QHBoxLayout()
        self.save_node_button = QPushButton("Save node")
        self.save_node_button.clicked.connect(self.save_node)
        self.remove_node_button = QPushButton("Remove node")
        self.remove_node_button.clicked.connect(self.remove_node)
        buttons.addWidget(self.save_node_button)
        buttons.addWidget(self.remove_node_button)
        self.editor.layout().addRow(buttons)
        layout.addWidget(self.editor)

        search = QGroupBox("Search")
        form = QFormLayout(search)
        self.level = QComboBox()
        self.level.addItems(["study", "series"])
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("e.g. DOE* (wildcards * and ?)")
        self.patient_id = QLineEdit()
        self.date_from = QLineEdit()
        self.date_from.setPlaceholderText("YYYYMMDD")
        self.date_to = QLineEdit()
        self.date_to.setPlaceholderText("YYYYMMDD")
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        self.modality = QLineEdit()
        self.accession = QLineEdit()
        self.study_uid = QLineEdit()
        self.study_uid.setPlaceholderText("series level: the study whose series to list")
        for label, field in (("Level", self.level), ("Patient name", self.patient_name), ("Patient ID", self.patient_id)):
            form.addRow(label, field)
        form.addRow("Study date", dates)
        for label, field in (("Modality", self.modality), ("Accession", self.accession), ("Study UID", self.study_uid)):
            form.addRow(label, field)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        form.addRow(self.search_button)
        layout.addWidget(search)

        self.table = QTableWidget(0, 0)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSortingEnabled(True)
        self.table.doubleClicked.connect(lambda _index: self.retrieve(open_after=True))
        layout.addWidget(self.table, 1)
        self.status = QLabel("")
        layout.addWidget(self.status)

        bottom = QHBoxLayout()
        self.destination = QLineEdit(str(cache_dir() / "pacs-retrieved"))
        browse = QPushButton("Folder...")
        browse.clicked.connect(self._choose_destination)
        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.clicked.connect(lambda: self.retrieve(open_after=False))
        self.open_button = QPushButton("Retrieve and open")
        self.open_button.clicked.connect(lambda: self.retrieve(open_after=True))
        self.send_button = QPushButton("Send segmentation to PACS")
        self.send_button.setToolTip("Export the active label map as DICOM SEG and store it on the selected node")
        self.send_button.clicked.connect(self.send_segmentation)
        bottom.addWidget(QLabel("Into"))
        bottom.addWidget(self.destination, 1)
        bottom.addWidget(browse)
        bottom.addWidget(self.retrieve_button)
        bottom.addWidget(self.open_button)
        bottom.addWidget(self.send_button)
        layout.addLayout(bottom)
        self.resize(960, 640)

    # ------------------------------------------------------------------ nodes
    def _reload_nodes(self, select: str = "") -> None:
        self.node_combo.blockSignals(True)
        self.node_combo.clear()
        for node in self.config.nodes:
            self.node_combo.addItem(f"{node.name}  -  {node.describe().split('(', 1)[-1].rstrip(')')}", node.name)
        self.node_combo.blockSignals(False)
        index = self.node_combo.findData(select) if select else 0
        self.node_combo.setCurrentIndex(max(index, 0) if self.config.nodes else -1)
        self._on_node_chosen()
        if not self.config.nodes:
            self.edit_button.setChecked(True)
            self.status.setText("No PACS node yet: fill in the node settings and press Save node.")

    def _on_node_chosen(self, *_args) -> None:
        self.editor.show_node(self.current_node(), self.config)

    def current_node(self) -> PacsNode | None:
        name = self.node_combo.currentData()
        return next((n for n in self.config.nodes if n.name == name), None)

    def save_node(self) -> bool:
        node = self.editor.node()
        try:
            if not node.name:
                raise MedviewerError("give the node a name")
            from medviewer.services.pacs.nodes import check_ae_title

            self.config.ae_title = check_ae_title(self.editor.our_ae.text(), "our AE title")
            self.config.listener_port = self.editor.listener_port.value()
            self.config.set_node(node)
            if self.editor.secret.text():
                set_secret(node.name, self.editor.secret.text())
            save_pacs_config(self.config, self.config_path)
        except MedviewerError as error:
            dialogs.show_error(self, "PACS node", str(error))
            return False
        self._reload_nodes(select=node.name)
        self._nodes_changed()
        self.status.setText(f"Saved node '{node.name}'.")
        return True

    def remove_node(self) -> None:
        node = self.current_node()
        if node is None:
            return
        try:
            self.config.remove_node(node.name)
            save_pacs_config(self.config, self.config_path)
        except MedviewerError as error:
            dialogs.show_error(self, "PACS node", str(error))
        self._reload_nodes()
        self._nodes_changed()

    def _nodes_changed(self) -> None:
        """The study database panel's "Search in" offers the nodes as saved here."""
        database_ui = getattr(self.window_, "database_ui", None)
        if database_ui is not None:
            database_ui.panel.reload_nodes(self.config)

    def _choose_destination(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Retrieve into", self.destination.text())
        if folder:
            self.destination.setText(folder)

    # ------------------------------------------------------------------ jobs
    def _node_or_complain(self) -> PacsNode | None:
        node = self.current_node()
        if node is None:
            dialogs.show_error(self, "Query PACS", "Choose a PACS node first (Node settings... to add one).")
        return node

    def _run(self, fn, title: str, on_done) -> JobHandle:
        handle = self.jobs.submit(fn, title)
        handle.finished.connect(on_done)
        handle.failed.connect(lambda error, t=title: self._failed(t, error))
        handle.cancelled.connect(lambda t=title: self.status.setText(f"{t}: cancelled"))
        JobProgressDialog(handle, title, parent=self)
        self.last_job = handle
        self.status.setText(f"{title}...")
        return handle

    def _failed(self, title: str, error: BaseException) -> None:
        self.status.setText(f"{title} failed")
        dialogs.show_error(self, title, dialogs.error_text(error))

    def query(self) -> Query:
        start, stop = self.date_from.text().strip(), self.date_to.text().strip()
        if start and stop:
            dates = start if start == stop else f"{start}-{stop}"
        else:
            dates = f"{start}-" if start else f"-{stop}" if stop else ""
        return Query(level=self.level.currentText(), patient_name=self.patient_name.text().strip(),
                     patient_id=self.patient_id.text().strip(), study_date=dates, modality=self.modality.text().strip(),
                     accession_number=self.accession.text().strip(), study_uid=self.study_uid.text().strip())

    def verify(self) -> JobHandle | None:
        node = self._node_or_complain()
        if node is None:
            return None
        return self._run(lambda progress, cancel: operations.verify(node, self.config), f"Verify {node.name}",
                         lambda _result: self.status.setText(f"{node.describe()} answers."))

    def search(self) -> JobHandle | None:
        node = self._node_or_complain()
        if node is None:
            return None
        query = self.query()
        try:
            query.validate()
        except MedviewerError as error:
            dialogs.show_error(self, "Query PACS", str(error))
            return None
        return self._run(lambda progress, cancel: operations.query(node, self.config, query, progress, cancel),
                         f"Search {node.name}", lambda rows, level=query.level: self.show_results(rows, level))

    def show_results(self, rows: list[dict], level: str) -> None:
        self.results = list(rows)
        self.result_level = level
        columns = STUDY_COLUMNS if level == "study" else SERIES_COLUMNS
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels([_TITLES[c] for c in columns])
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(columns):
                item = QTableWidgetItem()
                value = row.get(key)
                if isinstance(value, int):
                    item.setData(Qt.ItemDataRole.DisplayRole, value)  # numeric sort
                else:
                    item.setText(_cell(value))
                item.setData(Qt.ItemDataRole.UserRole, r)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        if rows:
            self.table.selectRow(0)
        self.status.setText(f"{len(rows)} {level} result{'s' if len(rows) != 1 else ''}")

    def selected_result(self) -> dict | None:
        items = self.table.selectedItems()
        if not items:
            return None
        return self.results[int(items[0].data(Qt.ItemDataRole.UserRole))]

    def retrieve(self, open_after: bool = False) -> JobHandle | None:
        node = self._node_or_complain()
        row = self.selected_result()
        if node is None or row is None:
            if node is not None:
                dialogs.show_error(self, "Retrieve", "Search first and select a study or series.")
            return None
        study_uid = str(row.get("StudyInstanceUID") or "")
        series_uid = str(row.get("SeriesInstanceUID") or "") if getattr(self, "result_level", "study") == "series" else ""
        folder = Path(self.destination.text().strip() or cache_dir() / "pacs-retrieved") / (series_uid or study_uid)
        name = str(row.get("PatientName") or row.get("SeriesDescription") or series_uid or study_uid)
        retrieval = StudyRetrieval(self.window_, self.jobs, node, self.config, folder, study_uid, series_uid,
                                   open_after, name, parent=self)
        retrieval.retrieved.connect(self._on_retrieved)
        retrieval.gave_up.connect(lambda _message: self.status.setText(f"{retrieval.title} failed"))
        self.retrieval = retrieval
        handle = retrieval.start()
        handle.cancelled.connect(lambda: self.status.setText(f"{retrieval.title}: cancelled"))
        self.last_job = handle
        self.status.setText(f"{retrieval.title}...")
        return handle

    def _on_retrieved(self, result) -> None:
        self.last_retrieved = result
        self.status.setText(f"{len(result.files)} instances retrieved into {result.folder}")

    def send_segmentation(self) -> JobHandle | None:
        node = self._node_or_complain()
        if node is None:
            return None
        try:
            label_map, sources, algorithm = self._segmentation_to_send()
        except MedviewerError as error:
            dialogs.show_error(self, "Send segmentation to PACS", str(error))
            return None

        def job(progress, cancel):
            return operations.send_segmentation(node, self.config, label_map, sources, algorithm, progress, cancel)

        return self._run(job, f"Send segmentation to {node.name}",
                         lambda result: self.status.setText(f"Sent DICOM SEG of '{label_map.name}' to {node.name}."))

    def _segmentation_to_send(self):
        return segmentation_to_send(self.window_)

    def done(self, result: int) -> None:  # noqa: D401 - Qt override: stop our jobs with the dialog
        self.jobs.cancel_all()
        super().done(result)


def segmentation_to_send(window):
    """The active label map, its series' DICOM files and the model that proposed it (if any)."""
    from medviewer.services.open_study import dicom_source_files
    from medviewer.services.annotations import is_model_source, split_model_source

    document = window.document if window is not None else None
    label_map = document.active_label_map if document is not None else None
    if label_map is None:
        raise MedviewerError("there is no label map to send: open a study and draw or load labels first")
    sources = dicom_source_files(document)
    if not sources:
        raise MedviewerError("DICOM SEG needs a series opened from DICOM files")
    algorithm = None
    controller = window.editing.controller if getattr(window, "editing", None) is not None else None
    if controller is not None:
        source = controller.tracker.original_of(label_map)
        if source is not None and is_model_source(source.source):
            algorithm = split_model_source(source.source)
    return label_map, [os.fspath(p) for p in sources], algorithm


class SendDialog(QDialog):
    """File > Send to PACS...: the open study's active label map as DICOM SEG, or given DICOM files.

    ``files`` (a series or study of the local database) are sent as they are (C-STORE or
    STOW-RS); without them the active label map is exported as SEG over its series and sent.
    Progress and Cancel in a progress dialog; a failure names the node and offers Retry.
    """

    def __init__(self, window=None, files=None, what: str = "", config: PacsConfig | None = None,
                 config_path: Path | None = None) -> None:
        super().__init__(window)
        self.setWindowTitle("Send to PACS")
        self.window_ = window
        self.files = [os.fspath(f) for f in files] if files else None
        self.config = config if config is not None else load_pacs_config(config_path)
        self.jobs = JobQueue(max_parallel=1, parent=self)
        self.last_job: JobHandle | None = None
        self.last_result = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.node_combo = QComboBox()
        for node in self.config.nodes:
            self.node_combo.addItem(node.describe(), node.name)
        if self.files:
            what = what or f"{len(self.files)} DICOM file{'s' if len(self.files) != 1 else ''}"
        else:
            label_map = window.document.active_label_map if window is not None and window.document is not None else None
            what = (f"label map '{label_map.name}' as DICOM SEG" if label_map is not None
                    else "the active label map as DICOM SEG (none open)")
        self.what = QLabel(what)
        self.what.setWordWrap(True)
        form.addRow("Send", self.what)
        form.addRow("To", self.node_combo)
        layout.addLayout(form)
        self.status = QLabel("" if self.config.nodes else "No PACS node yet: add one in File > Query PACS... > Node settings.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.setEnabled(bool(self.config.nodes))
        self.send_button.clicked.connect(self.send)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons.addWidget(self.send_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self.resize(520, 160)

    def current_node(self) -> PacsNode | None:
        name = self.node_combo.currentData()
        return next((n for n in self.config.nodes if n.name == name), None)

    def send(self) -> JobHandle | None:
        node = self.current_node()
        if node is None:
            dialogs.show_error(self, "Send to PACS", "Choose a PACS node first (File > Query PACS... to add one).")
            return None
        config, files = self.config, self.files
        if files:
            def job(progress, cancel):
                return operations.send(node, config, files, progress, cancel)
        else:
            try:
                label_map, sources, algorithm = segmentation_to_send(self.window_)
            except MedviewerError as error:
                dialogs.show_error(self, "Send to PACS", str(error))
                return None

            def job(progress, cancel):
                return operations.send_segmentation(node, config, label_map, sources, algorithm, progress, cancel)

        title = f"Send to {node.name}"
        handle = self.jobs.submit(job, title)
        handle.finished.connect(lambda result: self._sent(node, result))
        handle.failed.connect(lambda error: self._failed(node, error))
        handle.cancelled.connect(lambda: self.status.setText(f"{title}: cancelled"))
        JobProgressDialog(handle, title, parent=self)
        self.last_job = handle
        self.status.setText(f"{title}...")
        return handle

    def _sent(self, node: PacsNode, result) -> None:
        self.last_result = result
        count = len(result.sent)
        self.status.setText(f"Sent {count} file{'s' if count != 1 else ''} to {node.describe()}.")

    def _failed(self, node: PacsNode, error: BaseException) -> None:
        message = describe_failure(node, error)
        self.status.setText(f"Send to {node.name} failed")
        if ask_retry(self, "Send to PACS failed", message):
            self.send()

    def done(self, result: int) -> None:  # noqa: D401 - Qt override: stop our jobs with the dialog
        self.jobs.cancel_all()
        super().done(result)


def open_send_dialog(window, files=None, what: str = "", config: PacsConfig | None = None) -> SendDialog:
    """Show File > Send to PACS... for ``window`` (the active label map) or for ``files``."""
    dialog = SendDialog(window, files, what, config)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    dialog.raise_()
    return dialog


def open_pacs_dialog(window) -> PacsDialog:
    """Show the dialog (non-modal) for ``window``; one per window."""
    dialog = getattr(window, "_pacs_dialog", None)
    if dialog is None:
        dialog = PacsDialog(window)
        window._pacs_dialog = dialog
    dialog.show()
    dialog.raise_()
    return dialog
