"""Run Qt-free jobs ``fn(progress, cancel)`` on worker threads; deliver results on the UI thread.

Usage::

    queue = JobQueue()                       # jobs run one after the other
    handle = queue.submit(my_job, "Loading CT")
    handle.finished.connect(apply_result)    # result, on the UI thread
    handle.failed.connect(show_error)        # the exception (usually a MedviewerError)
    handle.cancelled.connect(...)
    JobProgressDialog(handle, parent=window) # optional: progress bar, ETA and Cancel

A job is any callable ``fn(progress, cancel) -> result`` (``medviewer.core.jobs``):
``progress(fraction, message)`` reports 0..1 and ``cancel.raise_if_cancelled()`` is
checked between slices or batches. Cancelling is cooperative: ``handle.cancel()`` sets
the token; the job stops at its next check (raising ``OperationCancelled``) and
``cancelled`` is emitted. A result that arrives after ``cancel()`` is discarded and
reported as ``cancelled`` too, so a stale load is never applied. A job cancelled
before it started is removed from the queue and reported at once.

Exactly one of ``finished``, ``failed`` or ``cancelled`` is emitted per job, then
``done``. Progress signals are throttled (at most about 25 per second).
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot
from PySide6.QtWidgets import QProgressDialog, QWidget

from medviewer.core.errors import OperationCancelled
from medviewer.core.jobs import CancelToken

JobFunction = Callable[[Callable[..., None], CancelToken], Any]

QUEUED, RUNNING, FINISHED, FAILED, CANCELLED = "queued", "running", "finished", "failed", "cancelled"
_PROGRESS_INTERVAL_S = 0.04


class _Bridge(QObject):
    """Lives on the UI thread; the worker emits these, Qt queues them to the handle."""

    started = Signal()
    progress = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()


class JobHandle(QObject):
    """One submitted job: its state, signals (UI thread) and ``cancel()``."""

    progress = Signal(float, str)
    started = Signal()
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    done = Signal()

    def __init__(self, fn: JobFunction, name: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "job")
        self.token = CancelToken()
        self.state = QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self.traceback_text = ""
        self.fraction = 0.0
        self.message = ""
        self._started_at: float | None = None
        self._bridge = _Bridge()
        self._bridge.started.connect(self._on_started, Qt.ConnectionType.QueuedConnection)
        self._bridge.progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._bridge.succeeded.connect(self._on_succeeded, Qt.ConnectionType.QueuedConnection)
        self._bridge.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        self._bridge.cancelled.connect(self._on_cancelled, Qt.ConnectionType.QueuedConnection)
        self._queue: "JobQueue | None" = None
        self._runnable: "_JobRunnable | None" = None

    # ------------------------------------------------------------------ public
    @property
    def is_done(self) -> bool:
        return self.state in (FINISHED, FAILED, CANCELLED)

    def cancel(self) -> None:
        """Ask the job to stop. Queued jobs are dropped at once; running ones at their next check."""
        if self.is_done:
            return
        self.token.cancel()
        if self.state == QUEUED and self._queue is not None and self._queue._take(self):
            self._finish(CANCELLED)

    def elapsed_seconds(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    def eta_seconds(self) -> float | None:
        """Estimated seconds left, from the progress so far (None until there is enough to tell)."""
        if self._started_at is None or self.fraction < 0.02 or self.fraction >= 1.0:
            return None
        elapsed = self.elapsed_seconds()
        return elapsed * (1.0 - self.fraction) / self.fraction

    # ------------------------------------------------------------------ UI-thread slots
    @Slot()
    def _on_started(self) -> None:
        if self.state == QUEUED:
            self.state = RUNNING
            self._started_at = time.monotonic()
            self.started.emit()
            self._tell_queue("job_started")

    @Slot(float, str)
    def _on_progress(self, fraction: float, message: str) -> None:
        if self.is_done:
            return
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        self.message = message
        self.progress.emit(self.fraction, message)

    @Slot(object)
    def _on_succeeded(self, result: Any) -> None:
        if self.token.cancelled:
            self._finish(CANCELLED)  # a stale result is never delivered
        else:
            self.result = result
            self._finish(FINISHED)

    @Slot(object)
    def _on_failed(self, error_and_trace: Any) -> None:
        error, trace = error_and_trace
        if isinstance(error, OperationCancelled) or self.token.cancelled:
            self._finish(CANCELLED)
        else:
            self.error = error
            self.traceback_text = trace
            self._finish(FAILED)

    @Slot()
    def _on_cancelled(self) -> None:
        self._finish(CANCELLED)

    def _finish(self, state: str) -> None:
        if self.is_done:
            return
        self.state = state
        if state == FINISHED:
            self.finished.emit(self.result)
        elif state == FAILED:
            self.failed.emit(self.error)
        else:
            self.cancelled.emit()
        self.done.emit()
        self._tell_queue("_forget")

    def _tell_queue(self, what: str) -> None:
        queue = self._queue
        if queue is None:
            return
        try:
            if what == "_forget":
                queue._forget(self)
                self._queue = None
            else:
                queue.job_started.emit(self)
        except RuntimeError:  # the queue's owner was deleted while the job ran
            self._queue = None


class _JobRunnable(QRunnable):
    """Runs on a pool thread; talks to the UI thread only through the bridge's queued signals."""

    def __init__(self, handle: JobHandle) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self._fn = handle.fn
        self._token = handle.token
        self._bridge = handle._bridge
        self._last_progress = 0.0

    def _emit(self, signal_name: str, *args) -> None:
        try:
            getattr(self._bridge, signal_name).emit(*args)
        except RuntimeError:
            # The UI side is gone (window closed, application quitting): stop quietly.
            self._token.cancel()

    def _progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if now - self._last_progress >= _PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last_progress = now
            self._emit("progress", float(fraction), str(message))

    def run(self) -> None:  # worker thread
        if self._token.cancelled:
            self._emit("cancelled")
            return
        self._emit("started")
        try:
            result = self._fn(self._progress, self._token)
        except OperationCancelled:
            self._emit("cancelled")
        except BaseException as error:  # noqa: BLE001 - reported to the UI, never lost
            self._emit("failed", (error, traceback.format_exc()))
        else:
            self._emit("succeeded", result)


class JobQueue(QObject):
    """Runs submitted jobs on its own thread pool, ``max_parallel`` at a time (1 = one after the other)."""

    job_started = Signal(object)
    job_done = Signal(object)

    def __init__(self, max_parallel: int = 1, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, int(max_parallel)))
        self._handles: list[JobHandle] = []

    @property
    def jobs(self) -> list[JobHandle]:
        """Jobs queued or running, in submission order."""
        return list(self._handles)

    def submit(self, fn: JobFunction, name: str = "") -> JobHandle:
        """Queue ``fn(progress, cancel)``; returns its handle (signals arrive on the UI thread)."""
        handle = JobHandle(fn, name)
        handle._queue = self
        handle._runnable = _JobRunnable(handle)
        self._handles.append(handle)
        self._pool.start(handle._runnable)
        return handle

    def cancel_all(self) -> None:
        for handle in list(self._handles):
            handle.cancel()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel every job and wait for the worker threads (call before the owner goes away)."""
        self.cancel_all()
        return self.wait_for_done(timeout_ms)

    def wait_for_done(self, timeout_ms: int = -1) -> bool:
        """Block until the worker threads are idle (for shutdown; signals still need the event loop)."""
        return self._pool.waitForDone(timeout_ms)

    def _take(self, handle: JobHandle) -> bool:
        return handle._runnable is not None and self._pool.tryTake(handle._runnable)

    def _forget(self, handle: JobHandle) -> None:
        if handle in self._handles:
            self._handles.remove(handle)
        self.job_done.emit(handle)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    return f"about {seconds / 60:.0f} min left"


class JobProgressDialog(QProgressDialog):
    """A progress bar with message, ETA and Cancel for one job; closes itself when the job ends.

    Non-modal by default, so the window stays usable (and a second file can be opened,
    which cancels the first load). Shown only when the job lasts longer than ``delay_ms``.
    """

    def __init__(self, handle: JobHandle, title: str = "", parent: QWidget | None = None, delay_ms: int = 400, modal: bool = False) -> None:
        super().__init__(title or handle.name, "Cancel", 0, 1000, parent)
        self.setWindowTitle(title or handle.name)
        self.setWindowModality(Qt.WindowModality.WindowModal if modal else Qt.WindowModality.NonModal)
        self.setAutoClose(False)
        self.setAutoReset(False)
        self.setMinimumDuration(delay_ms)
        self.setMinimumWidth(360)
        self.setValue(0)
        self._handle = handle
        self._title = title or handle.name
        handle.progress.connect(self._on_progress)
        handle.done.connect(self._on_done)
        self.canceled.connect(self._on_cancel_clicked)
        if handle.is_done:
            self._on_done()

    def _on_progress(self, fraction: float, message: str) -> None:
        eta = format_eta(self._handle.eta_seconds())
        parts = [p for p in (message or self._title, eta) if p]
        self.setLabelText("\n".join(parts))
        self.setValue(int(round(fraction * 1000)))

    def _on_cancel_clicked(self) -> None:
        self.setLabelText("Cancelling...")
        self._handle.cancel()

    def _on_done(self) -> None:
        self.canceled.disconnect(self._on_cancel_clicked)
        self.reset()
        self.close()
        self.deleteLater()
