"""Qt-free long-running work: progress reporting and cooperative cancellation.

A job is any callable ``fn(progress, cancel) -> result``. ``progress(fraction,
message)`` reports 0..1; code checks ``cancel.raise_if_cancelled()`` between slices or
batches. The GUI runs jobs on a worker thread (``medviewer.ui.jobs``); the CLI runs
them directly with a tqdm bar; tests call them with ``NO_PROGRESS``.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol, TypeVar

from medviewer.core.errors import OperationCancelled

T = TypeVar("T")


class ProgressCallback(Protocol):
    def __call__(self, fraction: float, message: str = "") -> None: ...


def NO_PROGRESS(fraction: float, message: str = "") -> None:  # noqa: N802 - a constant-like callable
    """Progress sink that ignores everything."""


class CancelToken:
    """Thread-safe flag set by the UI and polled by the worker."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise OperationCancelled()


def scaled_progress(progress: ProgressCallback, start: float, stop: float) -> ProgressCallback:
    """Map a sub-task's 0..1 progress onto ``start..stop`` of the parent's."""

    def report(fraction: float, message: str = "") -> None:
        progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return report


JobFunction = Callable[[ProgressCallback, CancelToken], T]
