"""Entry point of the frozen app (PyInstaller): the same as the ``medviewer`` command."""

import multiprocessing

from medviewer.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # worker processes (e.g. data loading while training) on Windows/macOS
    raise SystemExit(main())
