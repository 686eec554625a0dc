"""The study session: the one owner of everything about one open study, without Qt.

A :class:`StudySession` is created once per opened study and handed explicitly to
every panel and view (the GUI), command or test that works on it. It holds

* ``document``: the image, its label layers, detections and cursor (``core.Document``);
* ``undo_stack``: the study's one history; edits, model results and label operations
  all go on it, so Ctrl+Z always means this stack;
* ``editing``: the ``EditingController`` (edit session, tools, proposal tracker, autosaver)
  built on that stack; ``tool(name)``, ``active_label`` and ``active_tool`` go through it;
* ``measurements``: rulers and ROIs drawn on the study;
* ``display``: the :class:`~medviewer.services.workspace.DisplayModel` the slice views and
  the 3D view both draw from (a window passes its own so its views stay bound to one model;
  a headless session makes one);
* ``prompts``: the ordered :class:`PromptRecord` history for promptable models.

Long work (reading a study or label files, running a model) is offered as functions
with the job signature ``fn(progress, cancel)`` that return data, and a method that
applies the data on the caller's thread (the GUI's UI thread), as one undo step where
it changes the document. The same methods run everything synchronously for the CLI
and tests (:meth:`open`, :meth:`open_label_layers`, :meth:`run_model`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from medviewer.core.document import Document
from medviewer.core.errors import MedviewerError
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.core.labels import LabelMap
from medviewer.core.study import SeriesInfo
from medviewer.core.undo import UndoStack
from medviewer.imaging.measurements import MeasurementList
from medviewer.services.annotations import SaveTarget
from medviewer.services.editing import EditingController
from medviewer.services.open_study import load_segmentations, open_path
from medviewer.services.workspace import DisplayModel
from medviewer.tools.base import Tool

if TYPE_CHECKING:  # the AI layer (torch) is imported only when a model runs
    from medviewer.ai.registry import ModelPackage
    from medviewer.ai.results import InferenceOptions, InferenceResult
    from medviewer.io.nnunet_dataset import CaseRecord
    from medviewer.services.inference import AppliedResult, InferenceService

#: Kinds of prompt a promptable model takes.
PROMPT_KINDS = ("point", "box", "scribble")


@dataclass(frozen=True)
class PromptRecord:
    """One prompt given to a promptable model, in world LPS millimetres.

    ``points``: one point ("point"), two opposite corners ("box") or a polyline
    ("scribble"); ``positive`` False marks background; ``label_value`` is the label the
    prompt is for (None: the active one); ``model`` the model reference it was given to.
    """

    kind: str
    points: tuple[tuple[float, float, float], ...]
    positive: bool = True
    label_value: int | None = None
    model: str = ""
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.kind not in PROMPT_KINDS:
            raise ValueError(f"unknown prompt kind {self.kind!r}; choose one of {', '.join(PROMPT_KINDS)}")
        points = tuple(tuple(float(c) for c in p) for p in self.points)
        if not points or any(len(p) != 3 for p in points):
            raise ValueError("a prompt needs at least one point of three world coordinates (x, y, z)")
        if self.kind == "box" and len(points) != 2:
            raise ValueError(f"a box prompt has two corners, got {len(points)} points")
        object.__setattr__(self, "points", points)


class StudySession:
    """Everything about one open study (see the module docstring).

    Parameters
    ----------
    document:
        The open study.
    display:
        The display model to use (a window's, shared by its views); default: a new one.
        It is reset for the study's volume.
    autosave, recovery_root:
        Autosave unsaved edits for crash recovery (``services.recovery``), into
        ``recovery_root`` or the user's recovery folder.
    """

    #: the tool receiving pointer events changed: (Tool | None)
    active_tool_changed = Signal(object)
    #: a prompt was added or the history cleared: ()
    prompts_changed = Signal()

    def __init__(
        self,
        document: Document,
        display: DisplayModel | None = None,
        *,
        autosave: bool = False,
        recovery_root: Path | None = None,
    ) -> None:
        self.document = document
        self.undo_stack = UndoStack()
        self.editing = EditingController(document, self.undo_stack, autosave=autosave, recovery_root=recovery_root)
        self.measurements = MeasurementList()
        self.display = display if display is not None else DisplayModel()
        self.display.reset_for(document.volume)
        self.prompts: list[PromptRecord] = []
        self._active_tool: Tool | None = None
        self.closed = False

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        series: int | str | None = None,
        progress: ProgressCallback = NO_PROGRESS,
        cancel: CancelToken | None = None,
        **options: Any,
    ) -> "StudySession":
        """Read ``path`` (file or folder; ``series`` as in ``open_study.open_path``) and start a session on it.

        ``options`` go to the constructor (``display``, ``autosave``, ``recovery_root``).
        """
        volume, chosen, _found = open_path(path, series, progress, cancel)
        return cls(Document(volume, chosen), **options)

    @property
    def series(self) -> SeriesInfo | None:
        return self.document.series

    # ------------------------------------------------------------------ label layers
    def label_layers_job(self, paths: list[str | os.PathLike[str]]):
        """``fn(progress, cancel) -> (label maps, problems)`` reading label files over this study.

        NIfTI/NRRD/MetaImage label maps, DICOM SEG and RT structure sets, through
        ``open_study.load_segmentations`` (the folder attachments' reader). Safe on a
        worker thread: it reads only; apply with :meth:`add_label_layers`.
        """
        files = [os.fspath(p) for p in paths]
        volume = self.document.volume

        def job(progress: ProgressCallback, cancel: CancelToken) -> tuple[list[LabelMap], list[str]]:
            return load_segmentations(files, volume, progress, cancel)

        return job

    def add_label_layers(self, label_maps: list[LabelMap]) -> tuple[list[LabelMap], list[str]]:
        """Add read layers to the document: the layers added and, for those that do not fit, the reasons."""
        added, problems = [], []
        for label_map in label_maps:
            try:
                added.append(self.document.add_label_map(label_map))
            except MedviewerError as error:
                problems.append(str(error))
        return added, problems

    def open_label_layers(
        self, paths: list[str | os.PathLike[str]], progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None
    ) -> tuple[list[LabelMap], list[str]]:
        """Read and add label files now (CLI, tests): the layers added and the problems met."""
        label_maps, problems = self.label_layers_job(paths)(progress, cancel or CancelToken())
        added, more = self.add_label_layers(label_maps)
        return added, problems + more

    # ------------------------------------------------------------------ models
    def apply_result(self, result: "InferenceResult", replace_previous: bool = True) -> "AppliedResult":
        """Put a finished model run into the document as one step of this study's undo history."""
        from medviewer.services.inference import apply_result

        # The proposal tracker copies a model-made layer as it appears, for the saved provenance.
        return apply_result(self.document, result, self.undo_stack, replace_previous=replace_previous)

    def run_model(
        self,
        model: "str | ModelPackage",
        service: "InferenceService | None" = None,
        progress: ProgressCallback = NO_PROGRESS,
        cancel: CancelToken | None = None,
        options: "InferenceOptions | None" = None,
        replace_previous: bool = True,
    ) -> "InferenceResult":
        """Run ``model`` (package or "name[:version]") on the study now and apply its result (CLI, tests)."""
        from medviewer.services.inference import InferenceService

        service = service or InferenceService()
        result = service.run(model, self.document.volume, progress, cancel, options)
        self.apply_result(result, replace_previous)
        return result

    # ------------------------------------------------------------------ editing
    def tool(self, name: str) -> Tool:
        """The editing tool ``name`` of ``services.editing.TOOL_ORDER`` (paint, erase, fill, ...)."""
        return self.editing.tool(name)

    @property
    def active_tool(self) -> Tool | None:
        """The tool receiving pointer events (editing or measurement tool; None: crosshair)."""
        return self._active_tool

    def set_active_tool(self, tool: Tool | str | None) -> Tool | None:
        """Make ``tool`` (or the editing tool of that name) the active one; the previous one is cancelled."""
        if isinstance(tool, str):
            tool = self.tool(tool)
        if tool is self._active_tool:
            return tool
        if self._active_tool is not None:
            self._active_tool.cancel()
        self._active_tool = tool
        self.active_tool_changed.emit(tool)
        return tool

    @property
    def active_label(self) -> int:
        """The label value the editing tools paint."""
        return self.editing.session.active_value

    def set_active_label(self, value: int) -> None:
        self.editing.session.active_value = int(value)

    def undo(self) -> bool:
        """Undo the last step (an interaction in progress is cancelled first)."""
        self._cancel_interaction()
        return self.undo_stack.undo()

    def redo(self) -> bool:
        self._cancel_interaction()
        return self.undo_stack.redo()

    def _cancel_interaction(self) -> None:
        if self._active_tool is not None:
            self._active_tool.cancel()

    # ------------------------------------------------------------------ prompts
    def add_prompt(self, prompt: PromptRecord) -> PromptRecord:
        """Append ``prompt`` to the history (in the order given)."""
        self.prompts.append(prompt)
        self.prompts_changed.emit()
        return prompt

    def clear_prompts(self) -> None:
        if self.prompts:
            self.prompts.clear()
            self.prompts_changed.emit()

    # ------------------------------------------------------------------ saving and closing
    @property
    def modified(self) -> bool:
        """Unsaved label or box edits."""
        return self.document.modified

    def save_annotations(self, target: SaveTarget | None = None, annotator: str = "") -> "CaseRecord":
        """Save the active label map and the boxes as an nnU-Net case (with the model's proposal when there is one)."""
        return self.editing.save_annotations(target, annotator)

    def close(self) -> None:
        """The study goes away: cancel interactions and drop its recovery files (a clean close)."""
        if self.closed:
            return
        self.closed = True
        self._cancel_interaction()
        self.editing.close()

    def detach(self) -> None:
        """Another study replaces this one without a clean close: unsaved edits stay recoverable."""
        self._cancel_interaction()
        for tool in self.editing.tools.values():
            tool.cancel()
        if self.editing.autosaver is not None:
            self.editing.autosaver.detach()
