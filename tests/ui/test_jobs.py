"""Background jobs: results on the UI thread, queueing, cooperative cancel, failures, progress."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication, QPushButton

from medviewer.core.errors import CorruptFileError
from medviewer.ui.jobs import CANCELLED, FAILED, FINISHED, JobProgressDialog, JobQueue

pytestmark = pytest.mark.gui


def wait_done(qtbot, handle, timeout=5000):
    qtbot.waitUntil(lambda: handle.is_done, timeout=timeout)


def test_result_is_delivered_on_the_ui_thread(qtbot):
    queue = JobQueue()
    seen = {}

    def job(progress, cancel):
        seen["worker"] = threading.get_ident()
        return 42

    handle = queue.submit(job, "answer")
    handle.finished.connect(lambda result: seen.update(result=result, ui=QThread.currentThread() is QApplication.instance().thread()))
    with qtbot.waitSignal(handle.done, timeout=5000):
        pass
    assert seen["result"] == 42 and seen["ui"] is True
    assert seen["worker"] != threading.get_ident()
    assert handle.state == FINISHED and handle.result == 42


def test_jobs_run_one_after_the_other_in_order(qtbot):
    queue = JobQueue(max_parallel=1)
    log, running = [], []

    def make(n):
        def job(progress, cancel):
            running.append(n)
            assert len(running) == 1, "two jobs ran at the same time"
            time.sleep(0.02)
            log.append(n)
            running.remove(n)
            return n

        return job

    handles = [queue.submit(make(n)) for n in range(4)]
    wait_done(qtbot, handles[-1])
    assert log == [0, 1, 2, 3]
    assert [h.state for h in handles] == [FINISHED] * 4
    assert queue.jobs == []


def test_cancelling_a_running_job_stops_it_within_a_second(qtbot):
    queue = JobQueue()
    started = threading.Event()
    iterations = []

    def job(progress, cancel):
        started.set()
        for step in range(10_000):
            cancel.raise_if_cancelled()
            iterations.append(step)
            time.sleep(0.005)
        return "should not arrive"

    handle = queue.submit(job)
    finished = []
    handle.finished.connect(finished.append)
    assert started.wait(5)
    t0 = time.monotonic()
    with qtbot.waitSignal(handle.cancelled, timeout=2000):
        handle.cancel()
    assert time.monotonic() - t0 < 1.0
    assert handle.state == CANCELLED and finished == []
    assert len(iterations) < 10_000


def test_cancelling_a_queued_job_drops_it_at_once(qtbot):
    queue = JobQueue()
    gate = threading.Event()
    ran = []
    blocker = queue.submit(lambda p, c: gate.wait(5))
    queued = queue.submit(lambda p, c: ran.append("ran"))
    cancelled = []
    queued.cancelled.connect(lambda: cancelled.append(True))
    queued.cancel()
    assert cancelled == [True] and queued.state == CANCELLED  # synchronously, not after the blocker
    gate.set()
    wait_done(qtbot, blocker)
    qtbot.wait(50)
    assert ran == []


def test_a_result_arriving_after_cancel_is_discarded(qtbot):
    queue = JobQueue()
    release = threading.Event()
    handle = queue.submit(lambda p, c: (release.wait(5), "stale")[1])  # ignores the token
    results = []
    handle.finished.connect(results.append)
    handle.cancel()
    release.set()
    wait_done(qtbot, handle)
    assert handle.state == CANCELLED and results == []


def test_failures_carry_the_error_and_a_traceback(qtbot):
    queue = JobQueue()

    def user_error(progress, cancel):
        raise CorruptFileError("truncated", "/data/scan.nii.gz")

    def bug(progress, cancel):
        return 1 / 0

    errors = []
    first = queue.submit(user_error)
    first.failed.connect(errors.append)
    second = queue.submit(bug)
    second.failed.connect(errors.append)
    wait_done(qtbot, second)
    assert first.state == FAILED and isinstance(errors[0], CorruptFileError)
    assert "/data/scan.nii.gz: truncated" in str(errors[0])
    assert isinstance(errors[1], ZeroDivisionError) and "ZeroDivisionError" in second.traceback_text


def test_progress_is_throttled_and_gives_an_eta(qtbot):
    queue = JobQueue()

    def job(progress, cancel):
        for step in range(1, 2001):
            progress(step / 2000, f"step {step}")
            if step == 1000:
                time.sleep(0.1)
        return "ok"

    handle = queue.submit(job)
    updates, etas = [], []
    handle.progress.connect(lambda fraction, message: (updates.append((fraction, message)), etas.append(handle.eta_seconds())))
    wait_done(qtbot, handle)
    assert 1 <= len(updates) < 100
    assert updates[-1] == (1.0, "step 2000")
    assert any(eta is not None and eta >= 0 for eta in etas[:-1])  # the update after the pause has one


def test_progress_dialog_cancel_button_cancels_and_dialog_closes(qtbot):
    queue = JobQueue()

    def job(progress, cancel):
        while True:
            progress(0.3, "working")
            cancel.raise_if_cancelled()
            time.sleep(0.01)

    handle = queue.submit(job, "Long work")
    try:
        dialog = JobProgressDialog(handle, "Long work", delay_ms=0)
        qtbot.waitUntil(lambda: dialog.value() == 300, timeout=3000)
        assert "working" in dialog.labelText()
        cancel_button = dialog.findChild(QPushButton)
        assert cancel_button.text() == "Cancel"
        with qtbot.waitSignal(handle.cancelled, timeout=2000):
            cancel_button.click()
        assert not dialog.isVisible()
    finally:
        queue.shutdown()
