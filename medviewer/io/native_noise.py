"""Keep native-library chatter (ITK, GDCM, libjpeg, libtiff, niftilib) off the user's terminal.

ITK and the C libraries under it print to the process's stderr file descriptor (fd 2)
directly (libjpeg's warnings go to fd 1): matrix dumps, "Not a JPEG file", "Premature
end of JPEG file", GDCM parser messages. Python cannot catch that with ``sys.stderr``;
:func:`quiet_native_stderr` points fds 1 and 2 at a temporary file around a native read and hands back what was written,
so a reader can turn it into part of its own message (or drop it).

The descriptors belong to the whole process, so concurrent sections share one redirection (the
first one in starts it, the last one out ends it) and each gets the text written while
it was open, which may include another thread's native messages. Python-level writes
(``print``, warnings, tracebacks of other threads) keep reaching the real terminal:
while the redirection is on, ``sys.stdout``/``sys.stderr`` are swapped for streams over
duplicates of the original descriptors (only when they are the plain fd-1/fd-2 streams).
Where a descriptor does not exist (pythonw on Windows) it is left alone.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import SimpleITK as sitk

# ITK's own warnings (e.g. "has unexpected scales in sform") go through its output window;
# medviewer reports the problems it cares about in the volume's warnings instead.
sitk.ProcessObject_SetGlobalWarningDisplay(False)

_lock = threading.Lock()
_depth = 0
#: fd -> duplicate of the original descriptor, while redirected.
_saved_fds: dict[int, int] = {}
#: sys attribute name -> original Python stream, while swapped.
_saved_streams: dict[str, object] = {}
_capture: int | None = None
_capture_path: str | None = None
_STREAMS = {1: "stdout", 2: "stderr"}  # libjpeg's messages go to stdout, ITK's and GDCM's to stderr


@dataclass
class NativeOutput:
    """What native code wrote to fd 1/2 during a :func:`quiet_native_stderr` section."""

    text: str = ""

    def detail(self, limit: int = 200) -> str:
        """The last meaningful native line (no matrix dumps, source paths or addresses), or ''."""
        lines = [line for line in (raw.strip() for raw in self.text.splitlines()) if _meaningful(line)]
        return lines[-1][:limit] if lines else ""


def _meaningful(line: str) -> bool:
    if not line or line.startswith(("/", "M = [", "WARNING: In ", "ERROR: In ", "Exception thrown")):
        return False
    return not _is_number_row(line)


def _is_number_row(line: str) -> bool:
    """A row of an ITK/VNL matrix dump ("nan 0 0 0", "1.0 0 ]")."""
    tokens = line.replace("[", " ").replace("]", " ").replace(";", " ").replace("...", " ").split()
    try:
        [float(token) for token in tokens]
    except ValueError:
        return False
    return True


def _flush(name: str) -> None:
    try:
        getattr(sys, name).flush()
    except (AttributeError, OSError, ValueError):
        pass


def _start() -> None:
    global _capture, _capture_path
    # Written through an O_APPEND descriptor and read through another one, so reading
    # never moves the offset native code writes at.
    handle, _capture_path = tempfile.mkstemp(prefix="medviewer-native-", suffix=".txt")
    os.close(handle)
    binary = getattr(os, "O_BINARY", 0)
    writer = os.open(_capture_path, os.O_WRONLY | os.O_APPEND | binary)
    _capture = os.open(_capture_path, os.O_RDONLY | binary)
    try:
        os.unlink(_capture_path)  # POSIX: gone once closed; Windows: removed in _stop
        _capture_path = None
    except OSError:
        pass
    for fd, name in _STREAMS.items():
        _flush(name)
        try:
            saved = os.dup(fd)
        except OSError:
            continue  # no such descriptor (pythonw): nothing to silence
        os.dup2(writer, fd)
        _saved_fds[fd] = saved
        stream = getattr(sys, name, None)
        try:
            plain = stream is not None and stream.fileno() == fd
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            plain = False
        if plain:  # Python's own output keeps going where it went
            _saved_streams[name] = stream
            setattr(sys, name, io.TextIOWrapper(io.FileIO(os.dup(saved), "w"), encoding=stream.encoding,
                                                errors=stream.errors, line_buffering=True))
    os.close(writer)


def _stop() -> None:
    global _capture, _capture_path
    for name, stream in _saved_streams.items():
        replacement = getattr(sys, name)
        setattr(sys, name, stream)
        replacement.close()
    _saved_streams.clear()
    for fd, saved in _saved_fds.items():
        os.dup2(saved, fd)
        os.close(saved)
    _saved_fds.clear()
    if _capture is not None:
        os.close(_capture)
    if _capture_path is not None:
        try:
            os.unlink(_capture_path)
        except OSError:
            pass
    _capture = _capture_path = None


def _end_offset() -> int:
    return os.lseek(_capture, 0, os.SEEK_END) if _capture is not None else 0


@contextmanager
def quiet_native_stderr() -> Iterator[NativeOutput]:
    """Redirect fds 1 and 2 while the block runs; the yielded object's ``text`` is filled on exit."""
    global _depth
    output = NativeOutput()
    with _lock:
        if _depth == 0:
            _start()
        _depth += 1
        start = _end_offset()
    try:
        yield output
    finally:
        with _lock:
            end = _end_offset()
            if _capture is not None and end > start:
                os.lseek(_capture, start, os.SEEK_SET)
                output.text = os.read(_capture, min(end - start, 1 << 20)).decode("utf-8", "replace")
            _depth -= 1
            if _depth == 0:
                _stop()
