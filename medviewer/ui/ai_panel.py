"""The AI panel: models that fit the open series, their model cards, and runs in the background.

Runs go through ``medviewer.services.inference`` on the panel's own job queue (one
at a time; further runs wait in the queue), so the UI thread only draws progress and
applies finished results: segmentation becomes a label layer (new, or replacing the
same model's previous layer), detections join the document's list, classification
probabilities are shown here, and an enhanced image is added to the study browser
as a derived series. Each applied result is one step of the study session's undo
history (``StudySession.apply_result``), so Undo takes it back like any edit.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from medviewer.ai.bundle.folder import RUNTIME_TYPE as BUNDLE_RUNTIME
from medviewer.ai.bundle.trust import is_trusted, set_trusted
from medviewer.ai.registry import ModelPackage
from medviewer.ai.results import InferenceOptions, InferenceResult
from medviewer.ai.tasks import Task, task_hooks
from medviewer.core.document import Document
from medviewer.core.study import SeriesInfo
from medviewer.core.volume import Volume
from medviewer.services.inference import InferenceService
from medviewer.services.study_session import StudySession
from medviewer.ui.dialogs import error_text, show_error
from medviewer.ui.jobs import JobHandle, JobQueue, format_eta

class AIPanel(QWidget):
    """Lists models for the current series and runs them with progress, ETA and Cancel.

    Parameters
    ----------
    window:
        The main window (``session``, ``session_changed``, ``menu``, ``add_derived_series``,
        ``statusBar``); ``None`` for a panel driven through ``set_session`` alone (tests).
    service:
        The inference service (model registry and loaded networks).
    """

    #: a finished run's result was applied to its document: (InferenceResult)
    result_applied = Signal(object)
    #: a run failed: (exception)
    run_failed = Signal(object)

    def __init__(self, window: Any = None, service: InferenceService | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.service = service or InferenceService()
        self.queue = JobQueue(max_parallel=1, parent=self)
        self.session: StudySession | None = None
        self.last_result: InferenceResult | None = None
        self._runs: list[tuple[JobHandle, ModelPackage, StudySession]] = []
        #: True once torch and MONAI are imported (done in the background when the panel is created)
        self.engine_ready = False
        self._warm_up: JobHandle | None = None
        self._build()
        if window is not None:
            window.session_changed.connect(self.set_session)
            self._install_menu(window.menu("AI"))
            self.set_session(window.session)
        else:
            self.set_session(None)

    def set_service(self, service: InferenceService) -> None:
        """Use another inference service (model registry), e.g. in tests."""
        self.service = service
        self.refresh_models()

    def warm_up(self) -> JobHandle:
        """Import torch and MONAI on the worker thread (once), ahead of the first run.

        Imports hold the interpreter lock in long stretches; doing them when an image
        is opened, not when Run is pressed, keeps runs from stalling the UI.
        """
        if self._warm_up is None:
            self._warm_up = self.queue.submit(self.service.warm_up, "Loading the AI engine")
            self._warm_up.finished.connect(self._on_engine_ready)
            self._warm_up.failed.connect(
                lambda error: self._set_status(f"The AI engine could not be loaded: {error_text(error)}")
            )
        return self._warm_up

    def _install_menu(self, menu) -> None:
        self.run_action = menu.addAction("Run selected model", self.run_selected)
        self.run_action.setShortcut("Ctrl+R")
        self.cancel_action = menu.addAction("Cancel model run", self.cancel_current)
        menu.addSeparator()
        menu.addAction("Add model folder...", self._choose_folder)
        menu.addAction("Rescan model folders", self.rescan_models)
        menu.addSeparator()
        menu.addAction("Retrain model...", self.open_retrain_dialog)

    def open_retrain_dialog(self):
        """The Retrain dialog (medviewer.ui.retrain_dialog); a model it writes is listed here at once."""
        from medviewer.ui.retrain_dialog import RetrainDialog

        dialog = RetrainDialog(self.service.registry, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.model_added.connect(lambda _result: self.rescan_models())
        dialog.show()
        return dialog

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.heading = QLabel("No image open")
        self.models = QListWidget()
        self.models.currentItemChanged.connect(self._show_card)
        self.models.itemActivated.connect(lambda _item: self.run_selected())
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(False)
        self.errors = QLabel()
        self.errors.setWordWrap(True)
        self.errors.setStyleSheet("color: #c0392b;")
        self.errors.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.device = QComboBox()
        self.device.setToolTip("Where models run; 'auto' uses a GPU when there is one")
        self.replace_previous = QCheckBox("Replace this model's previous result")
        self.replace_previous.setChecked(True)
        self.mirroring = QCheckBox("Test-time mirroring (nnU-Net models)")
        self.mirroring.setToolTip("Average the prediction over mirrored copies, as nnU-Net does by default; "
                                  "off is several times faster")
        self.mirroring.setChecked(True)
        # MONAI bundles: their config may name any Python callable; only the user can allow that
        self.trust_bundle = QCheckBox("Trust this bundle (let its configuration run any Python code)")
        self.trust_bundle.setToolTip("By default a MONAI bundle may only use monai.* and torch.* and its own "
                                     "network script; tick this only for bundles from authors you trust. "
                                     "Remembered for this bundle until its configs/ or scripts/ change.")
        self.trust_bundle.toggled.connect(self._on_trust_toggled)
        self.trust_bundle.hide()
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run_selected)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_current)
        self.add_folder_button = QPushButton("Add model folder...")
        self.add_folder_button.clicked.connect(self._choose_folder)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.queue_list = QListWidget()
        self.queue_list.setMaximumHeight(70)
        self.probabilities = QTableWidget(0, 2)
        self.probabilities.setHorizontalHeaderLabels(["Class", "Probability"])
        self.probabilities.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.probabilities.verticalHeader().setVisible(False)
        self.probabilities.setMaximumHeight(120)
        self.probabilities.hide()
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #b9770e;")

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        options = QHBoxLayout()
        options.addWidget(QLabel("Device:"))
        options.addWidget(self.device, 1)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.heading)
        top_layout.addWidget(self.models)
        top_layout.addWidget(self.errors)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.card)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(options)
        layout.addWidget(self.replace_previous)
        layout.addWidget(self.mirroring)
        layout.addWidget(self.trust_bundle)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.queue_list)
        layout.addWidget(self.probabilities)
        layout.addWidget(self.warnings)
        layout.addWidget(self.add_folder_button)
        self._fill_devices()
        self._sync_buttons()

    def _fill_devices(self) -> None:
        self.device.clear()
        self.device.addItem("auto", "auto")
        self.device.addItem("cpu", "cpu")
        # Which accelerators exist is only known once torch is imported; offer the usual ones.
        self.device.addItem("cuda (NVIDIA GPU)", "cuda")
        self.device.addItem("mps (Apple GPU)", "mps")

    def _on_engine_ready(self, _result: object = None) -> None:
        self.engine_ready = True

    # ------------------------------------------------------------------ models
    @property
    def document(self) -> Document | None:
        return self.session.document if self.session is not None else None

    def set_session(self, session: StudySession | None) -> None:
        """Show the models that fit the study's modality; results go into this session."""
        self.session = session
        self.refresh_models()
        if session is not None:
            self.warm_up()

    def rescan_models(self) -> None:
        """Look for new or changed packages (e.g. a model fine-tuned meanwhile)."""
        self.service.refresh()
        self.refresh_models()

    def refresh_models(self) -> None:
        previous = self.selected_package()
        self.models.clear()
        modality = self.document.volume.modality if self.document is not None else ""
        packages = self.service.models_for(modality) if self.document is not None else self.service.registry.latest()
        for package in packages:
            manifest = package.manifest
            item = QListWidgetItem(f"{manifest.display_name} - {task_hooks(manifest.task).title}")
            item.setData(Qt.ItemDataRole.UserRole, package)
            item.setToolTip(f"{manifest.ref} ({package.origin}): {package.folder}")
            self.models.addItem(item)
            if previous is not None and package.ref == previous.ref:
                self.models.setCurrentItem(item)
        if self.models.currentItem() is None and self.models.count():
            self.models.setCurrentRow(0)
        if self.document is None:
            self.heading.setText("Open an image to run a model on it")
        else:
            self.heading.setText(f"Models for {modality or 'this image'} ({len(packages)})")
        errors = self.service.registry.errors
        self.errors.setText("\n".join(f"Model not loaded: {e}" for e in errors))
        self.errors.setVisible(bool(errors))
        self._show_card()
        self._sync_buttons()

    def selected_package(self) -> ModelPackage | None:
        item = self.models.currentItem() if hasattr(self, "models") else None
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def select_model(self, name: str) -> ModelPackage:
        """Select the newest listed version of model ``name`` (for tests and scripting)."""
        for row in range(self.models.count()):
            package = self.models.item(row).data(Qt.ItemDataRole.UserRole)
            if package.name == name:
                self.models.setCurrentRow(row)
                return package
        raise KeyError(f"model '{name}' is not listed for this image")

    def _show_card(self, *_args) -> None:
        package = self.selected_package()
        self._sync_trust(package)
        if package is None:
            self.card.setMarkdown("")
            return
        self.card.setMarkdown(package.model_card())

    def _sync_trust(self, package: ModelPackage | None) -> None:
        is_bundle = package is not None and package.manifest.runtime.type == BUNDLE_RUNTIME
        self.trust_bundle.setVisible(is_bundle)
        self.trust_bundle.blockSignals(True)
        self.trust_bundle.setChecked(bool(is_bundle and is_trusted(package.folder)))
        self.trust_bundle.blockSignals(False)

    def _on_trust_toggled(self, checked: bool) -> None:
        package = self.selected_package()
        if package is None or package.manifest.runtime.type != BUNDLE_RUNTIME:
            return
        try:
            set_trusted(package.folder, checked)
        except OSError as error:
            show_error(self, "Cannot save the bundle's trust setting", str(error))
            self._sync_trust(package)
            return
        self._set_status(f"{package.manifest.display_name}: " + (
            "trusted, its configuration may run any code" if checked else "not trusted, only monai/torch allowed"))

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder with model packages")
        if folder:
            self.add_model_folder(folder)

    def add_model_folder(self, folder: str, remember: bool = True) -> None:
        """Also list models from ``folder`` (remembered for later sessions)."""
        self.service.registry.add_folder(folder, remember=remember)
        self.refresh_models()

    # ------------------------------------------------------------------ runs
    def run_selected(self) -> JobHandle | None:
        package = self.selected_package()
        if package is None or self.document is None:
            return None
        return self.run_model(package)

    def run_model(self, package: ModelPackage, session: StudySession | None = None) -> JobHandle:
        """Queue a run of ``package`` on ``session``'s study (default: the open one); returns its job handle."""
        session = session or self.session
        if session is None:
            raise ValueError("no study to run the model on")
        self.warm_up()
        options = InferenceOptions.interactive(self.device.currentData() or "auto")
        options.mirroring = self.mirroring.isChecked()
        handle = self.queue.submit(self.service.job(package, session.document.volume, options), package.manifest.display_name)
        self._runs.append((handle, package, session))
        handle.started.connect(self._sync_queue)
        handle.progress.connect(lambda fraction, message, h=handle: self._on_progress(h, fraction, message))
        handle.finished.connect(lambda result, h=handle: self._on_finished(h, result))
        handle.failed.connect(lambda error, h=handle: self._on_failed(h, error))
        handle.cancelled.connect(lambda h=handle: self._set_status(f"{h.name}: cancelled"))
        handle.done.connect(lambda h=handle: self._on_done(h))
        self._sync_queue()
        self._sync_buttons()
        return handle

    @property
    def current_job(self) -> JobHandle | None:
        """The run in progress (or the next queued one)."""
        return next((h for h, _, _ in self._runs if not h.is_done), None)

    def cancel_current(self) -> None:
        job = self.current_job
        if job is not None:
            self._set_status(f"{job.name}: cancelling...")
            job.cancel()

    def cancel_all(self) -> None:
        self.queue.cancel_all()

    def _on_progress(self, handle: JobHandle, fraction: float, message: str) -> None:
        if handle is not self.current_job:
            return
        self.progress.setValue(int(round(fraction * 1000)))
        eta = format_eta(handle.eta_seconds())
        self.status.setText(" - ".join(p for p in (message or handle.name, eta) if p))

    def _on_finished(self, handle: JobHandle, result: InferenceResult) -> None:
        session = next(s for h, _, s in self._runs if h is handle)
        self.last_result = result
        if session is not self.session:
            self._set_status(f"{handle.name}: finished, but its image is no longer open; result discarded")
            return
        session.apply_result(result, replace_previous=self.replace_previous.isChecked())  # one undo step
        summary = self._summarise(result)
        if result.task == Task.CLASSIFICATION:
            self._show_probabilities(result.probabilities)
        if result.volume is not None:
            self._add_derived_series(result.volume)
        self.warnings.setText("\n".join(result.warnings))
        self.progress.setValue(1000)
        self._set_status(f"{handle.name}: {summary} ({result.seconds:.1f} s on {result.device})")
        self.result_applied.emit(result)

    def _on_failed(self, handle: JobHandle, error: BaseException) -> None:
        self._set_status(f"{handle.name}: failed")
        self.run_failed.emit(error)
        show_error(self, "Model run failed", error_text(error), getattr(handle, "traceback_text", ""))

    def _on_done(self, handle: JobHandle) -> None:
        self._runs = [run for run in self._runs if run[0] is not handle]
        self._sync_queue()
        self._sync_buttons()

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        if self.window is not None:
            self.window.statusBar().showMessage(text, 6000)

    def _sync_queue(self, *_args) -> None:
        self.queue_list.clear()
        for handle, _package, _document in self._runs:
            if not handle.is_done:
                self.queue_list.addItem(f"{handle.name}: {handle.state}")
        self.queue_list.setVisible(self.queue_list.count() > 0)

    def _sync_buttons(self) -> None:
        has_model = self.selected_package() is not None
        self.run_button.setEnabled(self.document is not None and has_model)
        self.cancel_button.setEnabled(self.current_job is not None)

    # ------------------------------------------------------------------ results
    @staticmethod
    def _summarise(result: InferenceResult) -> str:
        if result.label_map is not None:
            names = [result.label_map.table[v].name for v in result.label_map.present_values() if v in result.label_map.table]
            return "labelled " + (", ".join(names) if names else "nothing")
        if result.task == Task.DETECTION:
            return f"{len(result.detections)} detection(s)"
        if result.task == Task.CLASSIFICATION:
            best = max(result.probabilities.items(), key=lambda kv: kv[1], default=("-", 0.0))
            return f"most likely {best[0]} ({best[1]:.0%})"
        return "derived image added to the study browser"

    def _show_probabilities(self, probabilities: dict[str, float]) -> None:
        self.probabilities.setRowCount(0)
        for name, value in sorted(probabilities.items(), key=lambda kv: -kv[1]):
            row = self.probabilities.rowCount()
            self.probabilities.insertRow(row)
            self.probabilities.setItem(row, 0, QTableWidgetItem(name))
            self.probabilities.setItem(row, 1, QTableWidgetItem(f"{value:.1%}"))
        self.probabilities.show()

    def _add_derived_series(self, volume: Volume) -> SeriesInfo | None:
        """List an enhanced image in the window's study browser (double-click opens it)."""
        return self.window.add_derived_series(volume) if self.window is not None else None
