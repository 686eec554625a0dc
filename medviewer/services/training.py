"""Use case "retrain a model on the corrected cases": a Qt-free job for the GUI, the CLI and tests.

``TrainingJob(request, on_event)`` is a ``fn(progress, cancel)`` job: the GUI runs it
on a worker thread (``medviewer.ui.jobs``) and draws the loss and Dice curves from the
events it sends (epoch, loss, validation Dice per label), the CLI prints them, tests
collect them. After a run the model registry is refreshed so the new package is
listed at once.

torch is imported only when the job runs, so opening the Retrain dialog stays cheap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.ai.registry import ModelPackage, ModelRegistry
from medviewer.ai.tasks import trainable_tasks
from medviewer.ai.training import TrainingEvent, TrainingRequest, TrainingResult, TrainingSettings, no_events
from medviewer.ai.training.config import EventCallback
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback
from medviewer.core.paths import datasets_dir
from medviewer.io.nnunet_dataset import list_datasets

TRAINABLE_TASKS = trainable_tasks()


def trainable_models(registry: ModelRegistry) -> list[ModelPackage]:
    """Every version of every model that can be retrained (segmentation/detection with a built-in architecture)."""
    return [p for p in registry.packages if p.task in TRAINABLE_TASKS and p.manifest.runtime.type == "builtin"]


def known_datasets(extra: list[str | Path] = ()) -> list[Path]:
    """Annotation datasets in the default datasets folder (and ``extra`` parents)."""
    found: list[Path] = []
    for parent in [datasets_dir(), *extra]:
        found += [p for p in list_datasets(parent) if p not in found]
    return found


def suggested_name(base: ModelPackage) -> str:
    """Default name of a fine-tuned model: the base's own name (the result is its next version)."""
    return base.name


@dataclass
class TrainingJob:
    """A training run as a job; collects the events it sends (``events``) besides forwarding them.

    Parameters
    ----------
    request:
        What to train.
    on_event:
        Called on the worker thread for every ``TrainingEvent`` (the GUI forwards them
        to the UI thread with a queued signal).
    registry:
        Refreshed after a successful run, so the new package is listed.
    """

    request: TrainingRequest
    on_event: EventCallback = no_events
    registry: ModelRegistry | None = None
    events: list[TrainingEvent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _record(self, event: TrainingEvent) -> None:
        with self._lock:
            self.events.append(event)
        self.on_event(event)

    def __call__(self, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None) -> TrainingResult:
        from medviewer.ai.training.trainer import run_training

        result = run_training(self.request, progress, cancel, self._record, self.registry)
        if self.registry is not None:
            self.registry.refresh()
        return result  # type: ignore[return-value] - a single process is always rank 0


def run_training_job(
    request: TrainingRequest,
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    on_event: EventCallback = no_events,
    registry: ModelRegistry | None = None,
) -> TrainingResult | None:
    """Run ``request`` now (the CLI's path; under torchrun, ranks other than 0 return ``None``)."""
    from medviewer.ai.training.trainer import run_training

    result = run_training(request, progress, cancel, on_event, registry)
    if result is not None and registry is not None:
        registry.refresh()
    return result


__all__ = [
    "TrainingEvent",
    "TrainingJob",
    "TrainingRequest",
    "TrainingResult",
    "TrainingSettings",
    "known_datasets",
    "run_training_job",
    "suggested_name",
    "trainable_models",
]
