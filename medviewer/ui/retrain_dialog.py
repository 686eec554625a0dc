"""The Retrain dialog: fine-tune a model on the corrected cases of an annotation dataset, in the background.

The user picks the dataset, the base model, the new model's name and a time budget
(minutes or epochs). Training runs as a ``medviewer.services.training.TrainingJob``
on the dialog's own job queue; its events arrive on the UI thread through a queued
signal and draw the training loss and the validation Dice (one point per epoch, the
base model's score at epoch 0) with pyqtgraph. Progress, ETA and Cancel work like
every other job. At the end a table compares the validation metrics of the base model
(before) and the new one (after), and ``model_added`` lets the AI panel list it.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.ai.registry import ModelPackage, ModelRegistry
from medviewer.core.errors import MedviewerError
from medviewer.services.training import (
    TrainingEvent,
    TrainingJob,
    TrainingRequest,
    TrainingResult,
    TrainingSettings,
    known_datasets,
    suggested_name,
    trainable_models,
)
from medviewer.ui import dialogs
from medviewer.ui.jobs import JobHandle, JobQueue, format_eta

#: Epoch cap of a run limited by minutes (the time budget ends it long before).
TIME_BUDGET_EPOCH_CAP = 10000
_LABEL_PENS = [(80, 160, 230), (240, 170, 70), (120, 200, 120), (200, 90, 80), (250, 110, 190), (150, 230, 250),
               (241, 214, 145), (180, 140, 240)]


class _EventBridge(QObject):
    """Emitted from the worker thread; Qt queues it to the dialog on the UI thread."""

    event = Signal(object)


class RetrainDialog(QDialog):
    """Dataset, base model, name and time budget; live curves, ETA, Cancel and a before/after table.

    Parameters
    ----------
    registry:
        Where base models are listed from (and refreshed after training).
    settings:
        Template for the run's settings (the dialog sets epochs, minutes and device);
        tests use it for tiny runs.
    datasets:
        Dataset folders to offer (default: those in the user's datasets folder).
    """

    #: training finished and its package was written: (TrainingResult)
    model_added = Signal(object)
    #: the run ended without a package (cancelled or failed): (exception or None)
    training_stopped = Signal(object)

    def __init__(self, registry: ModelRegistry, parent: QWidget | None = None,
                 settings: TrainingSettings | None = None, datasets: list[Path] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Retrain a model")
        self.registry = registry
        self.template = settings or TrainingSettings()
        self.queue = JobQueue(max_parallel=1, parent=self)
        self.handle: JobHandle | None = None
        self.job: TrainingJob | None = None
        self.result: TrainingResult | None = None
        self._bridge = _EventBridge(self)
        self._bridge.event.connect(self._on_event)
        self._iteration_losses: tuple[list[float], list[float]] = ([], [])
        self._epoch_losses: tuple[list[float], list[float]] = ([], [])
        self._scores: tuple[list[float], list[float]] = ([], [])
        self._label_scores: dict[str, tuple[list[float], list[float]]] = {}
        self._label_curves: dict[str, pg.PlotDataItem] = {}
        self._build(datasets if datasets is not None else known_datasets())
        self.resize(900, 700)

    # ------------------------------------------------------------------ layout
    def _build(self, datasets: list[Path]) -> None:
        self.dataset = QComboBox()
        self.dataset.setEditable(True)
        self.dataset.setToolTip("An annotation dataset (nnU-Net v2 raw folder DatasetNNN_Name) saved from medviewer")
        for folder in datasets:
            self.dataset.addItem(str(folder))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._choose_dataset)
        dataset_row = QHBoxLayout()
        dataset_row.addWidget(self.dataset, 1)
        dataset_row.addWidget(browse)

        self.base = QComboBox()
        for package in trainable_models(self.registry):
            manifest = package.manifest
            self.base.addItem(f"{manifest.display_name} - {manifest.task} [{package.origin}]", package)
        self.base.currentIndexChanged.connect(self._on_base_changed)
        self.name = QLineEdit()
        self.name.setToolTip("The base model's own name makes a new version of it; another name starts a new model")
        self.from_scratch = QCheckBox("Train from scratch (random weights; the base gives architecture and input settings)")

        self.by_minutes = QRadioButton("Minutes")
        self.by_epochs = QRadioButton("Epochs")
        self.by_minutes.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.by_minutes)
        group.addButton(self.by_epochs)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.1, 24 * 60)
        self.minutes.setValue(self.template.minutes or 10.0)
        self.minutes.setSuffix(" min")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10000)
        self.epochs.setValue(self.template.epochs)
        budget_row = QHBoxLayout()
        for widget in (self.by_minutes, self.minutes, self.by_epochs, self.epochs):
            budget_row.addWidget(widget)
        budget_row.addStretch(1)
        self.device = QComboBox()
        for text, value in (("auto (GPU when there is one)", "auto"), ("cpu", "cpu"), ("cuda (NVIDIA GPU)", "cuda"),
                            ("mps (Apple GPU)", "mps")):
            self.device.addItem(text, value)
        self.device.setCurrentIndex(max(0, self.device.findData(self.template.device)))

        form = QFormLayout()
        form.addRow("Dataset", dataset_row)
        form.addRow("Base model", self.base)
        form.addRow("New model name", self.name)
        form.addRow("", self.from_scratch)
        form.addRow("Time budget", budget_row)
        form.addRow("Device", self.device)

        self.loss_plot = pg.PlotWidget(title="Training loss")
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_plot.addLegend(offset=(-10, 10))
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen((150, 150, 150), width=1), name="batches")
        self.epoch_loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen((240, 170, 70), width=2), symbol="o",
                                                    symbolSize=6, name="epoch mean")
        self.score_plot = pg.PlotWidget(title="Validation Dice (model grid; epoch 0 = base model)")
        self.score_plot.setLabel("bottom", "epoch")
        self.score_plot.setYRange(0.0, 1.0)
        self.score_plot.addLegend(offset=(-10, -10))
        self.score_curve = self.score_plot.plot([], [], pen=pg.mkPen((80, 200, 120), width=3), symbol="o",
                                                symbolSize=7, name="mean")
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.score_plot)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Choose a dataset and a base model, then Start.")
        self.status.setWordWrap(True)
        self.eta = QLabel()
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #b9770e;")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Validation", "Before", "After", "Change"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.hide()

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(plots, 1)
        status_row = QHBoxLayout()
        status_row.addWidget(self.progress, 1)
        status_row.addWidget(self.eta)
        layout.addLayout(status_row)
        layout.addWidget(self.status)
        layout.addWidget(self.warnings)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self._on_base_changed()

    # ------------------------------------------------------------------ inputs
    def _choose_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Annotation dataset (DatasetNNN_Name)", self.dataset.currentText())
        if folder:
            self.set_dataset(folder)

    def set_dataset(self, folder: str | Path) -> None:
        index = self.dataset.findText(str(folder))
        if index < 0:
            self.dataset.addItem(str(folder))
            index = self.dataset.count() - 1
        self.dataset.setCurrentIndex(index)

    def selected_base(self) -> ModelPackage | None:
        return self.base.currentData()

    def select_base(self, ref: str) -> None:
        """Select a listed base model by ``name:version`` (tests and scripting)."""
        for index in range(self.base.count()):
            if self.base.itemData(index).ref == ref:
                self.base.setCurrentIndex(index)
                return
        raise KeyError(f"{ref} is not a trainable model in this registry")

    def _on_base_changed(self, *_args) -> None:
        package = self.selected_base()
        if package is not None:
            self.name.setText(suggested_name(package))

    def request(self) -> TrainingRequest:
        """The training request the inputs describe."""
        package = self.selected_base()
        if package is None:
            raise ValueError("no trainable model is available")
        by_minutes = self.by_minutes.isChecked()
        settings = TrainingSettings.from_dict({
            **self.template.to_dict(),
            "epochs": TIME_BUDGET_EPOCH_CAP if by_minutes else self.epochs.value(),  # with minutes, time decides
            "minutes": self.minutes.value() if by_minutes else None,
            "device": self.device.currentData(),
        })
        return TrainingRequest(dataset=self.dataset.currentText().strip(), base=package.folder,
                               name=self.name.text().strip(), settings=settings,
                               from_scratch=self.from_scratch.isChecked())

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self.handle is not None and not self.handle.is_done

    def start(self) -> JobHandle | None:
        """Start training in the background with the current inputs."""
        if self.running:
            return self.handle
        try:
            request = self.request()
        except (ValueError, MedviewerError) as error:
            self.status.setText(str(error))
            return None
        self._reset_curves()
        self.result = None
        self.table.hide()
        self.warnings.clear()
        self.job = TrainingJob(request, on_event=self._bridge.event.emit, registry=self.registry)
        self.handle = self.queue.submit(self.job, f"Retraining {request.name}")
        self.handle.progress.connect(self._on_progress)
        self.handle.finished.connect(self._on_finished)
        self.handle.failed.connect(self._on_failed)
        self.handle.cancelled.connect(self._on_cancelled)
        self.handle.done.connect(self._sync_buttons)
        self.status.setText(f"Starting: {request.name} from {self.selected_base().ref}")
        self._sync_buttons()
        return self.handle

    def cancel(self) -> None:
        """Stop at the next batch; the last epoch's checkpoint stays, no package is written."""
        if self.running:
            self.status.setText("Cancelling...")
            self.handle.cancel()

    def _sync_buttons(self, *_args) -> None:
        running = self.running
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for widget in (self.dataset, self.base, self.name, self.from_scratch, self.minutes, self.epochs,
                       self.by_minutes, self.by_epochs, self.device):
            widget.setEnabled(not running)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(fraction * 1000)))
        if message:
            self.status.setText(message)
        if self.handle is not None:
            self.eta.setText(format_eta(self.handle.eta_seconds()))

    def _on_finished(self, result: TrainingResult) -> None:
        self.result = result
        self.progress.setValue(1000)
        self.eta.clear()
        self.status.setText(f"Wrote {result.ref} after {len(result.history)} epoch(s) (stopped: {result.stopped_because}; "
                            f"best epoch {result.best_epoch}). It is now listed in the AI panel.")
        self.warnings.setText("\n".join(result.warnings))
        self._show_table(result)
        self.model_added.emit(result)

    def _on_failed(self, error: BaseException) -> None:
        self.eta.clear()
        self.status.setText(f"Training failed: {dialogs.error_text(error)}")
        dialogs.show_error(self, "Retraining failed", dialogs.error_text(error),
                           getattr(self.handle, "traceback_text", ""))
        self.training_stopped.emit(error)

    def _on_cancelled(self) -> None:
        self.eta.clear()
        epochs = len(self._epoch_losses[0])
        self.status.setText(f"Cancelled after {epochs} finished epoch(s); no model was written. The last epoch's "
                            "checkpoint is kept: `medviewer train ... --resume` continues from it.")
        self.training_stopped.emit(None)

    # ------------------------------------------------------------------ curves and table
    def _reset_curves(self) -> None:
        for series in (self._iteration_losses, self._epoch_losses, self._scores):
            series[0].clear()
            series[1].clear()
        for curve in self._label_curves.values():
            self.score_plot.removeItem(curve)
        self._label_curves.clear()
        self._label_scores.clear()
        self._redraw()

    def _on_event(self, event: TrainingEvent) -> None:
        iterations = max(1, self.template.iterations_per_epoch)
        if event.kind == "iteration" and event.loss is not None:
            self._iteration_losses[0].append(event.iteration / iterations)
            self._iteration_losses[1].append(event.loss)
        elif event.kind == "epoch":
            if event.epoch > 0 and event.loss is not None:
                self._epoch_losses[0].append(float(event.epoch))
                self._epoch_losses[1].append(event.loss)
            if event.score is not None:
                self._scores[0].append(float(event.epoch))
                self._scores[1].append(event.score)
            for name, value in event.validation.items():
                if value is None:
                    continue
                xs, ys = self._label_scores.setdefault(name, ([], []))
                xs.append(float(event.epoch))
                ys.append(value)
                if name not in self._label_curves:
                    color = _LABEL_PENS[len(self._label_curves) % len(_LABEL_PENS)]
                    self._label_curves[name] = self.score_plot.plot([], [], pen=pg.mkPen(color, width=1), name=name)
        elif event.kind == "stage" and event.message:
            self.status.setText(event.message)
        self._redraw()

    def _redraw(self) -> None:
        self.loss_curve.setData(*self._iteration_losses)
        self.epoch_loss_curve.setData(*self._epoch_losses)
        self.score_curve.setData(*self._scores)
        for name, curve in self._label_curves.items():
            curve.setData(*self._label_scores[name])

    def _show_table(self, result: TrainingResult) -> None:
        rows = result.comparison_rows()
        self.table.setRowCount(len(rows))
        for row, values in enumerate(rows):
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        self.table.setHorizontalHeaderLabels(["Validation", f"Before ({result.base_ref})", f"After ({result.ref})",
                                              "Change"])
        self.table.setMaximumHeight(self.table.verticalHeader().length() + self.table.horizontalHeader().height() + 6)
        self.table.show()

    def table_rows(self) -> list[list[str]]:
        """The before/after table as text (for tests and screenshots)."""
        return [[self.table.item(r, c).text() for c in range(self.table.columnCount())] for r in range(self.table.rowCount())]

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.running:
            self.cancel()
            self.queue.shutdown(timeout_ms=30000)
        super().closeEvent(event)
