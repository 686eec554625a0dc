"""Retraining: fine-tune a segmentation or detection model on an annotation dataset (or train from scratch).

The public, torch-free pieces are importable from here; the trainer itself is
imported lazily so listing, dialogs and CLI parsing stay cheap::

    from medviewer.ai.training import TrainingRequest, TrainingSettings
    from medviewer.ai.training.trainer import run_training

    result = run_training(TrainingRequest("Dataset501_Lungs", "ct-lung-seg", "ct-lung-seg",
                                          TrainingSettings(epochs=10)))

``python -m medviewer.ai.training`` (or ``medviewer train``) runs it from the command
line, also under ``torchrun`` for data-parallel training.
"""

from medviewer.ai.training.config import (
    IGNORE_VALUE,
    EpochRecord,
    EventCallback,
    TrainingEvent,
    TrainingRequest,
    TrainingResult,
    TrainingSettings,
    comparison_rows,
    no_events,
)

__all__ = [
    "IGNORE_VALUE",
    "EpochRecord",
    "EventCallback",
    "TrainingEvent",
    "TrainingRequest",
    "TrainingResult",
    "TrainingSettings",
    "comparison_rows",
    "no_events",
]
