"""Editing in the main window: tool actions, undo/redo, saving, autosave, close and crash recovery.

``install_editing(window)`` plugs everything into a ``MainWindow`` through its
extension API (menus, toolbar, ``add_panel``, ``set_active_tool``,
``session_changed``) and returns the :class:`EditingUi` (also ``window.editing``).
Everything it edits belongs to the open study's ``StudySession`` (``window.session``):
its undo stack, editing controller and tools; so Undo means that study's history
whoever pushed the step (a tool, an operation, a model result), whatever was installed first.

* an "Edit" menu (Undo Ctrl+Z, Redo Ctrl+Shift+Z / Ctrl+Y) and an "Editing" toolbar;
* Tools menu: the editing tools with their shortcuts (``medviewer.tools.SHORTCUTS``),
  label operations, brush size, box review keys;
* File menu: Save annotations (Ctrl+S, nnU-Net dataset), Save labels as... (NIfTI/NRRD),
  Export DICOM SEG..., Choose annotation dataset...;
* docks "Labels" (``LabelTablePanel``) and "Editing tools" (``ToolPanel``);
* autosave by ``services.autosave_policy`` (a pause, continuous editing, many voxels), failures
  shown by ``ui.autosave_status``; closing the window, or opening another
  file, folder, series or the demo, with unsaved edits asks Save / Discard / Cancel
  (:meth:`EditingUi.resolve_unsaved_edits`, a ``window.document_guards`` entry);
  :meth:`EditingUi.offer_recovery` offers autosaves of crashed sessions at start.

Questions go through the module functions ``ask_unsaved_changes`` and
``ask_restore`` (tests replace them); errors through ``medviewer.ui.dialogs``.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QToolBar,
    QWidget,
)

from medviewer.core.document import Document
from medviewer.core.errors import MedviewerError
from medviewer.core.undo import HISTORY_LIMIT_TEXT, UndoStack
from medviewer.services.annotations import SaveTarget, default_dataset_root, is_model_source, split_model_source
from medviewer.services.editing import TOOL_ORDER, EditingController
from medviewer.services.study_session import StudySession
from medviewer.services.recovery import RecoveryEntry, adopt, discard_entry, list_recoverable
from medviewer.tools import SHORTCUTS, operations
from medviewer.tools import detections as box_ops
from medviewer.ui import dialogs
from medviewer.ui.autosave_status import AutosaveMonitor
from medviewer.ui.jobs import JobProgressDialog, JobQueue
from medviewer.ui.label_table_panel import LabelTablePanel
from medviewer.ui.tool_panel import ToolPanel


# ---------------------------------------------------------------------------- questions (tests replace these)
def _login_name() -> str:
    """The account name (USER, LOGNAME or USERNAME, else the password database): the annotator when none is set."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no such variables and no passwd entry (some containers)
        return ""


def ask_unsaved_changes(parent: QWidget) -> str:
    """Ask what to do with unsaved edits: "save", "discard" or "cancel"."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes",
                      "The labels or boxes have unsaved changes. Save them to the annotation dataset?\n\n"
                      "Discard drops them; Cancel keeps this study open as it is.",
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                      parent)
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    answer = box.exec()
    return {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}.get(
        QMessageBox.StandardButton(answer), "cancel"
    )


def ask_restore(parent: QWidget, entry: RecoveryEntry) -> str:
    """Offer one autosave of a session that did not close: "restore", "discard" or "later"."""
    box = QMessageBox(QMessageBox.Icon.Question, "Restore unsaved edits?",
                      "medviewer did not close properly last time. Unsaved edits were autosaved:\n\n"
                      f"{entry.describe()}\n\nOpen the image and restore them?", QMessageBox.StandardButton.NoButton, parent)
    restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(restore)
    box.exec()
    clicked = box.clickedButton()
    return "restore" if clicked is restore else "discard" if clicked is discard else "later"


def _shortcut_list(key: str) -> list[QKeySequence]:
    value = SHORTCUTS[key]
    return [QKeySequence(v) for v in (value if isinstance(value, tuple) else (value,))]


class EditingUi(QObject):
    """The editing features of one main window (see the module docstring)."""

    def __init__(self, window: QMainWindow, recovery_root: Path | None = None, autosave: bool = True) -> None:
        super().__init__(window)
        self.window = window
        self.recovery_root = recovery_root
        self.autosave_enabled = autosave
        self.session: StudySession | None = None
        self.save_target = SaveTarget()
        self.jobs = JobQueue(max_parallel=1, parent=self)
        window.editing = self
        window.set_session_options(autosave=autosave, recovery_root=recovery_root)
        self._pending_restore: RecoveryEntry | None = None

        self.tool_panel = ToolPanel(self.run_operation)
        self.label_panel = LabelTablePanel()
        scroller = QScrollArea()
        scroller.setWidget(self.tool_panel)
        scroller.setWidgetResizable(True)
        scroller.setFrameShape(QScrollArea.Shape.NoFrame)
        self.labels_dock = window.add_panel(self.label_panel, "Labels", "right")
        self.tools_dock = window.add_panel(scroller, "Editing tools", "right")
        window.tabifyDockWidget(self.labels_dock, self.tools_dock)
        self.labels_dock.raise_()
        self._build_actions()
        window.session_changed.connect(self._on_session_changed)
        window.active_tool_changed.connect(self._sync_tool_actions)
        window.installEventFilter(self)
        window.document_guards.append(self.resolve_unsaved_edits)  # asked before another study replaces this one

        # Autosave cadence (services.autosave_policy) and failure reporting.
        self.autosave_monitor = AutosaveMonitor(window, enabled=autosave)
        self._on_session_changed(window.session)

    @property
    def controller(self) -> EditingController | None:
        """The open study's editing controller (tools, edit session, tracker, autosaver)."""
        return self.session.editing if self.session is not None else None

    @property
    def undo_stack(self) -> UndoStack | None:
        """The open study's history (None while no study is open)."""
        return self.session.undo_stack if self.session is not None else None

    # ------------------------------------------------------------------ actions
    def _action(self, menu, text: str, slot, shortcut_key: str | None = None, checkable: bool = False, tip: str = "") -> QAction:
        action = QAction(text, self.window)
        if shortcut_key:
            action.setShortcuts(_shortcut_list(shortcut_key))
        action.setCheckable(checkable)
        action.setToolTip(f"{tip or text} ({action.shortcut().toString()})" if shortcut_key else tip or text)
        action.setStatusTip(tip or text)
        action.triggered.connect(slot)
        if menu is not None:
            menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        window = self.window
        menubar = window.menuBar()
        self.edit_menu = window.menuBar().addMenu("&Edit")
        menubar.insertMenu(window.menu("View").menuAction(), self.edit_menu)
        self.undo_action = self._action(self.edit_menu, "&Undo", lambda: self.undo(), "undo",
                                        tip=f"Undo the last edit. {HISTORY_LIMIT_TEXT}")
        self.redo_action = self._action(self.edit_menu, "&Redo", lambda: self.redo(), "redo")
        self.edit_menu.setToolTipsVisible(True)

        file_menu = window.menu("File")
        first = file_menu.actions()[0] if file_menu.actions() else None
        self.save_action = QAction("&Save annotations", window)
        self.save_action.setShortcut(QKeySequence.StandardKey.Save)
        self.save_action.setStatusTip("Save the labels and boxes into the annotation dataset (nnU-Net layout) for retraining")
        self.save_action.triggered.connect(lambda: self.save_annotations())
        self.save_labels_action = QAction("Save &labels as...", window)
        self.save_labels_action.triggered.connect(lambda: self.choose_label_file())
        self.export_seg_action = QAction("Export DICOM &SEG...", window)
        self.export_seg_action.triggered.connect(lambda: self.choose_seg_file())
        self.dataset_action = QAction("Choose annotation &dataset...", window)
        self.dataset_action.triggered.connect(lambda: self.choose_dataset())
        actions = [self.save_action, self.save_labels_action, self.export_seg_action, self.dataset_action]
        separator = QAction(window)
        separator.setSeparator(True)
        # after the "Open ..." entries, before "Recent files"
        anchor = next((a for a in file_menu.actions() if a.menu() is not None), first)
        for action in actions + [separator]:
            file_menu.insertAction(anchor, action) if anchor is not None else file_menu.addAction(action)

        tools_menu = window.menu("Tools")
        tools_menu.addSeparator()
        self.tool_actions: dict[str, QAction] = {}
        titles = {
            "paint": "Paint brush", "erase": "Eraser", "threshold_paint": "Threshold paint", "fill": "Fill (2D)",
            "polygon": "Polygon / lasso", "grow": "Region growing", "box": "Boxes (detections)",
        }
        for name in TOOL_ORDER:
            self.tool_actions[name] = self._action(
                tools_menu, titles[name], lambda checked=False, n=name: self.activate_tool(n, checked), name, checkable=True
            )
        ops_menu = tools_menu.addMenu("Label &operations")
        self._action(ops_menu, "Fill between slices", lambda: self.run_operation("fill_between_slices"), "fill_between_slices")
        self._action(ops_menu, "Grow from seeds", lambda: self.run_operation("grow_from_seeds"), "grow_from_seeds")
        self._action(ops_menu, "Remove small islands",
                     lambda: self.run_operation("remove_small_islands", min_voxels=self.tool_panel.islands_size.value()),
                     "remove_small_islands")
        self._action(ops_menu, "Keep largest component", lambda: self.run_operation("keep_largest_component"), "keep_largest_component")
        self._action(ops_menu, "Smooth label",
                     lambda: self.run_operation("smooth", method=self.tool_panel.smooth_method.currentText(),
                                                radius_mm=self.tool_panel.smooth_radius.value()), "smooth")
        brush_menu = tools_menu.addMenu("&Brush")
        self._action(brush_menu, "Smaller brush", lambda: self._grow_brush(-1), "brush_smaller")
        self._action(brush_menu, "Larger brush", lambda: self._grow_brush(1), "brush_larger")
        self._action(brush_menu, "2D disc / 3D ball", lambda: self._toggle_sphere(), "toggle_sphere")
        box_menu = tools_menu.addMenu("Bo&xes")
        self._action(box_menu, "Next box", lambda: self.box_action("next"), "next_box")
        self._action(box_menu, "Previous box", lambda: self.box_action("previous"), "previous_box")
        self._action(box_menu, "Accept box", lambda: self.box_action("accept"), "accept_box")
        self._action(box_menu, "Reject box", lambda: self.box_action("reject"), "reject_box")
        self._action(box_menu, "Delete box", lambda: self.box_action("delete"), "delete_box")

        self.toolbar = QToolBar("Editing", window)
        self.toolbar.setObjectName("editing_toolbar")
        window.addToolBarBreak()
        window.addToolBar(self.toolbar)
        self.toolbar.addAction(self.undo_action)
        self.toolbar.addAction(self.redo_action)
        self.toolbar.addSeparator()
        for name in TOOL_ORDER:
            self.toolbar.addAction(self.tool_actions[name])
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.save_action)
        self._sync_undo_actions()

    # ------------------------------------------------------------------ documents
    def _on_session_changed(self, session: StudySession | None) -> None:
        old = self.session
        if old is session:
            return
        if old is not None:  # the window detached it (its unsaved edits stay recoverable)
            for signal in (old.undo_stack.can_undo_changed, old.undo_stack.can_redo_changed, old.undo_stack.changed):
                signal.disconnect(self._sync_undo_actions)
        self.session = session
        document = session.document if session is not None else None
        if session is not None:
            for signal in (session.undo_stack.can_undo_changed, session.undo_stack.can_redo_changed, session.undo_stack.changed):
                signal.connect(self._sync_undo_actions)
        self.autosave_monitor.watch(self.controller.autosaver if self.controller is not None else None)
        self.tool_panel.set_controller(self.controller)
        self.label_panel.set_controller(self.controller)
        for action in [*self.tool_actions.values(), self.save_action, self.save_labels_action, self.export_seg_action]:
            action.setEnabled(document is not None)
        self._sync_undo_actions()
        self._sync_tool_actions(self.window.active_tool)
        if document is not None and self._pending_restore is not None:
            self._finish_restore(document)

    # ------------------------------------------------------------------ tools
    def activate_tool(self, name: str, checked: bool = True) -> None:
        """Make a tool receive the views' pointer events (unchecking returns to the crosshair)."""
        if self.controller is None:
            return
        tool = self.controller.tool(name)
        if checked or self.window.active_tool is not tool:
            self.window.set_active_tool(tool)
        else:
            self.window.set_interaction_mode("crosshair")

    def _sync_tool_actions(self, active) -> None:
        tools = self.controller.tools if self.controller is not None else {}
        for name, action in self.tool_actions.items():
            action.setChecked(tools.get(name) is not None and tools.get(name) is active)

    def _grow_brush(self, steps: int) -> None:
        if self.controller is not None:
            radius = self.controller.grow_brush(steps)
            self.window.statusBar().showMessage(f"Brush radius {radius:.2f} mm", 2000)

    def _toggle_sphere(self) -> None:
        if self.controller is not None:
            self.controller.set_brush_sphere(not self.controller.brush_sphere)
            self.window.statusBar().showMessage("3D ball brush" if self.controller.brush_sphere else "2D disc brush", 2000)

    def active_view_axis(self) -> int:
        """Index axis normal to the view last used (2 = axial for a standard stack)."""
        mapping = self.window.active_view.mapping
        return int(mapping.normal_axis) if mapping is not None else 2

    # ------------------------------------------------------------------ operations
    #: Operations that can take seconds on a large volume: computed on a worker thread.
    BACKGROUND_OPERATIONS = ("fill_between_slices", "grow_from_seeds")

    def run_operation(self, name: str, **options):
        """Run a one-shot label operation (one undo step); errors become dialogs.

        Fill between slices and grow from seeds are computed on a worker thread (with
        a progress dialog and Cancel) and applied on the UI thread; they return the
        ``JobHandle``. The others are quick and return the command they pushed.
        """
        if self.controller is None:
            return None
        session = self.controller.session
        if name in self.BACKGROUND_OPERATIONS:
            return self._run_in_background(name)
        functions = {
            "remove_small_islands": lambda: operations.remove_small_islands(session, values=session.active_value, **options),
            "keep_largest_component": lambda: operations.keep_largest_component(session),
            "smooth": lambda: operations.smooth_label(session, **options),
        }
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            command = functions[name]()
        except (MedviewerError, ValueError) as error:
            dialogs.show_error(self.window, "Label operation", str(error))
            return None
        finally:
            QApplication.restoreOverrideCursor()
        if command is None:
            self.window.statusBar().showMessage("Nothing changed", 2000)
        return command

    def _run_in_background(self, name: str):
        session = self.controller.session
        title = {"fill_between_slices": "Filling between slices", "grow_from_seeds": "Growing from seeds"}[name]
        try:
            if name == "fill_between_slices":
                job = operations.fill_between_slices_job(session, view_axis=self.active_view_axis())
            else:
                job = operations.grow_from_seeds_job(session)
        except (MedviewerError, ValueError) as error:
            dialogs.show_error(self.window, title, str(error))
            return None
        controller = self.controller
        handle = self.jobs.submit(job, title)
        JobProgressDialog(handle, title, self.window)

        def finished(change) -> None:
            if self.controller is not controller:  # another document was opened meanwhile
                return
            command = operations.apply_block_change(session, change)
            self.window.statusBar().showMessage("Nothing changed" if command is None else f"{title}: done", 3000)

        handle.finished.connect(finished)
        handle.failed.connect(lambda error: dialogs.show_error(self.window, title, dialogs.error_text(error)))
        return handle

    def box_action(self, what: str) -> None:
        if self.controller is None:
            return
        session = self.controller.session
        document = session.document
        if what in ("next", "previous"):
            box_ops.step_detection(session, forward=what == "next")
            return
        selected = document.selected_detection
        if selected is None:
            self.window.statusBar().showMessage("Select a box first (N steps through them)", 2000)
            return
        {"accept": box_ops.accept_detection, "reject": box_ops.reject_detection, "delete": box_ops.delete_detection}[what](
            session, selected
        )

    def undo(self) -> bool:
        """Undo the open study's last step (whoever made it)."""
        session = self.session
        done = session is not None and session.undo()
        if done:
            self.window.statusBar().showMessage(f"Undone: {session.undo_stack.redo_text}", 2000)
        return done

    def redo(self) -> bool:
        session = self.session
        done = session is not None and session.redo()
        if done:
            self.window.statusBar().showMessage(f"Redone: {session.undo_stack.undo_text}", 2000)
        return done

    def _sync_undo_actions(self, *_args) -> None:
        stack = self.undo_stack
        self.undo_action.setEnabled(stack is not None and stack.can_undo)
        self.redo_action.setEnabled(stack is not None and stack.can_redo)
        self.undo_action.setText(f"&Undo {stack.undo_text if stack is not None else ''}".strip())
        self.redo_action.setText(f"&Redo {stack.redo_text if stack is not None else ''}".strip())

    # ------------------------------------------------------------------ saving
    def save_annotations(self) -> bool:
        """Save into the annotation dataset; True on success (errors are shown)."""
        if self.controller is None:
            return False
        annotator = self.window.annotator_name or _login_name()
        try:
            record = self.session.save_annotations(self.save_target, annotator)
        except (MedviewerError, OSError) as error:
            dialogs.show_error(self.window, "Cannot save annotations", str(error))
            return False
        self.window.statusBar().showMessage(
            f"Saved {record.case_id} (version {record.version}) in {record.label.parent.parent}", 5000
        )
        return True

    def choose_dataset(self) -> None:
        parent = QFileDialog.getExistingDirectory(self.window, "Folder of annotation datasets", str(self.save_target.folder_parent()))
        if not parent:
            return
        name, ok = QInputDialog.getText(self.window, "Annotation dataset", "Dataset name (letters, digits, _ and -):",
                                        text=self.save_target.dataset_name)
        if not ok:
            return
        number, ok = QInputDialog.getInt(self.window, "Annotation dataset", "nnU-Net dataset id (1..999):",
                                         self.save_target.dataset_id, 1, 999)
        if ok:
            self.save_target = SaveTarget(number, name.strip(), Path(parent))
            self.window.statusBar().showMessage(f"Annotations will be saved in {default_dataset_root(self.save_target)}", 5000)

    def save_labels(self, path: str | os.PathLike[str]) -> bool:
        """Write the active label map next to its image (NIfTI, NRRD, MHA) so it can be reopened over it."""
        if self.controller is None or self.controller.session.label_map is None:
            dialogs.show_error(self.window, "Save labels", "There is no label map to save.")
            return False
        label_map = self.controller.session.label_map
        try:
            from medviewer import io as medviewer_io

            writer = getattr(medviewer_io, "write_label_map", None)
            if writer is not None:
                writer(label_map, path)
            else:  # until the io layer's writer exists
                import SimpleITK as sitk

                from medviewer.imaging.sitk_bridge import label_map_to_sitk
                from medviewer.io.atomic import atomic_path

                with atomic_path(path) as tmp:
                    sitk.WriteImage(label_map_to_sitk(label_map), str(tmp), useCompression=True)
        except (MedviewerError, OSError, RuntimeError) as error:
            dialogs.show_error(self.window, "Cannot save labels", str(error))
            return False
        self.window.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def choose_label_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Save labels", "labels.nii.gz",
                                              "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)")
        if path:
            self.save_labels(path)

    def export_seg(self, path: str | os.PathLike[str]) -> bool:
        """Export the active label map as DICOM SEG over the series' DICOM files."""
        from medviewer.io.dicom_seg import export_dicom_seg
        from medviewer.services.open_study import dicom_source_files

        document = self.controller.document if self.controller is not None else None
        label_map = document.active_label_map if document is not None else None
        if label_map is None:
            dialogs.show_error(self.window, "Export DICOM SEG", "There is no label map to export.")
            return False
        sources = dicom_source_files(document)
        if not sources:
            dialogs.show_error(self.window, "Export DICOM SEG", "DICOM SEG needs a series opened from DICOM files.")
            return False
        source = self.controller.tracker.original_of(label_map)
        algorithm = split_model_source(source.source) if source is not None and is_model_source(source.source) else None
        try:
            export_dicom_seg(label_map, sources, path, algorithm=algorithm)
        except MedviewerError as error:
            dialogs.show_error(self.window, "Cannot export DICOM SEG", str(error))
            return False
        self.window.statusBar().showMessage(f"Exported {path}", 4000)
        return True

    def choose_seg_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export DICOM SEG", "segmentation.dcm", "DICOM (*.dcm)")
        if path:
            self.export_seg(path)

    # ------------------------------------------------------------------ autosave, close, recovery
    def autosave(self) -> bool:
        """Autosave now if there are new unsaved edits (the write runs in the background)."""
        saver = self.controller.autosaver if self.controller is not None else None
        return saver.autosave_async() if saver is not None else False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.window and event.type() == QEvent.Type.Close:
            if not self.confirm_close():
                event.ignore()
                return True
        return False

    def resolve_unsaved_edits(self) -> bool:
        """Before the document goes away: ask Save / Discard / Cancel when it has unsaved edits.

        Save writes the annotations as File > Save annotations does; Discard drops the
        edits' recovery autosave. False (keep everything as it is) on Cancel or when
        saving failed; True otherwise, also when there is nothing unsaved.
        """
        controller = self.controller
        if controller is None or not controller.document.modified:
            return True
        answer = ask_unsaved_changes(self.window)
        if answer == "cancel":
            return False
        if answer == "save":
            return self.save_annotations()
        controller.discard_unsaved_edits()
        return True

    def confirm_close(self) -> bool:
        """Ask about unsaved edits; True when the window may close (then recovery files are dropped)."""
        controller = self.controller
        if controller is None:
            return True
        if not self.resolve_unsaved_edits():
            return False
        self.jobs.cancel_all()
        if controller.autosaver is not None:
            controller.autosaver.wait()
        self.session.close()
        self.autosave_monitor.stop()
        return True

    def offer_recovery(self) -> RecoveryEntry | None:
        """Offer the newest autosave of a crashed session; on "restore" open its image and restore it."""
        entries = list_recoverable(self.recovery_root)
        if not entries:
            return None
        entry = entries[0]
        answer = ask_restore(self.window, entry)
        if answer == "discard":
            discard_entry(entry)
            return None
        if answer != "restore":
            return None
        document = self.window.document
        if document is not None and not document.geometry.differences(entry.geometry):
            self._pending_restore = entry
            self._finish_restore(document)
        elif entry.source_path and Path(entry.source_path).exists():
            self._pending_restore = entry
            self.window.open_path(entry.source_path)
        else:
            dialogs.show_error(self.window, "Cannot restore",
                               f"The image the edits were made on is gone: {entry.source_path or 'unknown'}. "
                               f"The autosave is kept in {entry.folder}.")
            return None
        return entry

    def _finish_restore(self, document: Document) -> None:
        entry, self._pending_restore = self._pending_restore, None
        if entry is None or self.controller is None:
            return
        try:
            if self.controller.autosaver is not None:
                adopt(document, entry, self.controller.autosaver, self.controller.tracker)
            else:
                from medviewer.services.recovery import restore_into

                restore_into(document, entry, self.controller.tracker)
        except MedviewerError as error:
            dialogs.show_error(self.window, "Cannot restore", str(error))
            return
        self.window.statusBar().showMessage("Unsaved edits restored", 5000)


def install_editing(window: QMainWindow, recovery_root: Path | None = None, autosave: bool = True) -> EditingUi:
    """Add the editing features to ``window`` (once) and return them (``window.editing``).

    Autosave (into ``recovery_root``) applies to the studies opened from now on.
    """
    if isinstance(window.editing, EditingUi):
        return window.editing
    return EditingUi(window, recovery_root, autosave)
