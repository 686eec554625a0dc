"""The main window: menus, toolbar, linked slice views, docks and background loading.

It is the hub other parts plug into:

* ``menu(name)`` returns the QMenu "File", "View", "Tools", "AI" or "Help";
  ``toolbar`` is the main QToolBar; ``add_panel(widget, title, area)`` docks a panel
  and returns its QDockWidget (its toggle action is added to View > Panels).
* ``session`` is the open study's ``medviewer.services.study_session.StudySession``
  (or None): document, undo stack, editing tools, measurements, display model, prompts.
  One is created per opened study (``set_document``) and handed to every view and panel;
  ``session_changed(object)`` then ``document_changed(object)`` are emitted. ``document``
  and ``measurements`` are the session's. ``display`` is the window's display model: every
  session of this window uses it, so the slice views and the 3D view stay bound to one model.
* ``set_session_options(autosave=..., recovery_root=...)``: how sessions opened from now on
  autosave unsaved edits (the editing part turns it on).
* ``set_active_tool(tool)`` routes the slice views' pointer events to a Qt-free
  ``medviewer.tools.base.Tool`` (None: back to the crosshair); ``active_tool_changed``.
  The session records the active tool; ``active_view`` is the slice view last used.
* ``add_derived_series(volume)`` lists an in-memory image (e.g. a model's enhanced image)
  in the study browser; ``load_series`` opens it like any other series.
* ``open_label_map(path)`` reads a label map, SEG or RT structure set over the open image
  in the background (progress, Cancel); ``load_label_map(path)`` does it at once (scripts).
* ``jobs`` is a ``medviewer.ui.jobs.JobQueue`` for loading; other long work can
  use its own queue.
* ``open_path(path)`` scans and loads in the background with a progress dialog and
  Cancel; opening another path while one loads cancels the first. ``open_scanned(job, name)``
  does the same for series found by a job (a database study).
* ``document_guards``: functions ``() -> bool`` asked before another study replaces
  the open one (``open_path``, ``load_series``); one returning False (the user chose
  Cancel at "Unsaved changes") stops the opening. ``confirm_replace_document()`` asks them.
* ``set_welcome_widget(widget)`` shows ``widget`` instead of the views while no
  study is open (``medviewer.ui.welcome``).

Errors go through ``medviewer.ui.dialogs.show_error`` (non-blocking; tests patch it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QImage, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QGridLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QStatusBar,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.document import Document
from medviewer.core.errors import MedviewerError, NoImageSeriesError
from medviewer.core.jobs import CancelToken
from medviewer.core.labels import LabelMap
from medviewer.core.study import SeriesInfo
from medviewer.core.volume import Volume
from medviewer.imaging.measurements import MeasurementList
from medviewer.imaging.reslice import AXIAL, CORONAL, PLANES, SAGITTAL, plane_of_single_slice
from medviewer.imaging.window_level import COLORMAPS, CT_PRESET_TITLES, GENERIC_PRESETS
from medviewer.io.atomic import atomic_path
from medviewer.io.dicom_headers import segmentation_kind
from medviewer.services.open_study import default_series
from medviewer.services.settings import LAYOUTS, Settings, load_settings, save_settings
from medviewer.services.study_session import StudySession
from medviewer.services.workspace import DisplayModel, series_thumbnail
from medviewer.tools.base import Tool
from medviewer.ui import dialogs
from medviewer.ui.ai_panel import AIPanel
from medviewer.ui.jobs import JobHandle, JobProgressDialog, JobQueue
from medviewer.ui.measurement_tools import EllipseRoiTool, RectangleRoiTool, RulerTool
from medviewer.ui.panels.detections_panel import DetectionsPanel
from medviewer.ui.panels.layer_panel import LayerPanel
from medviewer.ui.panels.measurements_panel import MeasurementsPanel
from medviewer.ui.panels.study_browser import THUMBNAIL_SIZE, StudyBrowser, grey_pixmap, volume_thumbnail
from medviewer.ui.slice_view import HoverInfo, SliceView
from medviewer.ui.warnings_bar import LoadWarningsBar

MENU_NAMES = ("File", "View", "Tools", "AI", "Help")
_AREAS = {
    "left": Qt.DockWidgetArea.LeftDockWidgetArea,
    "right": Qt.DockWidgetArea.RightDockWidgetArea,
    "bottom": Qt.DockWidgetArea.BottomDockWidgetArea,
    "top": Qt.DockWidgetArea.TopDockWidgetArea,
}


# ---------------------------------------------------------------------------- loading jobs
def scan_with_services(path: str, progress, cancel: CancelToken) -> list[SeriesInfo]:
    """Find the series at ``path`` (``medviewer.services.open_study.scan_path``)."""
    from medviewer.services.open_study import scan_path

    return scan_path(path, progress, cancel)


def load_with_services(series: SeriesInfo, progress, cancel: CancelToken) -> Volume:
    """Load one series' pixels (``medviewer.services.open_study.load_series``)."""
    from medviewer.services.open_study import load_series

    return load_series(series, progress, cancel)


@dataclass
class ScanResult:
    path: str
    series: list[SeriesInfo]
    #: the scan's list as returned (its ``.notes`` name skipped files, such as DICOM SEGs)
    found: list[SeriesInfo] | None = None


class MainWindow(QMainWindow):
    """medviewer's main window (see the module docstring for the extension API)."""

    #: a new study session is shown (or None), emitted just before document_changed: (StudySession | None)
    session_changed = Signal(object)
    #: a new document is shown (or None): (Document | None)
    document_changed = Signal(object)
    #: the active editing tool changed: (Tool | None)
    active_tool_changed = Signal(object)
    #: the view layout changed: ("1x1" | "1x3" | "2x2" | "3d")
    layout_changed = Signal(str)

    def __init__(
        self, parent: QWidget | None = None, persist_settings: bool = True, enable_3d: bool = True, enable_ai: bool = True
    ) -> None:
        """``persist_settings=False`` neither reads nor writes the user's settings (tests, screenshots);
        ``enable_3d`` / ``enable_ai`` leave out the 3D view / the AI panel (offscreen rendering)."""
        super().__init__(parent)
        self.setWindowTitle("medviewer")
        self.setAcceptDrops(True)
        self.persist_settings = persist_settings
        self.enable_3d = enable_3d
        self.enable_ai = enable_ai
        self.settings: Settings = load_settings() if persist_settings else Settings()
        self.display = DisplayModel()
        self.session: StudySession | None = None
        self._session_options: dict = {"autosave": False, "recovery_root": None}
        self._no_measurements = MeasurementList()  # shown while no study is open
        self._tool_without_study: Tool | None = None
        self._derived: dict[str, Volume] = {}  # in-memory series (add_derived_series), by UID
        self.series: SeriesInfo | None = None
        #: the editing part (``medviewer.ui.edit_actions.EditingUi``) once installed
        self.editing = None
        self.jobs = JobQueue(max_parallel=1, parent=self)
        self._scan_found: list[SeriesInfo] | None = None  # the last folder scan, with its notes
        self._thumbnail_jobs = JobQueue(max_parallel=1, parent=self)
        # SEG / RTSTRUCT layers of the shown series: own queue, so they never hold up loading another series
        self._segmentation_jobs = JobQueue(max_parallel=1, parent=self)
        self._loading: JobHandle | None = None
        #: Replaceable for tests and other sources: fn(path, progress, cancel) -> list[SeriesInfo]
        self.scan_function: Callable = scan_with_services
        #: Replaceable: fn(series, progress, cancel) -> Volume
        self.load_function: Callable = load_with_services
        #: Asked before another study replaces the open one; False keeps it (see confirm_replace_document).
        self.document_guards: list[Callable[[], bool]] = []

        self.slice_views = [SliceView(plane, self.display) for plane in PLANES]
        self._views_by_plane = {view.plane: view for view in self.slice_views}
        self._active_view = self.slice_views[0]
        for view in self.slice_views:
            view.hover_changed.connect(self._on_hover)
            view.activated.connect(self._on_view_activated)
            view.zoom_changed.connect(lambda zoom, v=view: self._on_zoom(v, zoom))
        self.volume_view: QWidget | None = None
        self._welcome: QWidget | None = None
        self._central = QWidget()
        self._grid = QGridLayout(self._central)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self._central.setStyleSheet("background: #202020;")
        #: the open study's load warnings, above the views (never a dialog)
        self.load_warnings = LoadWarningsBar()
        outer = QWidget()
        stack = QVBoxLayout(outer)
        stack.setContentsMargins(0, 0, 0, 0)
        stack.setSpacing(0)
        stack.addWidget(self.load_warnings)
        stack.addWidget(self._central, 1)
        self.setCentralWidget(outer)
        self.layout_name = ""

        self._menus: dict[str, QMenu] = {name: self.menuBar().addMenu(f"&{name}") for name in MENU_NAMES}
        self.toolbar = QToolBar("Main toolbar", self)
        self.toolbar.setObjectName("main_toolbar")
        self.addToolBar(self.toolbar)
        self._build_status_bar()
        self._build_panels()
        self._build_actions()

        self._restore_geometry()
        self.set_layout(self.settings.layout if self.settings.layout in LAYOUTS else "1x3")

    # ================================================================== extension API
    def menu(self, name: str) -> QMenu:
        """The menu "File", "View", "Tools", "AI" or "Help"."""
        try:
            return self._menus[name]
        except KeyError:
            raise KeyError(f"no menu '{name}'; menus are {', '.join(MENU_NAMES)}") from None

    def add_panel(self, widget: QWidget, title: str, area: str | Qt.DockWidgetArea = "right") -> QDockWidget:
        """Dock ``widget`` with ``title`` ("left", "right", "bottom", "top" or a Qt area)."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        qt_area = _AREAS[area] if isinstance(area, str) else area
        self.addDockWidget(qt_area, dock)
        self._panels_menu.addAction(dock.toggleViewAction())
        return dock

    @property
    def status_bar(self) -> QStatusBar:
        return self.statusBar()

    @property
    def document(self) -> Document | None:
        """The open study's document (None: no study)."""
        return self.session.document if self.session is not None else None

    @property
    def measurements(self) -> MeasurementList:
        """The open study's measurements (an empty list while none is open)."""
        return self.session.measurements if self.session is not None else self._no_measurements

    @property
    def active_tool(self) -> Tool | None:
        """The tool receiving pointer events (the session's; None: crosshair or another mode)."""
        return self.session.active_tool if self.session is not None else self._tool_without_study

    @property
    def active_view(self) -> SliceView:
        """The slice view last clicked or used (the 1x1 layout shows it; plane operations use its axis)."""
        return self._active_view

    @property
    def welcome_widget(self) -> QWidget | None:
        """The widget shown instead of the views while no study is open (``set_welcome_widget``)."""
        return self._welcome

    welcome = welcome_widget  # the welcome screen's usual name

    def set_session_options(self, autosave: bool = False, recovery_root: Path | None = None) -> None:
        """Autosave unsaved edits (into ``recovery_root`` or the user's recovery folder) in studies opened from now on."""
        self._session_options = {"autosave": bool(autosave), "recovery_root": recovery_root}

    def set_active_tool(self, tool: Tool | None) -> None:
        """Make ``tool`` receive pointer events in every slice view (None: crosshair)."""
        if tool is self.active_tool:
            return
        if self.session is not None:
            self.session.set_active_tool(tool)  # cancels the previous one
        else:
            if self._tool_without_study is not None:
                self._tool_without_study.cancel()
            self._tool_without_study = tool
        for view in self.slice_views:
            view.set_tool(tool)
        self._sync_mode_actions()
        self.active_tool_changed.emit(tool)

    def set_interaction_mode(self, mode: str) -> None:
        """Left-drag without a tool: "crosshair", "window_level", "pan" or "zoom" (drops the active tool)."""
        self.set_active_tool(None)
        for view in self.slice_views:
            view.set_interaction_mode(mode)
        self._sync_mode_actions()

    def set_welcome_widget(self, widget: QWidget | None) -> None:
        """Show ``widget`` in place of the views whenever no document is open (None: empty views)."""
        if self._welcome is not None and self._welcome is not widget:
            self._welcome.hide()
        self._welcome = widget
        if widget is not None:
            widget.setParent(self._central)
        self._apply_layout()

    # ================================================================== layout
    def set_layout(self, name: str) -> None:
        """Arrange the views: "1x1" (the active view), "1x3" (axial, coronal, sagittal), "2x2" (+ 3D) or "3d" (3D alone).

        The 3D view is created once and moved between layouts, never re-created (one OpenGL context).
        """
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout '{name}'; choose one of {', '.join(LAYOUTS)}")
        self.layout_name = name
        self.settings.layout = name
        self._apply_layout()
        action = self._layout_actions.get(name)
        if action is not None:
            action.setChecked(True)
        self.layout_changed.emit(name)

    def _visible_panes(self) -> list[tuple[QWidget, int, int]]:
        doc = self.document
        if doc is None and self.welcome_widget is not None:
            return [(self.welcome_widget, 0, 0)]
        if doc is not None and doc.volume.is_2d:
            # A 2D image (radiograph, single slice) is shown in one view, whatever the layout.
            return [(self._views_by_plane[plane_of_single_slice(doc.geometry)], 0, 0)]
        if self.layout_name == "1x1":
            return [(self._active_view, 0, 0)]
        if self.layout_name == "3d":
            return [(self._ensure_volume_view(), 0, 0)]
        views = self._views_by_plane
        if self.layout_name == "1x3":
            return [(views[AXIAL], 0, 0), (views[CORONAL], 0, 1), (views[SAGITTAL], 0, 2)]
        return [(views[AXIAL], 0, 0), (views[CORONAL], 0, 1), (views[SAGITTAL], 1, 0), (self._ensure_volume_view(), 1, 1)]

    def _apply_layout(self) -> None:
        panes = self._visible_panes()
        shown = {id(widget) for widget, _r, _c in panes}
        for index in reversed(range(self._grid.count())):
            self._grid.takeAt(index)
        for widget in [*self.slice_views, self.volume_view, self.welcome_widget]:
            if widget is not None and id(widget) not in shown:
                widget.hide()
        for row in range(2):
            self._grid.setRowStretch(row, 0)
        for column in range(3):
            self._grid.setColumnStretch(column, 0)
        for widget, row, column in panes:
            self._grid.addWidget(widget, row, column)
            self._grid.setRowStretch(row, 1)
            self._grid.setColumnStretch(column, 1)
            widget.show()

    def _ensure_volume_view(self) -> QWidget:
        """The 3D pane: ``medviewer.ui.volume_view.VolumeView`` when available, else a placeholder."""
        if self.volume_view is None:
            widget = None
            if self.enable_3d:
                try:
                    from medviewer.ui.volume_view import VolumeView  # optional: built by another part

                    widget = VolumeView(parent=self._central, display=self.display)
                    widget.set_document(self.document)
                except Exception as error:  # noqa: BLE001 - the 2D viewer must work without the 3D view
                    self.statusBar().showMessage(f"3D view unavailable: {error}", 5000)
                    widget = None
            if widget is None:
                widget = QLabel("3D view: coming")
                widget.setAlignment(Qt.AlignmentFlag.AlignCenter)
                widget.setStyleSheet("background: black; color: #909090;")
                widget.setMinimumSize(40, 40)
            self.volume_view = widget
        return self.volume_view

    # ================================================================== documents
    def set_document(self, document: Document | None) -> StudySession | None:
        """Start a study session on ``document`` and show it in every view and panel (None closes it).

        The session replacing another one takes over a measurement tool in use; an editing
        tool belongs to its study and is dropped. Returns the new session.
        """
        old = self.session
        if old is not None and old.document is document:
            return old
        carried = self.active_tool if self.active_tool in self.measurement_tools.values() else None
        if old is not None:
            old.document.modified_changed.disconnect(self._update_title)
            old.detach()  # unsaved edits stay recoverable until resolved or closed
        elif self._tool_without_study is not None:
            self._tool_without_study.cancel()
        self._tool_without_study = None
        session = StudySession(document, self.display, **self._session_options) if document is not None else None
        self.session = session
        if session is not None:
            document.modified_changed.connect(self._update_title)
            session.set_active_tool(carried)
        else:
            self._tool_without_study = carried
        for view in self.slice_views:
            view.set_tool(carried)
        self._sync_mode_actions()
        for view in self.slice_views:
            view.set_document(document, self.measurements)
        self._apply_layout()
        if self.volume_view is not None and hasattr(self.volume_view, "set_document"):
            try:
                self.volume_view.set_document(document)
            except Exception as error:  # noqa: BLE001 - never let the 3D view break the viewer
                self.statusBar().showMessage(f"3D view failed: {error}", 5000)
        self.layer_panel.set_document(document)
        self.detections_panel.set_document(document)
        self.measurements_panel.set_measurements(document, self.measurements)
        self.study_browser.mark_loaded(document.series if document is not None else None)
        self.load_warnings.show_for(document)
        self._sync_window_controls()
        self._update_title()
        self.session_changed.emit(session)
        self.document_changed.emit(document)
        self.active_tool_changed.emit(self.active_tool)
        return session

    def _update_title(self, *_args) -> None:
        if self.document is None:
            self.setWindowTitle("medviewer")
            return
        volume = self.document.volume
        star = "*" if self.document.modified else ""
        self.setWindowTitle(f"{star}{volume.name} ({volume.modality or 'image'}) - medviewer")

    # ------------------------------------------------------------------ opening
    def confirm_replace_document(self) -> bool:
        """Whether another study may replace the open one: asks each of ``document_guards``.

        The editing part's guard asks Save / Discard / Cancel when there are unsaved edits;
        False means the user cancelled and the open study must stay as it is.
        """
        return all(guard() for guard in list(self.document_guards))

    def open_path(self, path: str | os.PathLike[str]) -> JobHandle | None:
        """Scan ``path`` in the background, list its series, then load the largest one.

        Unsaved edits are resolved first (``confirm_replace_document``); None when the
        user cancelled. A scan or load already running is cancelled. Returns the scan job's handle.
        """
        path = os.fspath(path)
        if not self.confirm_replace_document():
            return None
        self.cancel_loading()
        name = Path(path).name or path
        scan = self.scan_function

        def job(progress, cancel):
            series = scan(path, progress, cancel)
            if not series:
                raise NoImageSeriesError("no image series found", path)
            return ScanResult(path, list(series), series)

        handle = self._start_loading_job(job, f"Scanning {name}")
        handle.finished.connect(self._on_scan_finished)
        handle.failed.connect(lambda error, p=path, h=handle: self._on_scan_failed(p, error, h.traceback_text))
        self.settings.add_recent_file(path)
        self._save_settings()
        self._rebuild_recent_menu()
        return handle

    def open_scanned(self, scan_job: Callable, name: str) -> JobHandle | None:
        """Like ``open_path`` for series found another way (a database study, a PACS retrieve).

        ``scan_job(progress, cancel)`` returns the series (a ``SeriesList``, whose notes name
        attached segmentations); they are listed in the study browser and the largest opens.
        Not added to the recent files. None when the user kept the open study.
        """
        if not self.confirm_replace_document():
            return None
        self.cancel_loading()

        def job(progress, cancel):
            series = scan_job(progress, cancel)
            if not series:
                raise NoImageSeriesError("no image series found", name)
            return ScanResult(name, list(series), series)

        handle = self._start_loading_job(job, f"Opening {name}")
        handle.finished.connect(self._on_scan_finished)
        handle.failed.connect(lambda error, h=handle: self._on_load_failed(name, error, h.traceback_text))
        return handle

    def load_series(self, series: SeriesInfo) -> JobHandle | None:
        """Load one series' pixels in the background and show it (cancels a load in progress).

        None when the user chose to keep the open study (unsaved edits, Cancel).
        """
        if not self.confirm_replace_document():
            return None
        self.cancel_loading()
        self._segmentation_jobs.cancel_all()  # those of the series shown until now
        derived = self._derived.get(series.uid)
        load = self.load_function if derived is None else (lambda _series, _progress, _cancel: derived)
        title = series.description or Path(series.source_path or "").name or "series"

        def job(progress, cancel):
            return load(series, progress, cancel)

        handle = self._start_loading_job(job, f"Loading {title}")
        handle.finished.connect(lambda volume, s=series: self._on_series_loaded(s, volume))
        handle.failed.connect(lambda error, s=series, h=handle: self._on_load_failed(s.source_path or title, error, h.traceback_text))
        return handle

    def open_volume(self, volume: Volume, series: SeriesInfo | None = None) -> Document:
        """Show an already loaded volume (tests, demo, other code)."""
        document = Document(volume, series)
        self.set_document(document)
        return document

    def add_derived_series(self, volume: Volume, description: str = "") -> SeriesInfo:
        """List an in-memory image (e.g. a model's enhanced image) in the study browser; double-click opens it.

        When the open image is not listed there (demo, script), it is listed too, so one can go back to it.
        """
        import uuid

        def listed(image: Volume) -> SeriesInfo:
            uid = f"derived-{uuid.uuid4().hex[:12]}"
            self._derived[uid] = image
            return SeriesInfo(uid=uid, description=image.name, modality=image.modality, geometry=image.geometry,
                              pixel_type=str(image.array.dtype), source_format="derived",
                              source_path=image.metadata.source_path)

        info = listed(volume)
        if description:
            info.description = description
        series = list(self.study_browser.series)
        current = self.document.series if self.document is not None else None
        if current is None and self.document is not None:
            current = self.document.series = listed(self.document.volume)
            series.append(current)
        self.study_browser.set_series([*series, info])
        if current is not None:
            self.study_browser.mark_loaded(current)
        return info

    def cancel_loading(self) -> None:
        if self._loading is not None and not self._loading.is_done:
            self._loading.cancel()
        self._loading = None

    @property
    def loading_job(self) -> JobHandle | None:
        """The scan/load job in progress, if any."""
        return self._loading if self._loading is not None and not self._loading.is_done else None

    def _start_loading_job(self, job, title: str) -> JobHandle:
        handle = self.jobs.submit(job, title)
        self._loading = handle
        handle.cancelled.connect(lambda: self.statusBar().showMessage(f"{title}: cancelled", 4000))
        JobProgressDialog(handle, title, self)
        self.statusBar().showMessage(f"{title}...")
        return handle

    def _on_scan_finished(self, result: ScanResult) -> None:
        self._scan_found = result.found
        self.study_browser.set_series(result.series)
        self._start_thumbnails(result.series)
        self.load_series(default_series(result.series))

    def _start_thumbnails(self, series: list[SeriesInfo]) -> None:
        """Fill the study browser's thumbnails in the background (one file read per series)."""
        self._thumbnail_jobs.cancel_all()

        def job(progress, cancel):
            pictures = []
            for number, info in enumerate(series):
                cancel.raise_if_cancelled()
                pictures.append((info, series_thumbnail(info, THUMBNAIL_SIZE)))
                progress((number + 1) / len(series), "thumbnails")
            return pictures

        handle = self._thumbnail_jobs.submit(job, "Thumbnails")
        handle.finished.connect(self._on_thumbnails)

    def _on_thumbnails(self, pictures) -> None:
        for info, grey in pictures:
            if grey is not None and not (self.document is not None and self.document.series is info):
                self.study_browser.set_thumbnail(info, grey_pixmap(grey))

    def _on_series_loaded(self, series: SeriesInfo, volume: Volume) -> None:
        self.series = series
        self.open_volume(volume, series)
        try:
            self.study_browser.set_thumbnail(series, volume_thumbnail(volume))
        except Exception:  # noqa: BLE001 - a thumbnail is cosmetic
            pass
        self.statusBar().showMessage(f"Opened {volume.name}", 4000)
        self._load_attached_segmentations(volume)

    def _load_attached_segmentations(self, volume: Volume) -> None:
        """DICOM SEGs and RT structure sets in the scanned folder that reference this series open as label layers."""
        found = self._scan_found
        if not getattr(found, "notes", None):
            return
        from medviewer.services.open_study import attached_segmentations, load_segmentations

        def job(progress, cancel):
            return load_segmentations(attached_segmentations(found, volume), volume, progress, cancel)

        def finished(result, session=self.session) -> None:
            label_maps, problems = result
            if self.session is not session:
                return  # another study was opened meanwhile
            label_maps, more = session.add_label_layers(label_maps)
            problems = problems + more
            if label_maps:
                self.statusBar().showMessage(f"Opened {len(label_maps)} segmentation layer(s) of this series", 6000)
            if problems:
                dialogs.show_error(self, "Cannot open a segmentation of this series", "\n".join(problems))

        self._segmentation_jobs.cancel_all()
        handle = self._segmentation_jobs.submit(job, "Segmentations of this series")
        handle.finished.connect(finished)
        handle.failed.connect(lambda error: self.statusBar().showMessage(f"Segmentations of this series: {error}", 8000))

    def _on_scan_failed(self, path: str, error: BaseException, details: str = "") -> None:
        """Nothing could be read at ``path``: say so, and drop it from the recent files."""
        self.settings.remove_recent_file(path)
        self._save_settings()
        self._rebuild_recent_menu()
        self._on_load_failed(path, error, details)

    def _on_load_failed(self, where: str, error: BaseException, details: str = "") -> None:
        """Show why opening failed; a traceback is attached only for unexpected errors (bugs)."""
        self.statusBar().showMessage(f"Opening {where} failed", 4000)
        dialogs.show_error(self, "Cannot open", dialogs.error_text(error), "" if isinstance(error, MedviewerError) else details)

    # ------------------------------------------------------------------ label maps
    def open_label_map(self, path: str | os.PathLike[str]) -> JobHandle | None:
        """Read a label map file (NIfTI, NRRD, MetaImage, DICOM SEG, RT structure set) over the open image
        in the background, with a progress dialog and Cancel, and add its layers (File > Open label map, drops).

        Reads through the session, with the same service as a folder's attached segmentations;
        a clear error dialog if it cannot be read or does not fit. Returns the job's handle
        (None when no image is open).
        """
        session = self.session
        if session is None:
            dialogs.show_error(self, "No image", "Open an image before loading a label map.")
            return None
        path = os.fspath(path)
        title = f"Reading {Path(path).name}"
        handle = self._segmentation_jobs.submit(session.label_layers_job([path]), title)
        handle.cancelled.connect(lambda: self.statusBar().showMessage(f"{title}: cancelled", 4000))
        JobProgressDialog(handle, title, self)
        handle.finished.connect(lambda result: self._add_read_layers(session, result))
        handle.failed.connect(lambda error: dialogs.show_error(self, "Cannot load label map", dialogs.error_text(error)))
        return handle

    def load_label_map(self, path: str | os.PathLike[str]) -> LabelMap | None:
        """Read and add a label map file at once, on this thread (scripts; the GUI uses ``open_label_map``).

        A clear error dialog if it does not fit; returns the (first) layer added, else None.
        """
        session = self.session
        if session is None:
            dialogs.show_error(self, "No image", "Open an image before loading a label map.")
            return None
        added = self._add_read_layers(session, session.label_layers_job([path])(lambda *_: None, CancelToken()))
        return added[0] if added else None

    def _add_read_layers(self, session: StudySession, result: tuple[list[LabelMap], list[str]]) -> list[LabelMap]:
        label_maps, problems = result
        if session is not self.session:
            return []  # another study was opened meanwhile
        added, more = session.add_label_layers(label_maps)
        if added:
            self.statusBar().showMessage(f"Opened {len(added)} label layer(s)", 4000)
        if problems or more:
            dialogs.show_error(self, "Cannot load label map", "\n".join(problems + more))
        return added

    def add_label_map(self, label_map: LabelMap) -> LabelMap | None:
        """Add a label map layer; geometry mismatches are shown as an error dialog."""
        if self.document is None:
            return None
        try:
            return self.document.add_label_map(label_map)
        except MedviewerError as error:
            dialogs.show_error(self, "Cannot add label map", dialogs.error_text(error))
            return None

    # ------------------------------------------------------------------ screenshots
    def grab_views(self) -> QImage:
        """A picture of the view area as shown (layout, overlays, letters, and the 3D pane)."""
        image = self._central.grab().toImage()
        pane = self.volume_view
        capture = getattr(pane, "screenshot", None)
        if pane is not None and pane.isVisible() and callable(capture):
            # OpenGL content is not part of a widget grab; the 3D view renders its own picture.
            try:
                picture = capture()
                painter = QPainter(image)
                painter.drawImage(pane.geometry().topLeft(), picture)
                painter.end()
            except Exception as error:  # noqa: BLE001 - a screenshot without 3D beats none
                self.statusBar().showMessage(f"3D view not captured: {error}", 5000)
        return image

    def save_screenshot(self, path: str | os.PathLike[str]) -> Path:
        """Save the view area as PNG (written atomically)."""
        image = self.grab_views()
        target = Path(path)
        if target.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
            target = target.with_suffix(".png")
        with atomic_path(target) as tmp:
            if not image.save(str(tmp), target.suffix.lstrip(".").upper()):
                raise MedviewerError("cannot write the screenshot", target)
        return target

    # ================================================================== building the window
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self._status_fields = {}
        for key, width in (("voxel", 130), ("world", 190), ("value", 110), ("label", 140), ("slice", 110), ("zoom", 70)):
            label = QLabel("")
            label.setMinimumWidth(width)
            bar.addPermanentWidget(label)
            self._status_fields[key] = label
        bar.addPermanentWidget(self.load_warnings.status_button)

    def status_text(self) -> dict[str, str]:
        """Current status-bar fields (voxel, world, value, label, slice, zoom)."""
        return {key: label.text() for key, label in self._status_fields.items()}

    def _on_hover(self, info: HoverInfo | None) -> None:
        fields = self._status_fields
        if info is None:
            for key in ("voxel", "world", "value", "label"):
                fields[key].setText("")
            return
        i, j, k = (int(v) for v in info.voxel)
        fields["voxel"].setText(f"ijk ({i}, {j}, {k})" if info.inside else "outside")
        x, y, z = np.round(info.world, 1) + 0.0  # no "-0.0"
        fields["world"].setText(f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm")
        if info.value is None:
            fields["value"].setText("")
        else:
            value = f"{info.value:.0f}" if float(info.value).is_integer() else f"{info.value:.4g}"
            fields["value"].setText(f"{value} {info.units}".strip())
        fields["label"].setText(info.label)
        fields["slice"].setText(f"{info.plane} {info.slice_index + 1}/{info.slice_count}")
        fields["zoom"].setText(f"{info.zoom * 100:.0f}%")

    def _on_zoom(self, view: SliceView, zoom: float) -> None:
        if view is self._active_view:
            self._status_fields["zoom"].setText(f"{zoom * 100:.0f}%")

    def _on_view_activated(self, view: SliceView) -> None:
        self._active_view = view

    def _build_panels(self) -> None:
        self.study_browser = StudyBrowser()
        self.study_browser.series_activated.connect(self.load_series)
        self.layer_panel = LayerPanel(self.display)
        self.detections_panel = DetectionsPanel()
        self.measurements_panel = MeasurementsPanel()
        self._panels_menu = QMenu("Panels", self)
        self.study_dock = self.add_panel(self.study_browser, "Study browser", "left")
        self.layers_dock = self.add_panel(self.layer_panel, "Layers", "left")
        self.detections_dock = self.add_panel(self.detections_panel, "Detections", "right")
        self.measurements_dock = self.add_panel(self.measurements_panel, "Measurements", "right")
        self.ai_panel = self.ai_dock = None
        if self.enable_ai:
            self.ai_panel = AIPanel(self)
            self.ai_dock = self.add_panel(self.ai_panel, "AI", "right")

    def _action(self, menu: QMenu | None, text: str, slot=None, shortcut=None, checkable: bool = False, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        if slot is not None:
            action.triggered.connect(slot)
        if menu is not None:
            menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        file_menu, view_menu, tools_menu, help_menu = (self.menu(n) for n in ("File", "View", "Tools", "Help"))
        # File
        open_file = self._action(file_menu, "&Open file...", self._choose_file, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &folder...", self._choose_folder, "Ctrl+Shift+O")
        self._action(file_menu, "Open &label map...", self._choose_label_map, "Ctrl+L")
        self._recent_menu = file_menu.addMenu("&Recent files")
        self._action(file_menu, "Query &PACS...", self._open_pacs_dialog)
        self._action(file_menu, "Sen&d to PACS...", self._open_send_dialog,
                     tip="Send the active label map as DICOM SEG to a PACS node")
        self._rebuild_recent_menu()
        file_menu.addSeparator()
        screenshot = self._action(file_menu, "Save &screenshot...", self._choose_screenshot, "Ctrl+Shift+S")
        file_menu.addSeparator()
        self._action(file_menu, "Annotator &name...", self._choose_annotator_name)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        # View: layouts
        self._layout_actions: dict[str, QAction] = {}
        layout_group = QActionGroup(self)
        for name, title, key in (
            ("1x1", "Single view (1x1)", "Ctrl+1"),
            ("1x3", "Three views (1x3)", "Ctrl+2"),
            ("2x2", "Four views with 3D (2x2)", "Ctrl+3"),
            ("3d", "3D view only", "Ctrl+4"),
        ):
            action = self._action(view_menu, title, lambda _=False, n=name: self.set_layout(n), key, checkable=True, tip=f"{title} ({key})")
            layout_group.addAction(action)
            self._layout_actions[name] = action
        view_menu.addSeparator()
        # View: window/level
        window_menu = view_menu.addMenu("&Window / level")
        self._preset_actions: dict[str, QAction] = {}
        for name, title in [*GENERIC_PRESETS.items(), *CT_PRESET_TITLES.items()]:
            self._preset_actions[name] = self._action(window_menu, title, lambda _=False, n=name: self.apply_window_preset(n))
        self.invert_action = self._action(view_menu, "&Invert grey levels", self.display.set_invert, "Ctrl+I", checkable=True)
        colormap_menu = view_menu.addMenu("&Colour map")
        colormap_group = QActionGroup(self)
        self._colormap_actions = {}
        for name in COLORMAPS:
            action = self._action(colormap_menu, name, lambda _=False, n=name: self.display.set_colormap(n), checkable=True)
            colormap_group.addAction(action)
            self._colormap_actions[name] = action
        view_menu.addSeparator()
        self.crosshair_action = self._action(view_menu, "Show &crosshair", self.display.set_crosshair_visible, "Ctrl+Shift+C", checkable=True)
        self.crosshair_action.setChecked(True)
        self.detections_action = self._action(view_menu, "Show &detections", self.display.set_detections_visible, checkable=True)
        self.detections_action.setChecked(True)
        reset = self._action(view_menu, "&Reset views", self.reset_views, "Ctrl+0")
        view_menu.addSeparator()
        view_menu.addMenu(self._panels_menu)

        # Tools: interaction modes and measurement tools
        self._mode_actions: dict[str, QAction] = {}
        mode_group = QActionGroup(self)
        for mode, title, key in (
            ("crosshair", "Crosshair", ""),
            ("window_level", "Window/level", "W"),
            ("pan", "Pan", ""),
            ("zoom", "Zoom", ""),
        ):
            action = self._action(tools_menu, title, lambda _=False, m=mode: self.set_interaction_mode(m), key or None, checkable=True)
            mode_group.addAction(action)
            self._mode_actions[mode] = action
        tools_menu.addSeparator()
        self.measurement_tools = {
            "ruler": RulerTool(lambda: self.measurements),
            "ellipse_roi": EllipseRoiTool(lambda: self.measurements),
            "rectangle_roi": RectangleRoiTool(lambda: self.measurements),
        }
        for key, tool in self.measurement_tools.items():
            action = self._action(tools_menu, tool.title, lambda _=False, t=tool: self.set_active_tool(t), tool.shortcut or None, checkable=True)
            mode_group.addAction(action)
            self._mode_actions[key] = action
        self._mode_actions["crosshair"].setChecked(True)
        self._mode_group = mode_group

        self._action(help_menu, "&Keyboard shortcuts", self._show_shortcuts, "F1")
        self._action(help_menu, "&About medviewer", self._about)

        # Toolbar
        tb = self.toolbar
        tb.addAction(open_file)
        tb.addSeparator()
        for name in LAYOUTS:
            action = self._layout_actions[name]
            action.setIconText(name.upper() if name == "3d" else name)
            tb.addAction(action)
        tb.addSeparator()
        for key in ("crosshair", "window_level", "pan", "zoom", "ruler", "ellipse_roi", "rectangle_roi"):
            tb.addAction(self._mode_actions[key])
        tb.addSeparator()
        self.window_combo = QComboBox()
        self.window_combo.setToolTip("Window/level preset")
        for name, title in [*GENERIC_PRESETS.items(), *CT_PRESET_TITLES.items()]:
            self.window_combo.addItem(title.split(" (")[0], name)
        self.window_combo.addItem("Custom", "custom")
        self.window_combo.activated.connect(lambda index: self._on_window_combo(index))
        tb.addWidget(self.window_combo)
        tb.addAction(self.invert_action)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(COLORMAPS))
        self.colormap_combo.setToolTip("Colour map")
        self.colormap_combo.textActivated.connect(self.display.set_colormap)
        tb.addWidget(self.colormap_combo)
        tb.addAction(reset)
        tb.addAction(screenshot)
        self.display.window_changed.connect(lambda *_: self._sync_window_controls())

    def _sync_mode_actions(self) -> None:
        if self.active_tool is not None:
            for key, tool in self.measurement_tools.items():
                if tool is self.active_tool:
                    self._mode_actions[key].setChecked(True)
                    return
            checked = self._mode_group.checkedAction()
            if checked is not None:
                self._mode_group.setExclusive(False)
                checked.setChecked(False)
                self._mode_group.setExclusive(True)
            return
        self._mode_actions[self.slice_views[0].interaction_mode].setChecked(True)

    def _sync_window_controls(self) -> None:
        index = self.window_combo.findData(self.display.preset)
        self.window_combo.setCurrentIndex(index if index >= 0 else self.window_combo.count() - 1)
        self.invert_action.setChecked(self.display.invert)
        self.colormap_combo.setCurrentText(self.display.colormap)
        self._colormap_actions[self.display.colormap].setChecked(True)

    def apply_window_preset(self, name: str) -> None:
        """Apply a window preset ("default", "auto", "mr_auto", "brain", "lung", ...) to the views."""
        if self.document is not None:
            self.display.apply_preset(name, self.document.volume)

    def _on_window_combo(self, index: int) -> None:
        name = self.window_combo.itemData(index)
        if name != "custom":
            self.apply_window_preset(name)

    def reset_views(self) -> None:
        for view in self.slice_views:
            view.reset_view()

    # ------------------------------------------------------------------ file dialogs
    def _open_pacs_dialog(self) -> None:
        from medviewer.ui.pacs_dialog import open_pacs_dialog  # pynetdicom loads only when asked for

        open_pacs_dialog(self)

    def _open_send_dialog(self) -> None:
        from medviewer.ui.pacs_dialog import open_send_dialog  # pynetdicom loads only when asked for

        open_send_dialog(self)

    def _start_directory(self) -> str:
        return self.settings.last_directory or str(Path.home())

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open image",
            self._start_directory(),
            "Images (*.dcm *.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.png *.jpg *.jpeg *.tif *.tiff *.bmp);;All files (*)",
        )
        if path:
            self.settings.last_directory = str(Path(path).parent)
            self.open_path(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder", self._start_directory())
        if path:
            self.settings.last_directory = str(Path(path).parent)
            self.open_path(path)

    def _choose_label_map(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open label map", self._start_directory(), "Label maps, DICOM SEG, RT structure sets (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.dcm);;All files (*)"
        )
        if path:
            self.open_label_map(path)

    def _choose_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", str(Path(self._start_directory()) / "screenshot.png"), "PNG (*.png)")
        if path:
            try:
                saved = self.save_screenshot(path)
                self.statusBar().showMessage(f"Saved {saved}", 4000)
            except (MedviewerError, OSError) as error:
                dialogs.show_error(self, "Cannot save screenshot", str(error))

    @property
    def annotator_name(self) -> str:
        """Who is annotating (stored in the settings; saved with corrected labels as provenance)."""
        return self.settings.annotator_name

    def set_annotator_name(self, name: str) -> None:
        self.settings.annotator_name = name.strip()
        self._save_settings()

    def _choose_annotator_name(self) -> None:
        name, ok = QInputDialog.getText(self, "Annotator name", "Name saved with your annotations:", text=self.annotator_name)
        if ok:
            self.set_annotator_name(name)

    def _rebuild_recent_menu(self) -> None:
        menu = self._recent_menu
        menu.clear()
        for path in self.settings.recent_files:
            self._action(menu, path, lambda _=False, p=path: self.open_path(p))
        menu.setEnabled(bool(self.settings.recent_files))

    def _about(self) -> None:
        from medviewer.ui.help_dialogs import show_about  # versions, compute device, model licences

        show_about(self)

    def _show_shortcuts(self) -> None:
        from medviewer.ui.help_dialogs import show_shortcuts  # generated from this window's actions

        show_shortcuts(self)

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            if self.document is not None and segmentation_kind(paths[0]) is not None:
                self.open_label_map(paths[0])  # a segmentation goes over the open image, as in 3D Slicer
            else:
                self.open_path(paths[0])

    # ------------------------------------------------------------------ settings and closing
    def _restore_geometry(self) -> None:
        if self.settings.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(self.settings.window_geometry.encode("ascii")))
        else:
            self.resize(1400, 900)
        if self.settings.window_state:
            self.restoreState(QByteArray.fromBase64(self.settings.window_state.encode("ascii")))

    def _save_settings(self) -> None:
        if not self.persist_settings:
            return
        try:
            save_settings(self.settings)
        except OSError as error:
            self.statusBar().showMessage(f"Cannot save settings: {error}", 5000)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.cancel_loading()
        self.jobs.shutdown(5000)
        self._thumbnail_jobs.shutdown(5000)
        self._segmentation_jobs.shutdown(5000)
        shutdown_3d = getattr(self.volume_view, "shutdown", None)
        if callable(shutdown_3d):  # release the 3D view's OpenGL window and X connection now
            try:
                shutdown_3d()
            except Exception:  # noqa: BLE001 - closing must not fail because of the 3D view
                pass
        self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
        self.settings.window_state = bytes(self.saveState().toBase64()).decode("ascii")
        self._save_settings()
        super().closeEvent(event)
