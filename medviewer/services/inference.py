"""Use case "run model X on this image": find the model, run it as a job, apply the result to a document.

Qt-free and callable from the GUI (on a worker thread, then ``apply_result`` on the
UI thread), the CLI and tests. The registry and the loaded networks are kept by an
``InferenceService`` so a second run of the same model does not reload weights.

torch is imported only when a model actually runs (``medviewer.ai.pipeline``), so
listing models and opening the AI panel stay cheap.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from medviewer.ai.registry import ModelPackage, ModelRegistry
from medviewer.ai.results import InferenceOptions, InferenceResult
from medviewer.ai.tasks import Task
from medviewer.core.detection import Detection, DetectionStatus
from medviewer.core.document import Document
from medviewer.core.jobs import NO_PROGRESS, CancelToken, JobFunction, ProgressCallback
from medviewer.core.labels import LabelMap
from medviewer.core.undo import CallbackEdit, DetectionsEdit, UndoCommand, UndoStack, capture_detections
from medviewer.core.volume import Volume

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.ai.pipeline import ModelRunner


class InferenceService:
    """The model registry plus a few loaded networks kept ready for the next run.

    Parameters
    ----------
    registry:
        Where models are looked up; the default registry (built-in, user, remembered
        folders) when omitted.
    keep_loaded:
        How many loaded networks to keep in memory (least recently used are dropped).
    """

    def __init__(self, registry: ModelRegistry | None = None, keep_loaded: int = 2) -> None:
        self._registry = registry
        self._keep_loaded = max(1, keep_loaded)
        self._runners: OrderedDict[tuple[str, str, str], ModelRunner] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry.default()
        return self._registry

    @staticmethod
    def warm_up(progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None) -> bool:
        """Import the inference engine (torch, MONAI); a job to run early on a worker thread.

        Importing them takes seconds and holds the interpreter lock in long stretches;
        doing it before the first run keeps runs from stalling an interactive UI.
        """
        import medviewer.ai.pipeline  # noqa: F401

        return True

    def refresh(self) -> None:
        """Rescan model folders (e.g. after a fine-tuned model was written) and forget loaded networks."""
        self.registry.refresh()
        with self._lock:
            self._runners.clear()

    def find(self, model: str | ModelPackage) -> ModelPackage:
        return model if isinstance(model, ModelPackage) else self.registry.find(model)

    def models_for(self, modality: str, task: Task | str | None = None) -> list[ModelPackage]:
        """The newest version of every model meant for ``modality``."""
        return self.registry.for_modality(modality, task)

    def runner(self, model: str | ModelPackage) -> "ModelRunner":
        """A runner for ``model``, reusing its loaded network when it is still cached."""
        from medviewer.ai.pipeline import ModelRunner

        package = self.find(model)
        key = (str(package.folder), package.name, package.version)
        with self._lock:
            runner = self._runners.pop(key, None) or ModelRunner(package)
            self._runners[key] = runner
            while len(self._runners) > self._keep_loaded:
                self._runners.popitem(last=False)
        return runner

    def run(
        self,
        model: str | ModelPackage,
        volume: Volume,
        progress: ProgressCallback = NO_PROGRESS,
        cancel: CancelToken | None = None,
        options: InferenceOptions | None = None,
    ) -> InferenceResult:
        """Run ``model`` (a package or ``"name[:version]"``) on ``volume``."""
        return self.runner(model).run(volume, progress, cancel, options)

    def job(self, model: str | ModelPackage, volume: Volume, options: InferenceOptions | None = None) -> JobFunction:
        """A ``fn(progress, cancel) -> InferenceResult`` for a worker thread.

        Everything heavy (importing torch, loading weights) happens inside the job, on
        the worker thread, never on the caller's (UI) thread.
        """
        package = self.find(model)
        return partial(self.run, package, volume, options=options)


def run_inference(
    model: str | ModelPackage,
    volume: Volume,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    options: InferenceOptions | None = None,
    registry: ModelRegistry | None = None,
) -> InferenceResult:
    """One-off run of ``model`` on ``volume`` (see ``InferenceService`` to keep networks loaded)."""
    return InferenceService(registry).run(model, volume, progress, cancel, options)


# ---------------------------------------------------------------------------- applying results
@dataclass
class AppliedResult:
    """What ``apply_result`` changed in the document."""

    label_map: LabelMap | None = None
    replaced: LabelMap | None = None
    detections: list[Detection] = field(default_factory=list)
    removed_detections: list[Detection] = field(default_factory=list)
    command: UndoCommand | None = None


def previous_result_layer(document: Document, model_name: str) -> LabelMap | None:
    """The most recent label map produced by any version of ``model_name``."""
    prefix = f"{model_name} "
    matches = [lm for lm in document.label_maps if lm.source.startswith(prefix)]
    return matches[-1] if matches else None


def apply_result(
    document: Document,
    result: InferenceResult,
    undo_stack: UndoStack | None = None,
    replace_previous: bool = False,
) -> AppliedResult:
    """Put a model's result into ``document`` as one undoable step (call it on the UI thread).

    Segmentation adds a label layer, or with ``replace_previous`` replaces the latest
    layer made by the same model (any version). Detections are appended; with
    ``replace_previous`` the same model's earlier *proposed* boxes are removed first
    (accepted or edited boxes stay). Classification probabilities and enhanced images
    do not change the document (the caller shows them or adds a derived series).
    When ``undo_stack`` is given, the change is pushed on it as one step.
    """
    applied = AppliedResult()
    if result.label_map is not None:
        new = result.label_map
        old = previous_result_layer(document, result.model_name) if replace_previous else None
        if old is not None:
            applied.replaced = old
            command = CallbackEdit(
                undo=lambda: document.replace_label_map(new, old),
                redo=lambda: document.replace_label_map(old, new),
                text=f"Replace {old.name} with {new.name}",
            )
        else:
            command = CallbackEdit(
                undo=lambda: document.remove_label_map(new),
                redo=lambda: document.add_label_map(new),
                text=f"Add {new.name}",
            )
        command.redo()
        applied.label_map = new
        applied.command = command
    if result.task == Task.DETECTION:  # even no boxes replace the model's earlier proposals
        before = capture_detections(document)
        prefix = f"{result.model_name} "
        if replace_previous:
            applied.removed_detections = [
                d for d in document.detections if d.source.startswith(prefix) and d.status == DetectionStatus.PROPOSED
            ]
        kept = [d for d in document.detections if d not in applied.removed_detections]
        with document.recording() if undo_stack is not None else contextlib.nullcontext():  # the push holds it
            document.set_detections([*kept, *result.detections])
        applied.detections = list(result.detections)
        applied.command = DetectionsEdit(document, before, text=f"Detections by {result.source}")
    if applied.command is not None and undo_stack is not None:
        undo_stack.push(applied.command)  # already applied
    elif applied.command is not None:
        document.mark_modified()  # not undoable: modified until saved
    return applied
